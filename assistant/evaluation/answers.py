"""`assistant eval answers`: are the answers right, cited and declined when they should be?

A question file has one JSON object per line:
    {"question": "How many columns can a table have?", "answers": ["2000", "2,000"], "path": "limits.html"}
    {"question": "How do I enable the turbo mode?", "answers": [], "answerable": false}
`answers` are acceptable strings (any one occurring in the answer counts); `path` is the file (or a
list of files) that answers it; `answerable` defaults to whether `answers` is non-empty; `lang`
("en", "zh", ...) groups the figures. The figures:
- strict accuracy: answerable questions answered (not declined) with an acceptable string in an
  answer of at most 80 words;
- citation accuracy: answered answerable questions whose cited sources include the right file;
- decline rate: unanswerable questions declined; false declines: answerable questions declined;
- median latency per answer, and answers containing U+FFFD (a broken character).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

from assistant.evaluation.metrics import median, strict_match, word_count
from foundation.jsonl import read_jsonl
from index.evaluation import is_relevant

if TYPE_CHECKING:
    from assistant.core import Assistant
    from assistant.types import Answer

REPLACEMENT_CHAR = "\ufffd"


@dataclass
class AnswerItem:
    question: str
    answers: list[str]
    paths: list[str]
    answerable: bool
    lang: str = "en"
    id: str = ""


@dataclass
class Outcome:
    """What happened to one question."""

    item: AnswerItem
    text: str
    declined: bool
    correct: bool
    cited_right: bool | None  # None when not applicable (declined or unanswerable)
    words: int
    latency_ms: float
    broken_chars: bool
    cited: list[str] = field(default_factory=list)


def read_items(path: str | Path) -> list[AnswerItem]:
    """Parse and validate a question file; errors name the line."""
    items = []
    for n, obj in read_jsonl(path):
        question = str(obj.get("question", "")).strip()
        answers = obj.get("answers", [])
        if isinstance(answers, str):
            answers = [answers]
        paths = obj.get("path") or []
        paths = [paths] if isinstance(paths, str) else list(paths)
        if not question or not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
            raise ValueError(f'{path}:{n}: each line needs "question" and a list of "answers" (empty when unanswerable)')
        answerable = bool(obj.get("answerable", bool(answers)))
        if answerable and not answers:
            raise ValueError(f"{path}:{n}: an answerable question needs at least one acceptable answer string")
        items.append(AnswerItem(question, answers, paths, answerable, str(obj.get("lang") or "en"), str(obj.get("id") or n)))
    if not items:
        raise ValueError(f"{path} has no questions")
    return items


def judge(item: AnswerItem, answer: "Answer") -> Outcome:
    """Score one answer against its item (pure: the tests recompute it by hand)."""
    text = answer.text
    cited = answer.cited_sources
    correct = item.answerable and not answer.declined and strict_match(text, item.answers)
    cited_right = None
    if item.answerable and not answer.declined and item.paths:
        cited_right = any(is_relevant(s, item.paths, None) for s in cited)
    return Outcome(item=item, text=text, declined=answer.declined, correct=correct, cited_right=cited_right,
                   words=word_count(text), latency_ms=answer.timings.total_ms,
                   broken_chars=REPLACEMENT_CHAR in text, cited=[s.path for s in cited])


def rates(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The accuracy, citation, decline and latency figures from per-question records (`answerable`,
    `correct`, `cited_right`, `declined`, `latency_ms`: the `per_question` rows of `evaluate`), so a
    benchmark that merges rows of several runs reports exactly these figures."""
    answerable = [r for r in records if r["answerable"]]
    unanswerable = [r for r in records if not r["answerable"]]
    answered = [r for r in answerable if r["cited_right"] is not None]

    def rate(num: int, den: int) -> float | None:
        return round(num / den, 4) if den else None

    return {
        "questions": len(records), "answerable": len(answerable), "unanswerable": len(unanswerable),
        "strict_accuracy": rate(sum(r["correct"] for r in answerable), len(answerable)),
        "citation_accuracy": rate(sum(bool(r["cited_right"]) for r in answered), len(answered)),
        "declined_unanswerable": rate(sum(r["declined"] for r in unanswerable), len(unanswerable)),
        "false_declines": rate(sum(r["declined"] for r in answerable), len(answerable)),
        "median_latency_ms": round(median([r["latency_ms"] for r in records]) or 0.0, 1),
    }


def summarise(outcomes: list[Outcome]) -> dict[str, Any]:
    """The figures for a group of outcomes; a rate is None when its group is empty."""
    records = [{"answerable": o.item.answerable, "correct": o.correct, "cited_right": o.cited_right,
                "declined": o.declined, "latency_ms": o.latency_ms} for o in outcomes]
    return {
        **rates(records),
        "median_words": median([float(o.words) for o in outcomes if not o.declined]),
        "answers_with_broken_chars": sum(o.broken_chars for o in outcomes),
    }


def evaluate(bot: "Assistant", qa_file: str | Path, *, limit: int | None = None,
             progress: bool = True) -> dict[str, Any]:
    """Ask every question (not logged), judge each answer, and group the figures by language."""
    items = read_items(qa_file)[:limit]
    outcomes = []
    for item in tqdm(items, desc="answering", unit="q", disable=not progress):
        answer = bot.ask(item.question, task="qa", log=False)
        outcomes.append(judge(item, answer))
    result: dict[str, Any] = {"qa_file": str(qa_file), "model": bot.model_name, "all": summarise(outcomes)}
    langs = sorted({o.item.lang for o in outcomes})
    if len(langs) > 1:
        result["by_language"] = {lang: summarise([o for o in outcomes if o.item.lang == lang]) for lang in langs}
    result["per_question"] = [{**asdict(o.item), "text": o.text, "declined": o.declined, "correct": o.correct,
                               "cited_right": o.cited_right, "cited": o.cited, "words": o.words,
                               "latency_ms": round(o.latency_ms, 1)} for o in outcomes]
    return result


ROWS = [("strict_accuracy", "strict accuracy (answerable)"), ("citation_accuracy", "citation accuracy (answered)"),
        ("declined_unanswerable", "unanswerable declined"), ("false_declines", "answerable wrongly declined"),
        ("median_latency_ms", "median latency, ms"), ("median_words", "median words per answer"),
        ("answers_with_broken_chars", "answers with U+FFFD")]


def format_table(result: dict[str, Any]) -> str:
    """A Markdown table: one row per figure, a column for all questions and one per language."""
    groups = {"all": result["all"], **result.get("by_language", {})}
    head = f"Answers on {result['all']['questions']} questions ({result['qa_file']}, model {result['model']})"
    counts = " | ".join(f"{g['answerable']}+{g['unanswerable']}" for g in groups.values())
    lines = [head, "", "| figure | " + " | ".join(groups) + " |", "|---" * (len(groups) + 1) + "|",
             f"| answerable+unanswerable | {counts} |"]
    for key, label in ROWS:
        cells = ["–" if g[key] is None else (f"{g[key]:.3f}" if isinstance(g[key], float) and key != "median_latency_ms"
                                              else str(g[key])) for g in groups.values()]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
