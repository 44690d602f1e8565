"""Log databases for the tests (and `benchmarks/bench_log.py`): a real SQLite file or a private PostgreSQL schema.

PostgreSQL tests read `TEST_POSTGRES_URL` (set it with `eval "$(bash scripts/start_postgres.sh)"`).
Each test gets its own schema (`?options=-csearch_path=...`) so tests never see each other's rows,
and the schema is dropped afterwards.
"""
from __future__ import annotations

import os
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import quote

from assistant.log.ids import new_id

POSTGRES_ENV = "TEST_POSTGRES_URL"
BACKENDS = ("sqlite", "postgresql")


def postgres_unavailable() -> str | None:
    """Why PostgreSQL tests cannot run here, or None when they can."""
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        return f"{POSTGRES_ENV} is not set (run: eval \"$(bash scripts/start_postgres.sh)\")"
    try:
        import psycopg

        from assistant.log.db import normalize_url

        plain = normalize_url(url).replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(plain, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - any failure means "skip, loudly"
        return f"PostgreSQL at {url} is unreachable: {exc}"
    return None


def skip_postgres_loudly(reason: str) -> None:
    """Warn (shows in pytest's summary) and print, so a skipped backend is never missed."""
    message = f"PostgreSQL log tests SKIPPED: {reason}"
    warnings.warn(message, stacklevel=2)
    print(f"\n*** {message} ***")


@contextmanager
def postgres_schema_url(base_url: str) -> Iterator[str]:
    """A URL whose connections use a fresh, empty schema; the schema is dropped on exit."""
    import psycopg

    from assistant.log.db import normalize_url

    schema = f"t_{new_id().lower()}"
    plain = normalize_url(base_url).replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in base_url else "?"
    try:
        yield f"{normalize_url(base_url)}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@contextmanager
def backend_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty log database of the given kind. Raises `LookupError` when unavailable."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'log.db'}"
        return
    reason = postgres_unavailable()
    if reason:
        raise LookupError(reason)
    with postgres_schema_url(os.environ[POSTGRES_ENV]) as url:
        yield url
