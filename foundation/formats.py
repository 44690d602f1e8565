"""The file formats the product reads: one table that ingest, upload and fine-tuning all consult.

Each suffix maps to the loader that reads it (`index.loaders`): "markdown", "rst", "text",
"html", "pdf", "docx", or a programming language for source code. A suffix missing here is
refused everywhere with the same message, so the upload filter cannot accept what ingest skips.
"""
from __future__ import annotations

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
SUPPORTED_SUFFIXES: tuple[str, ...] = tuple(sorted(_KINDS))
# Formats whose bytes are the text itself (no parser needed to get words out).
PLAIN_TEXT_SUFFIXES: tuple[str, ...] = tuple(sorted(MARKDOWN | RST | TEXT))


def file_type_of(path: str | Path) -> str | None:
    """The loader name for a path, or None when the product does not read that kind of file."""
    return _KINDS.get(Path(path).suffix.lower())


def is_supported(path: str | Path) -> bool:
    return file_type_of(path) is not None
