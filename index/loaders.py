"""Loading files into structured sections that keep their provenance (heading path, page, lines).

Each loader returns a `LoadedDocument` whose `sections` follow the document's own structure:
Markdown/reST/HTML/DOCX headings, PDF pages, code definitions. The chunker later cuts sections
that are too long; it never merges text across sections, so every chunk has one heading path.
Formats are parsed by well-kept libraries (markdown-it, lxml, pypdf, python-docx); HTML and DOCX
have modules of their own (`html_loader`, `docx_loader`);
only reST section adornments and brace-language block boundaries are found by small scanners.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

from foundation.formats import BRACE_LANGS, file_type_of
from index import man_roff
from index.budget import LoadLimits
from index.code_blocks import brace_sections
from index.docx_loader import load_docx
from index.html_loader import load_html
from index.man_text import load_man_text
from index.sections import LoadedDocument, LoadError, Section


def load_document(path: Path, data: bytes, limits: LoadLimits = LoadLimits()) -> LoadedDocument:
    """Parse `data` (the bytes of `path`) with the loader its extension names.

    `limits.max_unpacked_mb` etc. apply here (zip checks before unpacking); time and memory limits
    are the caller's (`index.worker` runs this in a process it can kill).
    """
    kind = file_type_of(path)
    if kind is None:
        raise LoadError(f"unsupported file type {path.suffix or '(no extension)'!r}")
    if not data.strip():
        raise LoadError("empty file")
    if kind == "pdf":
        doc = load_pdf(path, data)
    elif kind == "docx":
        doc = load_docx(path, data, limits)
    elif kind == "man":
        raw = man_roff.unpack(path, data, limits)
        if not raw.strip():
            raise LoadError("empty file")
        if man_roff.is_roff(raw):
            doc = man_roff.load_man_source(path, raw)
        else:  # named like a page, written as text (a rotated log "syslog.1")
            text = decode_text(raw)
            doc = LoadedDocument(str(path), path.name, "text", load_man_text(text, path.name) or [Section(text, [], 1)])
    else:
        text = decode_text(data)
        if kind == "markdown":
            doc = load_markdown(path, text)
        elif kind == "rst":
            doc = load_rst(path, text)
        elif kind == "html":
            doc = load_html(path, text)
        elif kind == "text":
            doc = LoadedDocument(str(path), path.stem, "text",
                                 load_man_text(text, path.stem) or [Section(text, [], 1)])
        else:
            doc = load_code(path, text, kind)
    doc.sections = [s for s in doc.sections if s.text.strip()]
    if not doc.sections:
        raise LoadError("no text found in file")
    return doc


def decode_text(data: bytes) -> str:
    """UTF-8 (with or without BOM), else the encoding charset-normalizer detects; binary is refused."""
    if b"\x00" in data[:8192]:
        raise LoadError("binary file (NUL bytes); not text")
    try:
        return data.decode("utf-8-sig").replace("\r\n", "\n").replace("\r", "\n")
    except UnicodeDecodeError:
        pass
    try:
        from charset_normalizer import from_bytes
    except ImportError:  # pragma: no cover - declared in pyproject.toml; a stripped install may lack it
        raise LoadError("not valid UTF-8 (install charset-normalizer to detect other encodings)") from None
    best = from_bytes(data).best()
    if best is None:
        raise LoadError("binary or undecodable file; not text")
    return str(best).replace("\r\n", "\n").replace("\r", "\n")


# --- Markdown -------------------------------------------------------------------------------

def load_markdown(path: Path, text: str) -> LoadedDocument:
    """Sections between headings, found by markdown-it (so '#' inside code fences is not a heading)."""
    from markdown_it import MarkdownIt

    lines = text.split("\n")
    tokens = MarkdownIt("commonmark").parse(text)
    heads: list[tuple[int, int, int, str]] = []  # (level, first line, line after heading, text)
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open" and tok.map:
            heads.append((int(tok.tag[1]), tok.map[0], tok.map[1], tokens[i + 1].content.strip()))
    title = next((h[3] for h in heads if h[0] == 1), "") or path.stem
    return LoadedDocument(str(path), title, "markdown", sections_from_headings(lines, heads, title))


# --- reStructuredText ----------------------------------------------------------------------

_ADORN = re.compile(r"^([=\-`:'\"~^_*+#<>.])\1{2,}\s*$")


def load_rst(path: Path, text: str) -> LoadedDocument:
    """Sections from reST title adornments (underline, optional overline); levels in order seen."""
    lines = text.split("\n")
    heads: list[tuple[int, int, int, str]] = []  # (level, first line, body line, title)
    styles: list[tuple[str, bool]] = []
    i = 0
    while i < len(lines) - 1:
        over = bool(_ADORN.match(lines[i])) and i + 2 < len(lines) and _ADORN.match(lines[i + 2] or "")
        if over and lines[i + 1].strip() and lines[i][0] == lines[i + 2][0]:
            style, name, first, body = (lines[i][0], True), lines[i + 1].strip(), i, i + 3
        elif lines[i].strip() and not _ADORN.match(lines[i]) and _ADORN.match(lines[i + 1]) \
                and len(lines[i + 1].rstrip()) >= len(lines[i].rstrip()) and not lines[i].startswith(" "):
            style, name, first, body = (lines[i + 1][0], False), lines[i].strip(), i, i + 2
        else:
            i += 1
            continue
        if style not in styles:
            styles.append(style)
        heads.append((styles.index(style) + 1, first, body, name))
        i = body
    title = heads[0][3] if heads else path.stem
    return LoadedDocument(str(path), title, "rst", sections_from_headings(lines, heads, title))


def sections_from_headings(lines: list[str], heads: list[tuple[int, int, int, str]], title: str) -> list[Section]:
    """One section per heading, carrying its heading path (the document title left out).

    `heads` holds (level, first line, first body line, heading text); text before the first
    heading becomes a section of its own with an empty heading path.
    """
    sections: list[Section] = []
    first = heads[0][1] if heads else len(lines)
    if first > 0:
        sections.append(Section("\n".join(lines[:first]), [], 1))
    stack: list[tuple[int, str]] = []
    for n, (level, _start, body, name) in enumerate(heads):
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, name))
        end = heads[n + 1][1] if n + 1 < len(heads) else len(lines)
        names = [h for lv, h in stack if not (lv == 1 and h == title)]
        sections.append(Section("\n".join(lines[body:end]), names, body + 1))
    return sections


# --- PDF -----------------------------------------------------------------------------------

def load_pdf(path: Path, data: bytes) -> LoadedDocument:
    """One section per page, with its 1-based page number. Encrypted PDFs are refused."""
    import io

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:
                ok = reader.decrypt("")  # many "encrypted" PDFs only restrict printing/copying
            except Exception:
                ok = 0
            if not ok:
                raise LoadError("encrypted PDF (password required)")
        meta_title = ""
        try:
            meta = reader.metadata
            meta_title = (meta.title or "").strip() if meta else ""
        except Exception:
            pass
        outline = _outline_by_page(reader)
        sections = []
        current: list[str] = []
        for number, page in enumerate(reader.pages, start=1):
            current = outline.get(number, current)
            text = page.extract_text() or ""
            if text.strip():
                sections.append(Section(text, list(current), None, page=number))
    except LoadError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise LoadError(f"unreadable PDF: {exc}") from exc
    except Exception as exc:  # pypdf raises assorted errors on broken files
        raise LoadError(f"unreadable PDF: {type(exc).__name__}: {exc}") from exc
    if not sections:
        raise LoadError("PDF has no extractable text (scanned images need OCR, which is not supported)")
    return LoadedDocument(str(path), meta_title or path.stem, "pdf", sections)


def _outline_by_page(reader) -> dict[int, list[str]]:
    """Bookmark heading path in force from each page that starts a bookmark (1-based pages)."""
    starts: dict[int, list[str]] = {}

    def walk(items, prefix: list[str]) -> None:
        last: str | None = None
        for item in items:
            if isinstance(item, list):
                if last is not None:
                    walk(item, prefix + [last])
                continue
            try:
                number = reader.get_destination_page_number(item) + 1
                title = " ".join(str(item.title).split())
            except Exception:  # noqa: BLE001 - a broken bookmark only loses its heading
                continue
            if title:
                starts.setdefault(number, prefix + [title])
                last = title

    try:
        walk(reader.outline, [])
    except Exception:  # noqa: BLE001
        return {}
    return starts


# --- Source code ---------------------------------------------------------------------------

def load_code(path: Path, text: str, language: str) -> LoadedDocument:
    """Sections per top-level function/class (Python via ast, brace languages via block scan)."""
    sections: list[Section] | None = None
    if language == "python":
        sections = python_sections(text)
    elif language in BRACE_LANGS:
        sections = brace_sections(text)
    if not sections:
        sections = [Section(text, [], 1, kind="code")]
    return LoadedDocument(str(path), path.name, language, sections)


def python_sections(text: str, max_lines: int = 60) -> list[Section] | None:
    """Module code, functions and classes as sections; long classes are split into methods."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return None
    lines = text.split("\n")
    sections: list[Section] = []

    def span(node: ast.AST) -> tuple[int, int]:
        decos = getattr(node, "decorator_list", [])
        start = min([node.lineno] + [d.lineno for d in decos])
        return start, node.end_lineno or node.lineno

    def emit(start: int, end: int, heading: list[str]) -> None:
        if start <= end:
            sections.append(Section("\n".join(lines[start - 1:end]), heading, start, kind="code"))

    def walk(body: list[ast.stmt], first: int, last: int, prefix: list[str]) -> None:
        cursor = first
        for node in body:
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            start, end = span(node)
            emit(cursor, start - 1, prefix)  # module/class code between definitions
            label = ("class " if isinstance(node, ast.ClassDef) else "def ") + node.name
            if isinstance(node, ast.ClassDef) and end - start + 1 > max_lines:
                inner = [n for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
                if inner:
                    walk(node.body, start, end, prefix + [label])
                else:
                    emit(start, end, prefix + [label])
            else:
                emit(start, end, prefix + [label])
            cursor = end + 1
        emit(cursor, last, prefix)

    walk(tree.body, 1, len(lines), [])
    return sections
