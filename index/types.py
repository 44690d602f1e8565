"""The data that flows out of the index: chunks with provenance, search hits and ingest reports."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Source:
    """One retrieved passage and where it came from.

    `locator` is the human-readable place inside the document ("§ Install > Linux",
    "page 3", "lines 10-42"); `snippet` is a short excerpt for display and `text` the
    whole passage handed to the model.
    """

    path: str
    title: str
    locator: str
    snippet: str
    score: float
    text: str = ""
    chunk_id: str = ""
    heading: str = ""
    page: int | None = None
    start_line: int | None = None
    end_line: int | None = None
    rank: int = 0
    dense_score: float | None = None  # cosine similarity to the query, when dense search saw it
    collection: str = "shared"  # the document's collection: the log records which ones an answer drew on

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FailedFile:
    path: str
    reason: str


@dataclass
class IngestReport:
    """What an ingest did, file by file: nothing is silently dropped."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[FailedFile] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    chunks_added: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        return (
            f"added {len(self.added)}, updated {len(self.updated)}, skipped {len(self.skipped)}, "
            f"failed {len(self.failed)}, removed {len(self.removed)} "
            f"({self.chunks_added} chunks in {self.seconds:.1f}s)"
        )
