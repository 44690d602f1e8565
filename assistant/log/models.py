"""The log's tables as typed SQLModel classes (the current schema).

The schema itself is created and changed only by `migrations.py`; these classes describe the
result so queries are typed. Timestamps are aware UTC datetimes (SQLModel's UTCDateTime):
`TIMESTAMP WITH TIME ZONE` on PostgreSQL, UTC text without an offset on SQLite.
"""
from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel import Field, SQLModel

STATUSES = ("complete", "incomplete", "error")


def utcnow() -> datetime:
    return datetime.now(UTC)


class ConversationRow(SQLModel, table=True):
    __tablename__ = "conversations"

    id: str = Field(primary_key=True)
    user: str | None = None  # only when the UI knows it (auth)
    title: str = ""  # the first question, unless given
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)  # retention counts from here
    opted_out: bool = False  # keep out of training exports


class MessageRow(SQLModel, table=True):
    __tablename__ = "messages"

    id: str = Field(primary_key=True)
    conversation_id: str = Field(foreign_key="conversations.id")
    role: str  # user | assistant
    content: str = ""
    task: str = "qa"
    model: str | None = None  # the model that actually answered (resolved name, not the alias)
    options: str = "{}"  # generation options as JSON text (portable across SQLite/PostgreSQL)
    tokens_in: int = 0
    tokens_out: int = 0
    ttft_ms: float = 0.0
    duration_ms: float = 0.0
    parent_id: str | None = None  # the answer's question; the question's previous turn
    status: str = "complete"  # complete | incomplete (written before generating) | error
    declined: bool = False  # the assistant said it could not answer from the documents
    collections: str = ""  # the document collections the answer drew on, comma-separated ('' before m007)
    request_id: str | None = None  # the serving request that wrote it (X-Request-ID), None outside a server
    created_at: datetime = Field(default_factory=utcnow)


class SourceRow(SQLModel, table=True):
    __tablename__ = "sources"

    id: str = Field(primary_key=True)
    message_id: str = Field(foreign_key="messages.id")
    rank: int  # 1-based: the [n] the answer cites
    path: str
    title: str = ""
    locator: str = ""
    score: float = 0.0
    supported: bool | None = None  # None = not checked
    snippet: str = ""


class FeedbackRow(SQLModel, table=True):
    __tablename__ = "feedback"

    id: str = Field(primary_key=True)
    message_id: str = Field(foreign_key="messages.id")
    rating: int  # -1 | 0 | 1
    comment: str | None = None
    correction: str | None = None  # the answer the user says was right; replaces it in exports
    user: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class OptOutRow(SQLModel, table=True):
    """A user whose conversations, past and future, stay out of training exports."""

    __tablename__ = "opt_outs"

    user: str = Field(primary_key=True)
    created_at: datetime = Field(default_factory=utcnow)
