"""Routing for task="auto": decide from the wording alone whether the user wants qa, a summary or code.

Rules rather than the model: a 135M model classifies worse than a dozen regular expressions, and
rules are instant and predictable. When both a summary cue and a code cue appear, the one that
comes first wins ("Summarise this script" vs "Write a function that summarises text").
"""
from __future__ import annotations

import re
from typing import Literal

TaskName = Literal["qa", "summarize", "code"]
TASK_NAMES: tuple[TaskName, ...] = ("qa", "summarize", "code")  # the one list: core, CLI, UI and API read it
AUTO = "auto"  # not a task: the wording picks one of TASK_NAMES (`infer_task`)
TASK_CHOICES: tuple[str, ...] = (AUTO, *TASK_NAMES)  # what a caller may ask for

_SUMMARY = [
    # the verb always; the noun only as a request ("a summary of", "summarise" vs "the summary field")
    r"\bsummar(?:i[sz]e[sd]?|i[sz]ing)\b",
    r"\b(?:summary|summaries|summari[sz]ation) (?:of|for)\b",
    r"\b(?:a|an|me|brief|short|quick|executive|one-line|one-paragraph)\s+summary\b",
    r"^\s*summary\b",
    r"\btl;?\s?dr\b",
    r"\b(?:give me |write )?(?:an? )?(?:overview|recap|synopsis|gist)\b(?: of)?",
    r"\bin (?:a )?(?:few|one|two|three) (?:sentences|lines|bullets?)\b",
    r"\bkey (?:points|takeaways)\b",
    r"总结", r"概括", r"摘要", r"概述", r"归纳",
]
_CODE = [
    r"\b(?:write|generate|create|give me|show me|produce|draft|make)\b[^.?!\n]{0,60}?"
    r"\b(?:function|code|script|class|program|snippet|method|regex|query|test|tests|cli|decorator|module)\b",
    r"^\s*(?:please\s+|can you\s+|could you\s+)?(?:implement|code up|refactor|fix (?:this|the|my) (?:code|bug|function))\b",
    r"\b(?:code|snippet|script) (?:for|to|that)\b",
    r"\bin (?:python|javascript|typescript|bash|rust|go|java|sql)\b",
    r"```", r"^\s*def \w+\(",
    r"写一个", r"写个", r"编写", r"代码", r"实现一个", r"函数", r"脚本",
]
_SUMMARY_RE = [re.compile(p, re.IGNORECASE | re.MULTILINE) for p in _SUMMARY]
_CODE_RE = [re.compile(p, re.IGNORECASE | re.MULTILINE) for p in _CODE]


def _first(patterns: list[re.Pattern[str]], text: str) -> int | None:
    hits = [m.start() for p in patterns if (m := p.search(text))]
    return min(hits) if hits else None


def infer_task(text: str) -> TaskName:
    """"qa" unless the request asks for a summary or for code (English or Chinese cues)."""
    summary_at = _first(_SUMMARY_RE, text)
    code_at = _first(_CODE_RE, text)
    if summary_at is None and code_at is None:
        return "qa"
    if code_at is None:
        return "summarize"
    if summary_at is None:
        return "code"
    return "summarize" if summary_at < code_at else "code"
