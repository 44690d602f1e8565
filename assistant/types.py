"""Results the assistant hands back: answers, their checked sentences and timings."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from assistant.timing import Timings
from index.types import FailedFile, IngestReport, Source

__all__ = ["Answer", "SentenceCheck", "Source", "IngestReport", "FailedFile", "Timings"]


@dataclass
class SentenceCheck:
    """One answer sentence and whether the passages it cites support it."""

    text: str
    citations: list[int] = field(default_factory=list)
    supported: bool = True
    score: float = 0.0


@dataclass
class Answer:
    """An answer with the passages it was given (`sources`, numbered [1]..[n] in order)."""

    text: str
    sources: list[Source] = field(default_factory=list)
    task: str = "qa"
    conversation_id: str | None = None
    message_id: str | None = None
    question: str = ""
    standalone_query: str = ""
    model: str = ""
    declined: bool = False
    sentences: list[SentenceCheck] = field(default_factory=list)
    timings: Timings = field(default_factory=Timings)
    extra: dict[str, Any] = field(default_factory=dict)
    collections: list[str] = field(default_factory=list)  # what its sources (and earlier turns) drew on

    @property
    def supported(self) -> bool:
        """True when every checked sentence is supported by a cited passage."""
        return all(s.supported for s in self.sentences)

    @property
    def cited_sources(self) -> list[Source]:
        nums = sorted({c for s in self.sentences for c in s.citations})
        return [self.sources[n - 1] for n in nums if 0 < n <= len(self.sources)]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["supported"] = self.supported
        return d
