"""A log written by the first schema version opens in this one without losing rows."""
from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from assistant.log import ConversationLog
from assistant.log.db import Database
from assistant.log.migrations import MIGRATIONS, applied, migrate
from index.types import Source


T0 = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
V1_ROWS = [
    "INSERT INTO conversations (id, \"user\", title, created_at, updated_at) "
    "VALUES ('01C0NV', 'ann', 'How do I rotate keys?', :t0, :t2)",
    "INSERT INTO messages (id, conversation_id, role, content, task, created_at) "
    "VALUES ('01MSG1', '01C0NV', 'user', 'How do I rotate keys?', 'qa', :t0)",
    "INSERT INTO messages (id, conversation_id, role, content, task, model, options, tokens_in, tokens_out, "
    "duration_ms, parent_id, status, created_at) VALUES ('01MSG2', '01C0NV', 'assistant', "
    "'Run vault rotate [1].', 'qa', 'smollm2', '{\"temperature\": 0}', 300, 9, 812.5, '01MSG1', 'complete', :t1)",
    "INSERT INTO sources (id, message_id, rank, path, title, locator, score, snippet) "
    "VALUES ('01SRC1', '01MSG2', 1, 'docs/keys.md', 'Keys', '§ Rotation', 0.83, 'vault rotate')",
    # Version 1 let the same user rate an answer twice; the later rating must survive.
    "INSERT INTO feedback (id, message_id, rating, comment, \"user\", created_at) "
    "VALUES ('01FB01', '01MSG2', -1, 'first thought', 'bob', :t1)",
    "INSERT INTO feedback (id, message_id, rating, comment, \"user\", created_at) "
    "VALUES ('01FB02', '01MSG2', 1, 'actually right', 'bob', :t2)",
    "INSERT INTO feedback (id, message_id, rating, comment, \"user\", created_at) "
    "VALUES ('01FB03', '01MSG2', 1, NULL, 'carol', :t2)",
]


def build_version_1(url: str) -> None:
    """Run only migration 1 and fill it the way version 1 of the code did."""
    db = Database(url)
    params = {"t0": T0, "t1": T0 + timedelta(seconds=2), "t2": T0 + timedelta(seconds=30)}
    if db.dialect == "sqlite":  # raw SQL on SQLite: store what SQLAlchemy's DateTime would
        params = {k: v.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds") for k, v in params.items()}
    with db.write() as s:
        conn = s.connection()
        assert migrate(conn, db.dialect, upto=1) == ["m001_initial"]
        for sql in V1_ROWS:
            conn.execute(text(sql), params)
    db.close()


def test_version_1_database_migrates_without_losing_rows(url):
    build_version_1(url)
    log = ConversationLog.open(url)
    try:
        with log.db.read() as s:
            assert applied(s.connection()) == [name for name, _ in MIGRATIONS]
        detail = log.get_conversation("01C0NV")
        assert (detail.user, detail.title, detail.opted_out) == ("ann", "How do I rotate keys?", False)
        assert detail.created_at == T0
        q, a = detail.messages
        assert (q.role, q.content, a.content, a.parent_id) == ("user", "How do I rotate keys?", "Run vault rotate [1].", "01MSG1")
        assert (a.model, a.options, a.tokens_in, a.tokens_out, a.duration_ms) == ("smollm2", {"temperature": 0}, 300, 9, 812.5)
        assert (a.ttft_ms, a.declined, a.status) == (0.0, False, "complete")  # new columns, defaults
        (src,) = a.sources
        assert (src.path, src.locator, src.score, src.supported) == ("docs/keys.md", "§ Rotation", 0.83, None)
        ratings = {f.user: (f.rating, f.comment, f.correction) for f in a.feedback}
        assert ratings == {"bob": (1, "actually right", None), "carol": (1, None, None)}
        assert {f.user: f.updated_at for f in a.feedback}["bob"] == T0 + timedelta(seconds=30)
        assert {m.id for m in log.search("rotate")} == {"01MSG1", "01MSG2"}  # old rows are in the index
        (record,) = log.export()
        assert record["messages"][1]["content"] == "Run vault rotate [1]." and record["user"] == "ann"

        # ... and the migrated database takes new writes with the new columns.
        qid = log.record_question("01C0NV", "And the old key?", task="qa")
        aid = log.begin_answer("01C0NV", qid, task="qa", model="m", options={})
        log.finish_answer(aid, content="Revoke it [1].", sources=[Source("docs/keys.md", "Keys", "§ Revoke", "", 0.7)],
                          supported=[True], ttft_ms=40.0, declined=False)
        log.add_feedback("01MSG2", rating=-1, user="bob")  # updates bob's surviving row
        assert len(log.get_conversation("01C0NV").messages) == 4
        assert log.stats()["ratings"] == 2
    finally:
        log.close()


def test_opening_again_applies_nothing(url):
    ConversationLog.open(url).close()
    db = Database(url)
    with db.write() as s:
        assert migrate(s.connection(), db.dialect) == []
    db.close()


def test_concurrent_first_opens_migrate_once(url):
    errors: list[BaseException] = []

    def open_once() -> None:
        try:
            ConversationLog.open(url).close()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_once) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    log = ConversationLog.open(url)
    with log.db.read() as s:
        assert applied(s.connection()) == [name for name, _ in MIGRATIONS]
    log.close()


def test_a_newer_schema_is_reported(url):
    ConversationLog.open(url).close()
    db = Database(url)
    with db.write() as s:
        s.connection().execute(text("INSERT INTO _migrations (name, applied_at) VALUES ('m999_future', CURRENT_TIMESTAMP)"))
    db.close()
    with pytest.warns(UserWarning, match="newer version.*m999_future"):
        ConversationLog.open(url).close()


def test_migrations_build_exactly_the_tables_the_models_describe(url):
    from sqlalchemy import inspect

    from assistant.log.models import ConversationRow, FeedbackRow, MessageRow, OptOutRow, SourceRow

    log = ConversationLog.open(url)
    try:
        with log.db.read() as s:
            inspector = inspect(s.connection())
            for model in (ConversationRow, MessageRow, SourceRow, FeedbackRow, OptOutRow):
                table = model.__table__
                in_db = {c["name"]: c["nullable"] for c in inspector.get_columns(table.name)}
                in_model = {c.name: c.nullable for c in table.columns}
                assert set(in_db) == set(in_model), table.name
                # a column the model treats as required must be NOT NULL in the database
                assert [n for n, nullable in in_model.items() if not nullable and in_db[n]] == [], table.name
    finally:
        log.close()
