"""What a loader hands the chunker: a document as structural sections that keep their provenance.

Kept apart from the loaders so that the format scanners (`code_blocks`), the chunker and the
loader worker process share these types without importing the loaders themselves.
"""
from __future__ import annotations

from dataclasses import dataclass, field


class LoadError(Exception):
    """A file that cannot be indexed; the message is the reason shown in IngestReport.failed."""


@dataclass
class Section:
    """A structural piece of a document: one heading's text, one PDF page, one function."""

    text: str
    heading: list[str] = field(default_factory=list)
    start_line: int | None = None  # 1-based line of text[0] in the file, when the format has lines
    page: int | None = None
    kind: str = "prose"  # "prose" splits on sentences, "code" on lines


@dataclass
class LoadedDocument:
    path: str
    title: str
    file_type: str
    sections: list[Section]
