"""Engines and short transactions for SQLite (default) and PostgreSQL, with one code path.

SQLite is opened in WAL mode (readers never block the writer), with a busy timeout so
concurrent writers wait instead of failing, and every write transaction starts with
`BEGIN IMMEDIATE`: taking the write lock up front avoids the deadlock where two deferred
transactions both read, then both try to upgrade to writing. PostgreSQL needs none of this.
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Iterator

from sqlalchemy import event
from sqlalchemy.exc import ArgumentError, DisconnectionError
from sqlalchemy.engine import Connection, Engine, make_url
from sqlmodel import Session, create_engine

BUSY_TIMEOUT_MS = 30_000


def normalize_url(url: str) -> str:
    """Accept `postgresql://` and `postgres://` (as DATABASE_URL usually is) and use psycopg 3."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def make_engine(url: str) -> Engine:
    url = normalize_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError(f"not a database URL: {url!r} (use sqlite:///PATH or postgresql://USER:PASS@HOST/DB)") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
            pool_size=16, max_overflow=16,
        )
        _configure_sqlite(engine)
        return engine
    if backend == "postgresql":
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise ImportError(
                "PostgreSQL logging needs psycopg: pip install 'psycopg[binary]' "
                "(or domain-assistant[postgres])"
            ) from None
        # Sessions in UTC so date() buckets days the same way as on SQLite; keep any
        # `?options=...` from the URL (tests put each run in its own schema that way).
        options = " ".join(filter(None, [str(parsed.query.get("options", "")), "-c timezone=UTC"]))
        engine = create_engine(url, pool_size=16, max_overflow=16, connect_args={"options": options})
        _ping_when_idle(engine)
        return engine
    shown = parsed.render_as_string(hide_password=True)
    raise ValueError(f"unsupported log database {shown!r}: use sqlite:///PATH or postgresql://...")


# A pooled connection idle this long is checked with a round trip before use, so a server
# restart (or an idle-timeout on a proxy) costs a reconnect, not a lost log write. Checking
# every checkout (`pool_pre_ping`) would add a round trip to each of an answer's writes.
IDLE_PING_S = 10.0


def _ping_when_idle(engine: Engine) -> None:
    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_conn, record) -> None:  # type: ignore[no-untyped-def]
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn, record, _proxy) -> None:  # type: ignore[no-untyped-def]
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < IDLE_PING_S:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:  # the pool discards this connection and hands out a new one
            raise DisconnectionError(f"stale connection: {exc}") from exc


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA journal_mode = WAL")
        # NORMAL in WAL mode: a committed row survives a process crash; only an OS crash or
        # power cut can lose the last few commits, and never corrupts the file.
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:  # type: ignore[no-untyped-def]
        immediate = conn.get_execution_options().get("sqlite_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _sqlite_lock(url: str) -> threading.Lock:
    """One lock per database file, shared by every `Database` on it in this process."""
    key = str(Path(make_url(url).database or ":memory:").resolve())
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(key, threading.Lock())


class Database:
    """An engine plus `read()` / `write()` sessions that commit or roll back as a unit."""

    def __init__(self, url: str) -> None:
        self.url = normalize_url(url)
        self.engine = make_engine(self.url)
        self.dialect = self.engine.dialect.name  # "sqlite" | "postgresql"
        self._writer = self.engine.execution_options(sqlite_immediate=True)
        # SQLite has one writer at a time, and a blocked writer polls with sleeps of up to
        # 100 ms (busy_timeout). Threads of this process queue on a lock instead, so they hand
        # the write lock over at once; other processes still wait through busy_timeout.
        self._write_lock: Any = _sqlite_lock(self.url) if self.dialect == "sqlite" else nullcontext()

    @contextmanager
    def write(self) -> Iterator[Session]:
        with self._write_lock, Session(self._writer, expire_on_commit=False) as session:
            with session.begin():
                yield session

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A Core connection in a write transaction (the hot path: no ORM bookkeeping)."""
        with self._write_lock, self._writer.begin() as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            with session.begin():
                yield session

    def close(self) -> None:
        self.engine.dispose()
