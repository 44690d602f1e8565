"""The id of the request being served, carried with the work it causes (logs, the conversation log).

A server binds an id per HTTP request (the proxy's `X-Request-ID` when it sends one); whatever runs
on its behalf, in the same thread or a thread that copied the context, reads it here. It lives below
every package because the log (`assistant.log`) records it and the server (`ui`) sets it.
"""
from __future__ import annotations

import contextlib
import uuid
from contextvars import ContextVar
from typing import Iterator

_REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
MAX_ID_CHARS = 64  # a proxy's id is 32 hex characters; anything longer is not an id we trust


def new_request_id() -> str:
    return uuid.uuid4().hex


def current_request_id() -> str | None:
    """The id bound by the request being served here, or None outside one."""
    return _REQUEST_ID.get()


def clean_request_id(value: str | None) -> str | None:
    """A client-supplied id kept only when it is short and plain (it ends up in logs and the database)."""
    if not value or len(value) > MAX_ID_CHARS or not all(c.isalnum() or c in "-_." for c in value):
        return None
    return value


def set_request_id(request_id: str) -> None:
    """Bind `request_id` in the current context for good: for a `contextvars.Context` made to run one
    piece of work (a streamed answer resumed from different threads), where no reset is due."""
    _REQUEST_ID.set(request_id)


@contextlib.contextmanager
def bound_request_id(request_id: str | None = None) -> Iterator[str]:
    """Bind `request_id` (a new one when None) for the duration of the block."""
    rid = request_id or new_request_id()
    token = _REQUEST_ID.set(rid)
    try:
        yield rid
    finally:
        _REQUEST_ID.reset(token)
