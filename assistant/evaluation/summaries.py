"""`assistant eval summaries`: do summaries say what the document says of itself, at the asked length?

A summary set has one JSON object per line:
    {"path": "man1/ls.1.txt", "reference": "list directory contents",
     "request": "Summarise the manual page for ls in one sentence.", "form": "sentence"}
`form` is "sentence", "paragraph" or "bullets:N" (what the request asks for). The figures:
- ROUGE-L of each summary against the reference (the document's own one-line description);
- the same for two baselines in the same run, which a summary must beat: the first sentence of the
  page's DESCRIPTION (or of a module's docstring, or of its first section), quoted as it stands,
  and the page's first 30 words; and the ratio of the summaries' score to the first-sentence one;
- the share of summaries whose form is what was asked (one sentence; N bullets; one paragraph);
- the share that summarise the document the item names (every source cited is that document).
Each request is told its document (`path_prefix`, as a caller that names it outright), unless
`by_name`: then the request's own words must name it, as in a chat ("Summarise the manual page for
fstab in one sentence." in a workspace of hundreds of pages).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

from assistant.evaluation.metrics import median, rouge_l, word_count
from assistant.grounding import split_sentences
from assistant.tasks.summary_shape import module_docstring
from foundation.jsonl import read_jsonl
from index.evaluation import is_relevant

if TYPE_CHECKING:
    from assistant.core import Assistant
    from assistant.types import Source

BASELINE_WORDS = 30
PARAGRAPH_MAX_WORDS = 150
_BULLET = re.compile(r"^\s*(?:[-*•]|\d{1,2}[.)])\s+\S")
_NOTE = re.compile(r"\n\s*Note:.*", re.DOTALL)  # a trailing checker's note is not part of the summary
_DESCRIPTION = re.compile(r"(?m)^[ \t]*(?:DESCRIPTION|Description)[ \t]*$")


@dataclass
class SummaryItem:
    path: str
    reference: str
    request: str
    form: str


def read_items(path: str | Path) -> list[SummaryItem]:
    items = []
    for n, obj in read_jsonl(path):
        missing = [k for k in ("path", "reference", "request") if not str(obj.get(k, "")).strip()]
        if missing:
            raise ValueError(f"{path}:{n}: missing {', '.join(missing)}")
        form = str(obj.get("form") or "paragraph")
        if not (form in ("sentence", "paragraph") or re.fullmatch(r"bullets:\d{1,2}", form)):
            raise ValueError(f'{path}:{n}: form must be "sentence", "paragraph" or "bullets:N", not {form!r}')
        items.append(SummaryItem(str(obj["path"]), str(obj["reference"]), str(obj["request"]), form))
    if not items:
        raise ValueError(f"{path} has no summaries to check")
    return items


def summary_body(text: str) -> str:
    """The summary without a trailing note from the checks."""
    return _NOTE.sub("", text).strip()


def form_respected(text: str, form: str) -> bool:
    """Whether `text` has the asked form: one sentence, N bullets, or one paragraph."""
    body = summary_body(text)
    lines = [ln for ln in body.splitlines() if ln.strip()]
    bullets = [ln for ln in lines if _BULLET.match(ln)]
    if form == "sentence":
        return len(lines) == 1 and not bullets and len(split_sentences(body)) == 1
    if form.startswith("bullets:"):
        return len(bullets) == int(form.split(":")[1]) and len(bullets) == len(lines)
    return bool(lines) and not bullets and "\n\n" not in body and word_count(body) <= PARAGRAPH_MAX_WORDS


def first_words(text: str, n: int = BASELINE_WORDS) -> str:
    return " ".join(text.split()[:n])


def first_sentence(chunks: "list[Source]") -> str:
    """The baseline a summary must beat: the first sentence (of four words or more) of the page's
    DESCRIPTION, of a module's docstring, or else of its first section, quoted as it stands, with
    no filtering (issue 20 measured it at 0.22 where the summaries scored 0.14)."""
    if not chunks:
        return ""
    text = module_docstring(chunks) or ""
    if not text:
        heads = [i for i, c in enumerate(chunks) if re.search(r"(?:^|>)\s*description\s*$", c.heading or "", re.I)]
        joined = "\n\n".join((c.text or c.snippet) for c in chunks[heads[0] if heads else 0:])
        found = _DESCRIPTION.search(joined)
        text = joined[found.end():] if found else (joined if heads else chunks[0].text or chunks[0].snippet)
    unwrapped = re.sub(r"(?<=\S)[ \t]*\n[ \t]*(?=\S)", " ", text)  # hard-wrapped lines of one paragraph
    return next((s for s in split_sentences(unwrapped) if len(s.split()) >= 4), first_words(text))


def evaluate(bot: "Assistant", set_file: str | Path, *, limit: int | None = None,
             progress: bool = True, by_name: bool = False) -> dict[str, Any]:
    """Summarise every document as asked (not logged) and score it against its reference."""
    items = read_items(set_file)[:limit]
    rows = []
    for item in tqdm(items, desc="summarising", unit="doc", disable=not progress):
        answer = bot.ask(item.request, task="summarize", log=False, path_prefix=None if by_name else item.path)
        cited = answer.cited_sources or answer.sources[:1]
        chunks = bot.index.document_chunks(item.path)
        page = " ".join(s.text or s.snippet for s in chunks)
        baseline = first_sentence(chunks)
        body = summary_body(answer.text)
        rows.append({"path": item.path, "form": item.form, "summary": body, "reference": item.reference,
                     "rouge_l": round(rouge_l(body, item.reference), 4),
                     "first_sentence": baseline,
                     "first_sentence_rouge_l": round(rouge_l(baseline, item.reference), 4),
                     "baseline_rouge_l": round(rouge_l(first_words(page), item.reference), 4),
                     "form_respected": form_respected(answer.text, item.form), "words": word_count(body),
                     "right_document": bool(cited) and all(is_relevant(c, item.path, None) for c in cited),
                     "declined": answer.declined, "latency_ms": round(answer.timings.total_ms, 1)})
    figures = summary_figures(rows)
    figures["by_form"] = {form: summary_figures([r for r in rows if r["form"] == form])
                          for form in sorted({r["form"] for r in rows})}
    return {"set_file": str(set_file), "model": bot.model_name, "all": figures, "per_document": rows}


def summary_figures(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean scores of some rows, with the ratio of the summaries' ROUGE-L to the first-sentence baseline's."""
    n = len(rows)

    def mean(key: str) -> float:
        return round(sum(r[key] for r in rows) / n, 4)

    return {
        "documents": n,
        "rouge_l": mean("rouge_l"),
        "baseline_first_sentence_rouge_l": mean("first_sentence_rouge_l"),
        "ratio_to_first_sentence": round(mean("rouge_l") / mean("first_sentence_rouge_l"), 3)
        if mean("first_sentence_rouge_l") else None,
        "baseline_first_30_words_rouge_l": mean("baseline_rouge_l"),
        "form_respected": round(sum(r["form_respected"] for r in rows) / n, 4),
        "right_document": round(sum(r.get("right_document", True) for r in rows) / n, 4),
        "median_words": median([float(r["words"]) for r in rows]),
        "median_latency_ms": round(median([r["latency_ms"] for r in rows]) or 0.0, 1),
    }


def format_table(result: dict[str, Any]) -> str:
    f = result["all"]
    return "\n".join([
        f"Summaries of {f['documents']} documents ({result['set_file']}, model {result['model']})", "",
        "| figure | value |", "|---|---|",
        f"| ROUGE-L against the document's own description | {f['rouge_l']:.3f} |",
        f"| ROUGE-L of its DESCRIPTION's first sentence (baseline) | {f['baseline_first_sentence_rouge_l']:.3f} |",
        f"| ratio to that baseline | {f['ratio_to_first_sentence']} |",
        f"| ROUGE-L of its first {BASELINE_WORDS} words (baseline) | {f['baseline_first_30_words_rouge_l']:.3f} |",
        f"| requested form respected | {f['form_respected']:.3f} |",
        f"| the named document summarised | {f['right_document']:.3f} |",
        f"| median words | {f['median_words']} |",
        f"| median latency, ms | {f['median_latency_ms']} |",
    ])
