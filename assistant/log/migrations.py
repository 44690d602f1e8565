"""Numbered, append-only schema migrations, applied automatically when the log is opened.

In the style of simonw/llm: each migration is a function registered in order; the names of
applied ones are recorded in `_migrations`, so a database written by any older version opens
in a newer one and gains the new tables and columns without losing rows. Never edit or
reorder a released migration; add a new one at the end.

Migrations write portable DDL (TEXT, INTEGER, DOUBLE PRECISION, BOOLEAN, TIMESTAMP) that both
SQLite and PostgreSQL accept, and branch on the dialect only where the two genuinely differ
(full-text search). `"user"` is quoted because it is a reserved word in PostgreSQL.
"""
from __future__ import annotations

import warnings
from typing import Callable

from sqlalchemy import text
from sqlalchemy.engine import Connection

from assistant.log.models import utcnow

Migration = Callable[[Connection, str], None]
MIGRATIONS: list[tuple[str, Migration]] = []
_LOCK_KEY = 74_110_523  # pg_advisory_xact_lock key: one migrator at a time per database


def migration(fn: Migration) -> Migration:
    MIGRATIONS.append((fn.__name__, fn))
    return fn


def _run(conn: Connection, *statements: str) -> None:
    for sql in statements:
        conn.execute(text(sql))


@migration
def m001_initial(conn: Connection, dialect: str) -> None:
    """Ids are spelled NOT NULL because SQLite lets a non-integer primary key be NULL."""
    _run(
        conn,
        """CREATE TABLE conversations (
            id TEXT NOT NULL PRIMARY KEY,
            "user" TEXT,
            title TEXT NOT NULL DEFAULT '',
            created_at TIMESTAMP WITH TIME ZONE NOT NULL,
            updated_at TIMESTAMP WITH TIME ZONE NOT NULL
        )""",
        """CREATE TABLE messages (
            id TEXT NOT NULL PRIMARY KEY,
            conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            role TEXT NOT NULL,
            content TEXT NOT NULL DEFAULT '',
            task TEXT NOT NULL DEFAULT 'qa',
            model TEXT,
            options TEXT NOT NULL DEFAULT '{}',
            tokens_in INTEGER NOT NULL DEFAULT 0,
            tokens_out INTEGER NOT NULL DEFAULT 0,
            duration_ms DOUBLE PRECISION NOT NULL DEFAULT 0,
            parent_id TEXT,
            status TEXT NOT NULL DEFAULT 'complete',
            created_at TIMESTAMP WITH TIME ZONE NOT NULL
        )""",
        """CREATE TABLE sources (
            id TEXT NOT NULL PRIMARY KEY,
            message_id TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
            rank INTEGER NOT NULL,
            path TEXT NOT NULL,
            title TEXT NOT NULL DEFAULT '',
            locator TEXT NOT NULL DEFAULT '',
            score DOUBLE PRECISION NOT NULL DEFAULT 0,
            snippet TEXT NOT NULL DEFAULT ''
        )""",
        """CREATE TABLE feedback (
            id TEXT NOT NULL PRIMARY KEY,
            message_id TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
            rating INTEGER NOT NULL,
            comment TEXT,
            "user" TEXT,
            created_at TIMESTAMP WITH TIME ZONE NOT NULL
        )""",
    )


@migration
def m002_answer_quality(conn: Connection, dialect: str) -> None:
    """Time to first token, declined answers, per-source support, corrections."""
    now = utcnow().replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    _run(
        conn,
        "ALTER TABLE messages ADD COLUMN ttft_ms DOUBLE PRECISION NOT NULL DEFAULT 0",
        "ALTER TABLE messages ADD COLUMN declined BOOLEAN NOT NULL DEFAULT FALSE",
        "ALTER TABLE sources ADD COLUMN supported BOOLEAN",
        "ALTER TABLE feedback ADD COLUMN correction TEXT",
        # A constant default is required by SQLite's ADD COLUMN ... NOT NULL; old rows get
        # their created_at copied in right after.
        f"ALTER TABLE feedback ADD COLUMN updated_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT '{now}'",
        "UPDATE feedback SET updated_at = created_at",
    )


@migration
def m003_opt_out(conn: Connection, dialect: str) -> None:
    """Users who asked that their conversations stay out of training data."""
    _run(
        conn,
        "ALTER TABLE conversations ADD COLUMN opted_out BOOLEAN NOT NULL DEFAULT FALSE",
        'CREATE TABLE opt_outs ("user" TEXT NOT NULL PRIMARY KEY, created_at TIMESTAMP WITH TIME ZONE NOT NULL)',
    )


@migration
def m004_indexes(conn: Connection, dialect: str) -> None:
    """Indexes for the common queries; one feedback row per (message, user).

    Version 1 allowed a user to rate a message twice; the latest rating (ids sort by time)
    is the one kept, so the unique index can be built.
    """
    _run(
        conn,
        """DELETE FROM feedback WHERE id NOT IN (
            SELECT MAX(id) FROM feedback GROUP BY message_id, COALESCE("user", ''))""",
        "CREATE INDEX ix_messages_conversation ON messages (conversation_id, created_at)",
        "CREATE INDEX ix_messages_created ON messages (created_at)",
        "CREATE INDEX ix_messages_parent ON messages (parent_id)",
        "CREATE INDEX ix_sources_message ON sources (message_id)",
        "CREATE INDEX ix_feedback_message ON feedback (message_id)",
        """CREATE UNIQUE INDEX ux_feedback_message_user ON feedback (message_id, COALESCE("user", ''))""",
        "CREATE INDEX ix_conversations_updated ON conversations (updated_at)",
        'CREATE INDEX ix_conversations_user ON conversations ("user")',
    )


@migration
def m005_full_text(conn: Connection, dialect: str) -> None:
    """Full-text search over message content: FTS5 on SQLite, a GIN index on PostgreSQL.

    The FTS5 table keeps its own copy of the text keyed by message id (not an external-content
    table on the implicit rowid, which VACUUM may renumber). Answers are written empty and
    filled in later, so the triggers index text when it first appears.
    """
    if dialect == "postgresql":
        _run(conn, "CREATE INDEX ix_messages_fts ON messages USING GIN (to_tsvector('simple', content))")
        return
    _run(
        conn,
        """CREATE VIRTUAL TABLE messages_fts USING fts5(
            message_id UNINDEXED, content, tokenize = 'unicode61 remove_diacritics 2')""",
        """CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages WHEN new.content != ''
        BEGIN INSERT INTO messages_fts (message_id, content) VALUES (new.id, new.content); END""",
        """CREATE TRIGGER messages_fts_fill AFTER UPDATE OF content ON messages
        WHEN old.content = '' AND new.content != ''
        BEGIN INSERT INTO messages_fts (message_id, content) VALUES (new.id, new.content); END""",
        """CREATE TRIGGER messages_fts_change AFTER UPDATE OF content ON messages
        WHEN old.content != '' AND new.content != old.content
        BEGIN
            DELETE FROM messages_fts WHERE message_id = old.id;
            INSERT INTO messages_fts (message_id, content) SELECT new.id, new.content WHERE new.content != '';
        END""",
        "INSERT INTO messages_fts (message_id, content) SELECT id, content FROM messages WHERE content != ''",
    )


@migration
def m006_request_id(conn: Connection, dialect: str) -> None:
    """The serving request each message came from, so a JSON log line and its conversation row meet."""
    _run(
        conn,
        "ALTER TABLE messages ADD COLUMN request_id TEXT",
        "CREATE INDEX ix_messages_request ON messages (request_id)",
    )


@migration
def m007_message_collections(conn: Connection, dialect: str) -> None:
    """Which document collections an answer drew on (comma-separated names, sorted).

    Rows written before collections existed keep '': every document was in `shared` then, and
    exports map such an answer's source paths to their collections today (`logs export`)."""
    _run(conn, "ALTER TABLE messages ADD COLUMN collections TEXT NOT NULL DEFAULT ''")


def applied(conn: Connection) -> list[str]:
    return [r[0] for r in conn.execute(text("SELECT name FROM _migrations ORDER BY name"))]


def migrate(conn: Connection, dialect: str, *, upto: int | None = None) -> list[str]:
    """Apply the pending migrations (the first `upto` only, for tests); return their names.

    Runs inside the caller's write transaction: SQLite's BEGIN IMMEDIATE or PostgreSQL's
    advisory lock make concurrent openers take turns, and the DDL commits or rolls back
    together with the record of it.
    """
    if dialect == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
    conn.execute(text("CREATE TABLE IF NOT EXISTS _migrations (name TEXT NOT NULL PRIMARY KEY, applied_at TIMESTAMP WITH TIME ZONE NOT NULL)"))
    done = set(applied(conn))
    unknown = sorted(done - {name for name, _ in MIGRATIONS})
    if unknown:  # additive migrations keep old code working, but say what is going on
        warnings.warn(f"the conversation log was migrated by a newer version ({', '.join(unknown)}); "
                      "this version will not use those changes", stacklevel=3)
    ran = []
    for name, fn in MIGRATIONS[:upto]:
        if name in done:
            continue
        fn(conn, dialect)
        conn.execute(text("INSERT INTO _migrations (name, applied_at) VALUES (:n, CURRENT_TIMESTAMP)"), {"n": name})
        ran.append(name)
    return ran
