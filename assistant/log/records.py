"""What the log hands back: plain dataclasses, detached from any database session."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from assistant.log.models import ConversationRow, FeedbackRow, MessageRow, SourceRow
from assistant.timing import Timings


def aware(value: datetime | str) -> datetime:
    """Stored naive UTC (or a SQLite string from a raw query) -> aware UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def timing_columns(t: Timings) -> dict[str, Any]:
    """An answer's `Timings` as the message table's columns: `duration_ms` is the whole answer."""
    return {"tokens_in": t.tokens_in, "tokens_out": t.tokens_out, "ttft_ms": t.ttft_ms, "duration_ms": t.total_ms}


@dataclass
class LoggedSource:
    rank: int
    path: str
    title: str
    locator: str
    score: float
    supported: bool | None
    snippet: str

    @classmethod
    def from_row(cls, row: SourceRow) -> "LoggedSource":
        return cls(row.rank, row.path, row.title, row.locator, row.score, row.supported, row.snippet)


@dataclass
class LoggedFeedback:
    id: str
    rating: int
    comment: str | None
    correction: str | None
    user: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: FeedbackRow) -> "LoggedFeedback":
        return cls(row.id, row.rating, row.comment, row.correction, row.user,
                   aware(row.created_at), aware(row.updated_at))


@dataclass
class LoggedMessage:
    """One message; `sources` and `feedback` are filled by `get_conversation` only."""

    id: str
    role: str
    content: str
    task: str
    created_at: datetime
    status: str
    conversation_id: str = ""
    model: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    tokens_in: int = 0
    tokens_out: int = 0
    ttft_ms: float = 0.0
    duration_ms: float = 0.0
    parent_id: str | None = None
    declined: bool = False
    collections: list[str] = field(default_factory=list)  # what the answer drew on ([] before they were recorded)
    sources: list[LoggedSource] = field(default_factory=list)
    feedback: list[LoggedFeedback] = field(default_factory=list)

    @classmethod
    def from_row(cls, row: MessageRow) -> "LoggedMessage":
        return cls(
            id=row.id, role=row.role, content=row.content, task=row.task,
            created_at=aware(row.created_at), status=row.status,
            conversation_id=row.conversation_id, model=row.model,
            options=json.loads(row.options or "{}"), tokens_in=row.tokens_in,
            tokens_out=row.tokens_out, ttft_ms=row.ttft_ms, duration_ms=row.duration_ms,
            parent_id=row.parent_id, declined=bool(row.declined),
            collections=[c for c in (row.collections or "").split(",") if c],
        )

    @property
    def timings(self) -> Timings:
        """The answer's `Timings` as stored (the log keeps the first token, the total and token counts)."""
        return Timings(ttft_ms=self.ttft_ms, total_ms=self.duration_ms, tokens_in=self.tokens_in,
                       tokens_out=self.tokens_out)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["created_at"] = self.created_at.isoformat()
        for fb in d["feedback"]:
            fb["created_at"] = fb["created_at"].isoformat()
            fb["updated_at"] = fb["updated_at"].isoformat()
        return d


@dataclass
class ConversationSummary:
    id: str
    title: str
    user: str | None
    created_at: datetime
    n_messages: int
    updated_at: datetime | None = None


@dataclass
class ConversationDetail:
    id: str
    title: str
    user: str | None
    created_at: datetime
    updated_at: datetime
    opted_out: bool
    messages: list[LoggedMessage] = field(default_factory=list)

    @classmethod
    def from_row(cls, row: ConversationRow, messages: list[LoggedMessage]) -> "ConversationDetail":
        return cls(row.id, row.title, row.user, aware(row.created_at), aware(row.updated_at),
                   bool(row.opted_out), messages)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "title": self.title, "user": self.user,
            "created_at": self.created_at.isoformat(), "updated_at": self.updated_at.isoformat(),
            "opted_out": self.opted_out, "messages": [m.to_dict() for m in self.messages],
        }
