"""Turning an `Answer` into what the chat shows: marked sentences, numbered sources, JSON for APIs.

Pure functions over the assistant's data classes so the page, the Gradio endpoints and the
/v1 API all present the same answer the same way.
"""
from __future__ import annotations

import re
from typing import Any

from assistant.types import Answer, Source

UNSUPPORTED_TITLE = "Not supported by the cited passages: check the sources"


def mark_unsupported(answer: Answer) -> str:
    """The answer text with sentences the grounding check could not support wrapped in <mark>.

    Code answers are left alone: marking inside a code block would corrupt the code.
    """
    text = answer.text or ""
    if answer.task == "code" or "```" in text:
        return text
    out, pos = [], 0
    for s in answer.sentences:
        if s.supported or not s.text.strip():
            continue
        i = text.find(s.text, pos)
        if i < 0:
            continue
        out.append(text[pos:i])
        out.append(f'<mark class="unsupported" title="{UNSUPPORTED_TITLE}">{s.text}</mark>')
        pos = i + len(s.text)
    out.append(text[pos:])
    return "".join(out)


# The chat renders a message as Markdown (and LaTeX between $s) around our HTML: a passage's own
# backticks, asterisks or blank lines would start code spans, emphasis or new blocks across our tags
# (seen: raw "</span>" and "&quot;" in a source). As character references they are plain text.
_INERT = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#x27;",
                        "`": "&#96;", "*": "&#42;", "_": "&#95;", "~": "&#126;", "[": "&#91;", "]": "&#93;",
                        "\\": "&#92;", "$": "&#36;", "|": "&#124;", "#": "&#35;", "\n": "&#10;"})


def inert(text: str) -> str:
    """`text` as HTML that neither the HTML nor the Markdown renderer will interpret."""
    return text.translate(_INERT)


def _highlight(passage: str, snippet: str) -> str:
    """Escape the passage and highlight the snippet inside it, so the reader sees it in context."""
    esc = inert(passage)
    core = snippet.strip().strip(".…").strip()
    if len(core) > 120:
        core = core[:120].rsplit(" ", 1)[0]  # whole words only
    if len(core) > 12:
        needle = inert(core)
        i = esc.find(needle)
        if i >= 0:
            return f'{esc[:i]}<span class="src-hit">{needle}</span>{esc[i + len(needle):]}'
    return esc


def source_html(n: int, src: Source) -> str:
    """One source as a collapsed <details>: title and place, then the whole passage on expand."""
    title = inert(src.title or src.path)
    where = inert(src.locator or "")
    snippet = inert(_one_line(src.snippet or src.text)[:220])
    passage = _highlight(src.text or src.snippet, src.snippet or "")
    return (
        f'<details class="source"><summary><span class="src-n">[{n}]</span> <b>{title}</b>'
        f'{" · " + where if where else ""} <span class="src-snippet">{snippet}</span></summary>'
        f'<div class="src-path">{inert(src.path)}{" — " + where if where else ""}'
        f' (score {src.score:.2f})</div><div class="src-passage">{passage}</div></details>'
    )


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text or "").strip()


def sources_html(sources: list[Source]) -> str:
    if not sources:
        return ""
    items = "".join(source_html(i, s) for i, s in enumerate(sources, 1))
    return f'<div class="sources"><div class="sources-head">Sources</div>{items}</div>'


def answer_markdown(answer: Answer) -> str:
    """The full chat message for a finished answer: text (unsupported parts marked) + sources."""
    body = mark_unsupported(answer)
    notes = []
    if answer.sentences and not answer.supported and not answer.declined:
        notes.append('<span class="unsupported-note">⚠ Highlighted sentences are not supported by the sources.</span>')
    parts = [body.rstrip(), *notes]
    block = sources_html(answer.sources)
    if block:
        parts.append(block)
    return "\n\n".join(p for p in parts if p)


def streaming_markdown(text: str, status: str = "") -> str:
    """A message still being written: the text so far, or the current status while none yet.

    Always ends with the cursor ▌, so "no cursor" means the answer is complete.
    """
    if text:
        return text + " ▌"
    return f"_{status or 'Thinking…'}_ ▌"


def source_dict(n: int, src: Source) -> dict[str, Any]:
    """A source for JSON APIs: its number as cited in the text, plus where to find it.

    The document's path is under "file", not "path": gradio_client takes any dict with a
    "path" key for a file to download and would fetch (and be refused) the server's copy.
    """
    return {
        "n": n, "title": src.title, "file": src.path, "locator": src.locator,
        "snippet": src.snippet, "score": round(float(src.score), 4), "text": src.text,
    }


def answer_dict(answer: Answer) -> dict[str, Any]:
    """What /ask and /v1 return beside the text: sources, ids, grounding and timings."""
    t = answer.timings
    return {
        "text": answer.text,
        "task": answer.task,
        "conversation_id": answer.conversation_id,
        "message_id": answer.message_id,
        "model": answer.model,
        "declined": answer.declined,
        "supported": answer.supported,
        "unsupported_sentences": [s.text for s in answer.sentences if not s.supported],
        "sources": [source_dict(i, s) for i, s in enumerate(answer.sources, 1)],
        "timings": {"retrieval_ms": t.retrieval_ms, "ttft_ms": t.ttft_ms, "generation_ms": t.generation_ms,
                    "total_ms": t.total_ms, "tokens_in": t.tokens_in, "tokens_out": t.tokens_out},
    }
