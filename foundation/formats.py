"""The file formats the product reads: one table that ingest, upload and fine-tuning all consult.

Each suffix maps to the loader that reads it (`index.loaders`): "markdown", "rst", "text",
"html", "pdf", "docx", "man" (a manual page's roff source, `ls.1` or `open.2.gz`), or a
programming language for source code. A suffix missing here is refused everywhere with the same
message, so the upload filter cannot accept what ingest skips.
"""
from __future__ import annotations

import re
from pathlib import Path

MARKDOWN = {".md", ".markdown", ".mdx"}
RST = {".rst", ".rest"}
TEXT = {".txt", ".text", ".log", ".csv", ".tsv", ".json", ".yaml", ".yml", ".toml", ".ini", ".cfg", ".conf"}
HTML = {".html", ".htm", ".xhtml"}
CODE = {
    ".py": "python", ".pyi": "python",
    ".js": "javascript", ".jsx": "javascript", ".mjs": "javascript", ".cjs": "javascript",
    ".ts": "typescript", ".tsx": "typescript",
    ".go": "go", ".java": "java", ".kt": "kotlin", ".scala": "scala", ".cs": "csharp",
    ".rs": "rust", ".swift": "swift", ".php": "php",
    ".c": "c", ".h": "c", ".cc": "cpp", ".cpp": "cpp", ".cxx": "cpp", ".hpp": "cpp", ".hh": "cpp", ".hxx": "cpp",
    ".sh": "shell", ".bash": "shell", ".rb": "ruby", ".sql": "sql",
}
BRACE_LANGS = {"javascript", "typescript", "go", "java", "kotlin", "scala", "csharp", "rust", "swift", "php", "c", "cpp"}

_KINDS: dict[str, str] = {
    **{s: "markdown" for s in MARKDOWN}, **{s: "rst" for s in RST}, **{s: "text" for s in TEXT},
    **{s: "html" for s in HTML}, ".pdf": "pdf", ".docx": "docx", **CODE,
}
# A manual page: section 1-9 and an optional suffix of letters ("ls.1", "printf.3p", "ls.1.gz", as
# /usr/share/man holds them). Uploads take the plain sections; a folder's compressed pages are read too.
MAN_SECTIONS = tuple(f".{n}" for n in range(1, 10))
_MAN_SUFFIX = re.compile(r"^\.[1-9](?!z$)[a-z]{0,4}$")  # not ".7z", an archive
SUPPORTED_SUFFIXES: tuple[str, ...] = tuple(sorted([*_KINDS, *MAN_SECTIONS]))
# Formats whose bytes are the text itself (no parser needed to get words out).
PLAIN_TEXT_SUFFIXES: tuple[str, ...] = tuple(sorted(MARKDOWN | RST | TEXT))


def file_type_of(path: str | Path) -> str | None:
    """The loader name for a path, or None when the product does not read that kind of file."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".gz":  # only a compressed manual page; any other .gz is an archive we do not open
        p = Path(p.stem)
        suffix = p.suffix.lower()
        return "man" if _MAN_SUFFIX.match(suffix) and p.stem else None
    if _MAN_SUFFIX.match(suffix) and p.stem:
        return "man"
    return _KINDS.get(suffix)


def is_supported(path: str | Path) -> bool:
    return file_type_of(path) is not None
