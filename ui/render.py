"""Turning an `Answer` into what the chat shows: marked sentences, numbered sources, JSON for APIs.

Pure functions over the assistant's data classes so the page, the Gradio endpoints and the
/v1 API all present the same answer the same way.
"""
from __future__ import annotations

import os
import re
from dataclasses import replace
from typing import Any, Iterable

from assistant.types import Answer, Source

UNSUPPORTED_TITLE = "Not supported by the cited passages: check the sources"


def mark_unsupported(answer: Answer) -> str:
    """The answer as safe Markdown, with sentences the grounding check could not support in <mark>.

    The text is escaped piece by piece before our tags go in, so a sentence that quotes a document's
    HTML is shown as text while our <mark> stays live. Answers with code fences are escaped but
    not marked: marking inside a code block would corrupt the code.
    """
    text = answer.text or ""
    if answer.task == "code" or _FENCE.search(text):
        return escape_markdown(text)
    out, pos = [], 0
    for s in answer.sentences:
        if s.supported or not s.text.strip():
            continue
        i = text.find(s.text, pos)
        if i < 0:
            continue
        out.append(escape_markdown(text[pos:i]))
        out.append(f'<mark class="unsupported" title="{UNSUPPORTED_TITLE}">{escape_markdown(s.text)}</mark>')
        pos = i + len(s.text)
    out.append(escape_markdown(text[pos:]))
    return "".join(out)


# ---- text that may quote documents, as Markdown that carries no live HTML --------------------
# The chat renders Markdown with raw HTML allowed (then sanitises, but <img>, <video>, <form> and
# style="" survive that). Answers need Markdown, so instead of escaping it all: outside code, `<`
# and `&` become character references; code spans become <code> with inert content; a fenced block
# is re-emitted as a top-level fence (after a blank line, at column 0, with more backticks than any
# run inside) so the renderer shows its angle brackets verbatim and cannot read anything else as
# code. Any backtick or ~~~ left over is a reference too, so no fence can start where we did not put one.
_FENCE = re.compile(r"^( *)(`{3,}(?=[^`\n]*$)|~{3,})(.*)$", re.M)
_TICKS = re.compile(r"`+")
_PROSE = re.compile(r"[&<`]|~{3,}|!(?=\[)")
_PROSE_REF = {"&": "&amp;", "<": "&lt;", "`": "&#96;", "!": "&#33;"}


def escape_markdown(text: str) -> str:
    """`text` as Markdown whose HTML, entities and images are shown as written, never rendered."""
    out: list[str] = []
    for code, chunk, info in _blocks(text or ""):
        if code:
            done = "".join(out)
            out.append("" if not done or done.endswith("\n\n") else "\n" if done.endswith("\n") else "\n\n")
            out.append(_fence(chunk, info))
        else:
            out.append(_escape_inline(chunk))
    return "".join(out)


def _blocks(text: str) -> list[tuple[bool, str, str]]:
    """(is_code, text, info string) pieces: fenced blocks (dedented, unclosed ones to the end) and prose."""
    lines = text.splitlines(keepends=True)
    pieces, prose, i = [], [], 0
    while i < len(lines):
        m = _FENCE.match(lines[i].rstrip("\n"))
        if not m:
            prose.append(lines[i])
            i += 1
            continue
        indent, run = len(m.group(1)), m.group(2)
        close = re.compile(rf"^ *{re.escape(run[0])}{{{len(run)},}}[ \t]*$")
        end = next((j for j in range(i + 1, len(lines)) if close.match(lines[j].rstrip("\n"))), len(lines))
        body = "".join(_dedent(line, indent) for line in lines[i + 1:end])
        if prose:
            pieces.append((False, "".join(prose), ""))
            prose = []
        pieces.append((True, body, m.group(3).strip()))
        i = end + 1
    if prose:
        pieces.append((False, "".join(prose), ""))
    return pieces


def _dedent(line: str, indent: int) -> str:
    """A fence's content line without (at most) the fence's own indentation, as CommonMark does."""
    return line[min(indent, len(line) - len(line.lstrip(" "))):]


def _fence(body: str, info: str) -> str:
    """A fence no line of `body` can close, with a plain language tag for the highlighter."""
    ticks = "`" * max(3, 1 + max((len(r) for r in _TICKS.findall(body)), default=0))
    lang = re.sub(r"[^\w+#.-]", "", info.split()[0]) if info else ""
    return f"{ticks}{lang}\n{body.rstrip(chr(10))}\n{ticks}\n"


def _escape_inline(text: str) -> str:
    """Prose: code spans (one line, matched backtick runs) as <code>, the rest with `<` and `&` as references."""
    out, pos, runs = [], 0, list(_TICKS.finditer(text))
    i = 0
    while i < len(runs):
        m = runs[i]
        close = next((r for r in runs[i + 1:] if len(r.group()) == len(m.group())), None)
        escaped = (len(text[:m.start()]) - len(text[:m.start()].rstrip("\\"))) % 2 == 1
        if close is None or escaped or "\n" in text[m.end():close.start()]:
            i += 1
            continue
        code = text[m.end():close.start()]
        if len(code) > 2 and code[0] == code[-1] == " " and code.strip():
            code = code[1:-1]
        out.append(_escape_prose(text[pos:m.start()]) + f"<code>{inert(code)}</code>")
        pos = close.end()
        i = runs.index(close) + 1
    out.append(_escape_prose(text[pos:]))
    return "".join(out)


def _escape_prose(text: str) -> str:
    """Text outside code: no tag, entity, image or fence can start in it."""
    return _PROSE.sub(lambda m: _PROSE_REF.get(m.group(), "&#126;" * len(m.group())), text)


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
    """A message still being written: the text so far (escaped like the final one), or the status.

    Always ends with the cursor ▌, so "no cursor" means the answer is complete.
    """
    if text:
        return escape_markdown(text) + " ▌"
    return f"_{inert(status or 'Thinking…')}_ ▌"


def shown_path(path: str, roots: Iterable[str]) -> str:
    """`path` as the reader should see it: relative to the folder it was ingested from, never absolute.

    Absolute paths tell every user how the server is laid out. The shallowest root holding the file
    wins, so ingesting a sub-folder again later does not rename its documents; a file ingested on
    its own (or under no known root) is shown by its name.
    """
    for root in sorted((str(r).rstrip("/\\") for r in roots), key=len):
        if root and path.startswith(root + os.sep) and len(path) > len(root) + 1:
            return path[len(root) + 1:]
    return os.path.basename(path) or path


def reader_roots(bot: Any, uploads_root: str | os.PathLike[str]) -> list[str]:
    """The folders documents were ingested from, and the uploads folder: shown paths are relative to them."""
    manifest = getattr(getattr(bot, "index", None), "manifest", None)
    return [*(manifest.get("roots", []) if isinstance(manifest, dict) else []), str(uploads_root)]


def with_shown_paths(answer: Answer, roots: Iterable[str]) -> Answer:
    """The answer with its sources' paths as readers see them (the log keeps the real ones)."""
    roots = list(roots)
    return replace(answer, sources=[replace(s, path=shown_path(s.path, roots)) for s in answer.sources])


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
