"""Every hand-written rule of the answer pipeline, in one place (issue 20, part 2).

The answer pipeline is general mechanisms (retrieval, embedding similarity, word coverage, the
model, the checks) plus the rules listed here: patterns that read a question's or a passage's
wording and change what is chosen, quoted or declined. Each one has a name, the failure it
protects against, what it did when measured on and off (`benchmarks/bench_ablation.py`, every
development set), and a test (tests/test_rules.py). A rule that stops paying for itself is
removed, not tuned: that is why they are listed.

`Config.rules_off` switches rules off by name ("number-bonus,page-name"), for the ablation and for
a workspace whose documents a rule does not fit. The patterns that only classify a question live
here too; the decline rules' term extraction stays in `assistant.tasks.answerability`.

Languages: the question patterns are written for English and Chinese, the two languages the
product answers in; another language's questions simply never match them (the rule stays off for
it, nothing is declined or boosted by it).
"""
from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    name: str  # what `Config.rules_off` names
    where: str  # the function that applies it
    protects_against: str
    measured: str  # its effect, on and off, on the development sets


# Measured with benchmarks/bench_ablation.py; each figure "off -> on" on the sets named, default models.
RULES = (
    Rule("number-bonus", "assistant.tasks.evidence.value_bonus",
         "a window that discusses the topic but states no value chosen over the one that states it, for a "
         "question asking how many, how long, which version, what default",
         "see the ablation table in the module below (`MEASURED`)"),
    Rule("option-bonus", "assistant.tasks.evidence.value_bonus",
         "a window describing what an option does without naming it chosen over the option line, for a "
         "question asking which option, flag, setting or command",
         "see `MEASURED`"),
    Rule("page-name", "assistant.tasks.qa._page_name",
         "an answer to 'which command/tool/file ...' that quotes what the page does without saying what it is "
         "called (a manual page's name is its title, never repeated in its text)",
         "see `MEASURED`"),
    Rule("named-page-lead", "assistant.tasks.budget.rank_passages",
         "a passage of another page outranking the page the question names ('git tag' -> git-tag(1))",
         "tuning set: citations 0.742 -> 0.763 (0.1 and 0.2 alike); see `MEASURED`"),
    Rule("absent-term", "assistant.tasks.answerability.judge",
         "answering a question about something the documents never mention with the default of something else",
         "with term-not-in-windows, against the window-wording rules before it (qa_en = git + Debian FAQ "
         "questions, 103 + 19; qa_paraphrase the same facts in other words, 32 + 15): unanswerable declined "
         "qa_paraphrase 0.667 -> 0.933, qa_en 0.895 -> 0.684 (two-factor, CI, HTTPS, English: common words, "
         "left to the evidence gate); answerable wrongly declined 0.250 -> 0.094 and 0.039 -> 0.029; strict "
         "accuracy unchanged; see `MEASURED`"),
    Rule("term-not-in-windows", "assistant.tasks.answerability.judge",
         "quoting a window about another thing when retrieval missed the one passage that names it",
         "see `MEASURED`"),
    Rule("quantity-without-number", "assistant.tasks.answerability.judge",
         "answering 'how many' with a sentence that gives no number",
         "issue 13: turned 'can contain only one SELECT statement' answers into declines; see `MEASURED`"),
)
NAMES = frozenset(r.name for r in RULES)

# What each rule did when switched off alone, against the default in the same run: filled from
# benchmarks/results/bench_ablation.json (see the closing note of issue 20 for the table).
MEASURED: dict[str, str] = {}


def disabled(rules_off: str) -> frozenset[str]:
    """The rule names a `Config.rules_off` value switches off; an unknown name is an error that
    lists the known ones (a typo must not silently leave a rule on)."""
    names = frozenset(n.strip() for n in (rules_off or "").split(",") if n.strip())
    unknown = names - NAMES
    if unknown:
        raise ValueError(f"unknown rule(s) in rules_off: {sorted(unknown)}; known: {sorted(NAMES)}")
    return names


def active(config, name: str) -> bool:
    """Whether rule `name` applies under `config` (anything with a `rules_off` string)."""
    if name not in NAMES:
        raise KeyError(f"no rule named {name!r}")
    return name not in disabled(getattr(config, "rules_off", ""))


# --- question patterns -----------------------------------------------------------------------------

# number-bonus: the question asks for a value ("how many", "default", "which port"; 多少, 几, 默认).
ASKS_NUMBER = re.compile(r"\b(how (many|much|long|big|large|often|old)|maximum|minimum|max|min|limit|default|"
                         r"size|number of|version|port|percent|what year|when)\b|多少|几|最大|最小|默认", re.I)
# option-bonus: the question asks for an option, setting or command (in Chinese also 怎样/如何: on
# manual pages the way to do something is an option).
ASKS_OPTION = re.compile(r"\b(option|flag|switch|command|argument|parameter|setting|variable|function|"
                         r"keyword|pragma|which|what)\b|选项|参数|命令|怎样|怎么|如何", re.I)
HAS_NUMBER = re.compile(r"\d")
HAS_OPTION = re.compile(r"(?<![\w-])--?[A-Za-z][\w-]*|\b[A-Za-z]+_[A-Za-z_]+\b|`[^`]+`|\b[a-z]+\.[a-z]+\b")
# page-name: "Which command / tool / file ...?": the answer is often the name of the page quoted.
ASKS_FOR_NAME = re.compile(r"^\s*(which|what)\s+(?:[\w'-]+\s+){0,3}?(command|tool|utility|program|binary|file|hook|"
                           r"subcommand|function|pragma)s?\b|哪个命令|什么命令|哪个工具|哪个程序|哪个文件|什么文件", re.I)
