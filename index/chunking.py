"""Cutting sections into small passages measured in the embedder's own tokens, with overlap.

Prose is split into sentences (Latin `.!?` followed by space, Chinese `。！？；` with no space
needed) and paragraphs; code into lines. Units are packed greedily up to `chunk_tokens`; the next
chunk starts with the trailing units of the previous one that fit in `chunk_overlap` tokens.
A unit longer than a whole chunk is cut on token boundaries. Chunks never cross a section, so each
keeps one heading path, one page, and an exact line range. A definition's section (its term is its
heading and its first line, `index.sections.defined_term`) has its term at the start of every chunk:
a passage from the middle of a long option's description still says which option it describes,
and a line that only names an option ("-m") or introduces what follows ("run:") is packed with the
unit after it, never left at a chunk's end.
"""
from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol, Sequence

from index.sections import LoadedDocument, Section, defined_term, leads_into_next

# A sentence ends at .!? followed by whitespace, or right after a Chinese/Japanese full stop etc.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+|(?<=[。！？；])[”’」』）]*|\n\s*\n|\n(?=\s*(?:[-*+•]|\d+[.)]|\|)\s)")


class TokenCounter(Protocol):
    def counts(self, texts: Sequence[str]) -> list[int]: ...
    def spans(self, text: str) -> list[tuple[int, int]]: ...


class HFTokenCounter:
    """Token counts from the embedder's tokenizer (loaded alone: the model stays unloaded)."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer

    def counts(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        ids = self.tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]
        return [len(x) for x in ids]

    def spans(self, text: str) -> list[tuple[int, int]]:
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        return [tuple(o) for o in enc["offset_mapping"]]


class FastTokenCounter(HFTokenCounter):
    """The same counts and spans from the folder's tokenizer.json through `tokenizers` directly:
    without transformers, whose import pulls in torch (~2 s of a cold `assistant ingest` on the
    int8 path, where nothing else needs it)."""

    def __init__(self, path: Path) -> None:
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(path))
        tokenizer.no_truncation()  # a sentence-transformers tokenizer.json often carries its own
        tokenizer.no_padding()
        self.tokenizer = tokenizer

    def counts(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        return [len(e.ids) for e in self.tokenizer.encode_batch(list(texts), add_special_tokens=False)]

    def spans(self, text: str) -> list[tuple[int, int]]:
        return [tuple(o) for o in self.tokenizer.encode(text, add_special_tokens=False).offsets]


class ApproxTokenCounter:
    """Fallback when no tokenizer loads: a word or CJK character is about one token."""

    _TOKEN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]|\w+|[^\w\s]")

    def counts(self, texts: Sequence[str]) -> list[int]:
        return [len(self._TOKEN.findall(t)) for t in texts]

    def spans(self, text: str) -> list[tuple[int, int]]:
        return [m.span() for m in self._TOKEN.finditer(text)]


@dataclass
class Chunk:
    text: str
    heading: str  # "Install > Linux"; "" at the top of a document
    page: int | None
    start_line: int | None
    end_line: int | None
    part: int | None = None  # "part 2 of 5" of a long section with no line numbers (HTML, DOCX, PDF)
    parts: int | None = None


def split_units(text: str, kind: str) -> list[tuple[int, int]]:
    """Character spans of sentences (prose) or lines (code), whitespace trimmed, empties dropped."""
    spans: list[tuple[int, int]] = []
    if kind == "code":
        pos = 0
        for line in text.split("\n"):
            if line.strip():
                spans.append((pos, pos + len(line)))
            pos += len(line) + 1
        return spans
    start = 0
    for m in _SENTENCE_END.finditer(text):
        spans.append((start, m.start() if m.group(0).strip() == "" else m.end()))
        start = m.end()
    spans.append((start, len(text)))
    out = []
    for a, b in spans:
        seg = text[a:b]
        lead = len(seg) - len(seg.lstrip())
        seg = seg.strip()
        if seg:
            out.append((a + lead, a + lead + len(seg)))
    return out


def chunk_section(section: Section, counter: TokenCounter, chunk_tokens: int, overlap: int) -> list[Chunk]:
    text = section.text
    units = split_units(text, section.kind)
    if not units:
        return []
    sizes = counter.counts([text[a:b] for a, b in units])
    # Cut units that alone exceed a chunk on token boundaries.
    fine: list[tuple[int, int, int]] = []
    for (a, b), n in zip(units, sizes):
        if n <= chunk_tokens:
            fine.append((a, b, n))
            continue
        offs = counter.spans(text[a:b])
        step = max(1, chunk_tokens - overlap)
        for s in range(0, len(offs), step):
            window = offs[s:s + chunk_tokens]
            fine.append((a + window[0][0], a + window[-1][1], len(window)))
            if s + chunk_tokens >= len(offs):
                break
    fine = _leads_joined(text, fine, chunk_tokens)
    newlines = [i for i, ch in enumerate(text) if ch == "\n"]
    heading = " > ".join(section.heading)

    def line_of(offset: int) -> int | None:
        if section.start_line is None:
            return None
        return section.start_line + bisect.bisect_left(newlines, offset)

    chunks: list[Chunk] = []
    i = 0
    while i < len(fine):
        j, total = i, 0
        while j < len(fine) and (j == i or total + fine[j][2] <= chunk_tokens):
            total += fine[j][2]
            j += 1
        a, b = fine[i][0], fine[j - 1][1]
        chunks.append(Chunk(text[a:b], heading, section.page, line_of(a), line_of(b - 1)))
        if j >= len(fine):
            break
        # Overlap: start the next chunk with the trailing units that fit in `overlap` tokens.
        k, carried = j, 0
        while k - 1 > i and carried + fine[k - 1][2] <= overlap:
            carried += fine[k - 1][2]
            k -= 1
        i = k
    term = defined_term(heading, text)
    if term:  # a definition longer than a chunk: each later part starts with its term too
        for ch in chunks[1:]:
            if not ch.text.startswith(term):
                ch.text = f"{term}\n\n{ch.text}"
    if len(chunks) > 1 and section.start_line is None:  # lines tell chunks apart; without them, number them
        for n, ch in enumerate(chunks, 1):
            ch.part, ch.parts = n, len(chunks)
    return chunks


def _leads_joined(text: str, units: list[tuple[int, int, int]], chunk_tokens: int) -> list[tuple[int, int, int]]:
    """The units with each one that leads into the next joined to it: an option's term ("-m",
    "-p, --parents") to its description, a line that introduces what follows ("... restarted with
    either of the following commands:") to it. So no chunk ends on one: a manual's list of short
    options cut after a term gave a window ending "... -m" and a passage starting with what -m does;
    cut after the colon, the handbook's NFS passage promised commands the next passage held."""
    out: list[tuple[int, int, int]] = []
    for unit in units:
        if out and out[-1][2] + unit[2] <= chunk_tokens and leads_into_next(text[out[-1][0]:out[-1][1]]):
            a, _, n = out.pop()
            unit = (a, unit[1], n + unit[2])
        out.append(unit)
    return out


def chunk_document(doc: LoadedDocument, counter: TokenCounter, chunk_tokens: int = 160,
                   overlap: int = 32) -> list[Chunk]:
    """All chunks of a document, in document order."""
    if chunk_tokens < 8:
        raise ValueError(f"chunk_tokens={chunk_tokens} is too small (minimum 8)")
    overlap = max(0, min(overlap, chunk_tokens // 2))
    out: list[Chunk] = []
    for section in doc.sections:
        out.extend(chunk_section(section, counter, chunk_tokens, overlap))
    return out


def load_token_counter(model_path: str, fallback: Callable[[], object] | None = None) -> TokenCounter:
    """The embedder's tokenizer as a counter; the approximate counter if it cannot be loaded."""
    fast = Path(model_path) / "tokenizer.json"
    if fast.is_file():
        try:
            return FastTokenCounter(fast)
        except Exception:  # noqa: BLE001 - a tokenizer.json tokenizers cannot read: transformers may
            pass
    try:
        from transformers import AutoTokenizer

        return HFTokenCounter(AutoTokenizer.from_pretrained(model_path))
    except Exception:  # noqa: BLE001 - a missing tokenizer must not stop ingestion
        if fallback is not None:
            tok = getattr(fallback(), "tokenizer", None)
            if tok is not None:
                return HFTokenCounter(tok)
        return ApproxTokenCounter()
