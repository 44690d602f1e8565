"""The conversation log on real SQLite and real PostgreSQL: what goes in comes back out."""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from assistant.config import Config
from assistant.log import ConversationLog, log_url
from index.types import Source


@pytest.fixture
def log(url):
    log = ConversationLog.open(url)
    yield log
    log.close()


def sources(n: int = 3) -> list[Source]:
    return [Source(path=f"docs/guide-{i}.md", title=f"Guide {i}", locator=f"§ Keys > Step {i}",
                   snippet=f"step {i} of rotating keys", score=0.9 - i / 10, text="full passage") for i in range(n)]


def answer(log: ConversationLog, cid: str, question: str, reply: str, **finish) -> tuple[str, str]:
    qid = log.record_question(cid, question, task="qa")
    aid = log.begin_answer(cid, qid, task="qa", model="SmolLM2-135M-Instruct", options={"temperature": 0.0})
    log.finish_answer(aid, content=reply, sources=finish.pop("sources", sources()), **finish)
    return qid, aid


def count(log: ConversationLog, table: str) -> int:
    with log.db.read() as s:
        return s.connection().execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one()


def test_round_trip_keeps_every_field(log):
    cid = log.start_conversation(user="ann")
    assert log.conversation_exists(cid) and not log.conversation_exists("nope")
    qid, aid = answer(log, cid, "How do I rotate keys?", "Run `vault rotate` [1].",
                      supported=[True, False, True], tokens_in=321, tokens_out=12,
                      ttft_ms=45.5, duration_ms=812.25)
    q2, a2 = answer(log, cid, "And the old key?", "I could not find that.", declined=True, sources=[])

    detail = log.get_conversation(cid)
    assert (detail.id, detail.user, detail.title, detail.opted_out) == (cid, "ann", "How do I rotate keys?", False)
    assert [m.id for m in detail.messages] == [qid, aid, q2, a2]
    assert [m.role for m in detail.messages] == ["user", "assistant"] * 2
    a = detail.messages[1]
    assert (a.content, a.status, a.model, a.task) == ("Run `vault rotate` [1].", "complete", "SmolLM2-135M-Instruct", "qa")
    assert a.options == {"temperature": 0.0} and a.parent_id == qid
    assert (a.tokens_in, a.tokens_out, a.ttft_ms, a.duration_ms, a.declined) == (321, 12, 45.5, 812.25, False)
    assert [(s.rank, s.path, s.locator, s.supported) for s in a.sources] == [
        (1, "docs/guide-0.md", "§ Keys > Step 0", True), (2, "docs/guide-1.md", "§ Keys > Step 1", False),
        (3, "docs/guide-2.md", "§ Keys > Step 2", True)]
    assert a.sources[0].score == pytest.approx(0.9) and a.sources[0].snippet == "step 0 of rotating keys"
    assert detail.messages[3].declined and detail.messages[3].sources == []
    assert detail.messages[2].parent_id == aid  # a follow-up question points at the previous turn
    assert a.created_at.tzinfo is not None and abs(a.created_at - datetime.now(UTC)) < timedelta(minutes=1)
    assert [m.id for m in log.history(cid)] == [qid, aid, q2, a2]
    assert sorted([qid, aid, q2, a2]) == [qid, aid, q2, a2]  # ids sort by creation time

    (summary,) = log.list_conversations()
    assert (summary.id, summary.title, summary.user, summary.n_messages) == (cid, "How do I rotate keys?", "ann", 4)
    json.dumps(detail.to_dict())  # serialisable for `logs show --json`


def test_list_conversations_newest_first_and_by_user(log):
    ids = []
    for user in ["ann", "bob", "ann"]:
        cid = log.start_conversation(user=user)
        answer(log, cid, f"question from {user}", "reply")
        ids.append(cid)
    assert [c.id for c in log.list_conversations()] == ids[::-1]
    assert [c.id for c in log.list_conversations(user="ann")] == [ids[2], ids[0]]
    assert len(log.list_conversations(limit=1)) == 1


def test_bad_input_is_refused_and_writes_nothing(log):
    cid = log.start_conversation()
    other = log.start_conversation()
    qid = log.record_question(cid, "q", task="qa")
    before = {t: count(log, t) for t in ("messages", "sources", "feedback")}
    with pytest.raises(KeyError):
        log.record_question("missing", "q", task="qa")
    with pytest.raises(KeyError):
        log.begin_answer(other, qid, task="qa", model="m", options={})  # question of another conversation
    with pytest.raises(KeyError):
        log.finish_answer("missing", content="x", sources=[])
    with pytest.raises(KeyError):
        log.finish_answer(qid, content="x", sources=[])  # a question is not an answer
    aid = log.begin_answer(cid, qid, task="qa", model="m", options={})
    with pytest.raises(ValueError, match="status"):
        log.finish_answer(aid, content="x", sources=[], status="done")
    with pytest.raises(ValueError, match="supported"):
        log.finish_answer(aid, content="x", sources=sources(2), supported=[True])
    for bad in (2, -2, True):
        with pytest.raises(ValueError, match="rating"):
            log.add_feedback(aid, rating=bad)
    with pytest.raises(KeyError):
        log.add_feedback("missing", rating=1)
    with pytest.raises(KeyError):
        log.history("missing")
    with pytest.raises(KeyError):
        log.get_conversation("missing")
    with pytest.raises(ValueError):
        log.apply_retention(0)
    after = {t: count(log, t) for t in ("messages", "sources", "feedback")}
    assert after == {**before, "messages": before["messages"] + 1}  # only the begun answer
    assert log.get_conversation(cid).messages[-1].status == "incomplete"


def test_feedback_is_counted_once_per_user(log):
    cid = log.start_conversation()
    _, aid = answer(log, cid, "q", "a")
    first = log.add_feedback(aid, rating=1, user="ann")
    again = log.add_feedback(aid, rating=-1, comment="wrong after all", user="ann")
    assert again == first  # updated, not added
    log.add_feedback(aid, rating=1, user="bob")
    anon = log.add_feedback(aid, rating=0)
    assert log.add_feedback(aid, rating=1, comment="ok") == anon  # the anonymous user counts once too
    fb = {f.user: f for f in log.get_conversation(cid).messages[1].feedback}
    assert set(fb) == {"ann", "bob", None}
    assert (fb["ann"].rating, fb["ann"].comment) == (-1, "wrong after all")
    assert fb["ann"].updated_at >= fb["ann"].created_at
    stats = log.stats()
    assert stats["ratings"] == 3 and stats["average_rating"] == pytest.approx(1 / 3)


def test_export_reads_back_as_chat_messages(log, tmp_path):
    cid = log.start_conversation(user="ann")
    _, good = answer(log, cid, "How do I rotate keys?", "Run vault rotate [1].")
    _, wrong = answer(log, cid, "Where are keys stored?", "In the attic.")
    _, unrated = answer(log, cid, "What is a key?", "A secret.")
    qid = log.record_question(cid, "crashed question", task="qa")
    log.begin_answer(cid, qid, task="qa", model="m", options={})  # incomplete: never exported
    log.add_feedback(good, rating=1, comment="exact")
    log.add_feedback(wrong, rating=-1, correction="In the vault at /etc/vault/keys [1].")

    path = tmp_path / "export.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in log.export()))
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["message_id"] for r in records] == [good, wrong, unrated]
    by_id = {r["message_id"]: r for r in records}
    assert by_id[good]["messages"] == [{"role": "user", "content": "How do I rotate keys?"},
                                       {"role": "assistant", "content": "Run vault rotate [1]."}]
    assert (by_id[good]["rating"], by_id[good]["correction"], by_id[good]["user"]) == (1, None, "ann")
    assert "original" not in by_id[good]
    corrected = by_id[wrong]
    assert corrected["messages"][1]["content"] == "In the vault at /etc/vault/keys [1]."  # replaced
    assert corrected["original"] == "In the attic." and corrected["rating"] == -1
    assert corrected["conversation_id"] == cid and datetime.fromisoformat(corrected["created_at"]).tzinfo
    assert by_id[unrated]["rating"] is None

    assert [r["message_id"] for r in log.export(rated_only=True)] == [good, wrong]
    assert log.export(since=datetime.now(UTC) + timedelta(minutes=1)) == []
    assert len(log.export(since=datetime.now(UTC) - timedelta(minutes=5))) == 3


def test_opted_out_users_stay_out_of_exports(log):
    ann = log.start_conversation(user="ann")
    answer(log, ann, "ann's question", "reply")
    bob = log.start_conversation(user="bob")
    answer(log, bob, "bob's question", "reply")
    log.set_opt_out(user="ann")
    later = log.start_conversation(user="ann")  # future conversations too
    answer(log, later, "ann again", "reply")
    assert {r["user"] for r in log.export()} == {"bob"}
    assert len(log.export(include_opted_out=True)) == 3
    assert log.get_conversation(later).opted_out
    log.set_opt_out(user="ann", opted_out=False)
    assert len(log.export()) == 3


def test_search_is_full_text_with_substring_fallback(log):
    cid = log.start_conversation()
    answer(log, cid, "How do I rotate encryption keys?", "Use the Rotation wizard [1].")
    answer(log, cid, "What is the retention policy?", "Logs are kept 30 days.")
    answer(log, cid, "如何轮换密钥？", "使用轮换向导。")
    hits = log.search("rotate keys")
    assert hits and hits[0].content == "How do I rotate encryption keys?"
    assert {m.content for m in log.search("RETENTION")} == {"What is the retention policy?"}
    assert [m.content for m in log.search("轮换")][0] in ("如何轮换密钥？", "使用轮换向导。")  # substring fallback
    assert log.search("wizar")  # prefix of a word: substring fallback
    assert log.search("zebra") == [] and log.search("   ") == []
    assert log.search('"unbalanced OR (quote* NEAR') == []  # user text is never FTS syntax
    assert len(log.search("the", limit=1)) == 1


def test_retention_deletes_old_conversations_and_everything_in_them(log):
    old = log.start_conversation()
    _, old_answer = answer(log, old, "an ancient question about penguins", "an ancient answer")
    log.add_feedback(old_answer, rating=1)
    new = log.start_conversation()
    answer(log, new, "a fresh question", "a fresh answer")
    with log.db.write() as s:  # make the first conversation 40 days idle
        s.connection().execute(text("UPDATE conversations SET updated_at = :t WHERE id = :id"),
                               {"t": datetime.now(UTC) - timedelta(days=40), "id": old})
    assert log.apply_retention(30) == 1
    assert [c.id for c in log.list_conversations()] == [new]
    assert (count(log, "messages"), count(log, "sources"), count(log, "feedback")) == (2, 3, 0)
    assert log.search("penguins") == []
    assert log.apply_retention(30) == 0


def test_stats_report_usage_and_unanswered_questions(log):
    cid = log.start_conversation()
    for _ in range(3):
        answer(log, cid, "How do I reset the HSM?", "I could not find this in the documents.", declined=True)
    _, bad = answer(log, cid, "Where is the audit log?", "In /tmp.")
    log.add_feedback(bad, rating=-1)
    _, good = answer(log, cid, "How do I rotate keys?", "Run vault rotate [1].")
    log.add_feedback(good, rating=1)
    s = log.stats()
    assert (s["conversations"], s["questions"], s["answers"], s["declined"]) == (1, 5, 5, 3)
    assert s["declined_share"] == pytest.approx(0.6) and s["average_rating"] == 0
    assert s["questions_per_day"] == [{"day": datetime.now(UTC).date().isoformat(), "questions": 5}]
    assert s["unanswered"][0] == {"question": "How do I reset the HSM?", "count": 3, "declined": 3, "low_rated": 0}
    assert s["unanswered"][1]["question"] == "Where is the audit log?" and s["unanswered"][1]["low_rated"] == 1
    assert len(s["unanswered"]) == 2
    json.dumps(s)


def test_redaction_happens_before_anything_is_written(url):
    log = ConversationLog.open(url, redact=True)
    try:
        cid = log.start_conversation(title="from ann@example.com")
        qid = log.record_question(cid, "My key sk-proj-abcdefghijklmnopqrstuvwx fails, mail ann@example.com", task="qa")
        aid = log.begin_answer(cid, qid, task="qa", model="m", options={"api_key": "AKIAIOSFODNN7EXAMPLE"})
        log.finish_answer(aid, content="Call +1 (555) 123-4567.", sources=[])
        log.add_feedback(aid, rating=-1, comment="ann@example.com", correction="Rotate ghp_abcdefghijklmnopqrstuvwxyz0123456789")
        with log.db.read() as s:
            conn = s.connection()
            dump = " ".join(str(v) for table in ("conversations", "messages", "feedback")
                            for row in conn.execute(text(f"SELECT * FROM {table}")) for v in row)
        for secret in ("ann@example.com", "sk-proj", "AKIA", "123-4567", "ghp_"):  # (ids may hold "555")
            assert secret not in dump
        assert "[EMAIL]" in dump and "[SECRET]" in dump and "[PHONE]" in dump
        assert log.search("example") == []  # nor in the full-text index
    finally:
        log.close()


def test_log_url_defaults_to_sqlite_in_the_workspace(tmp_path):
    assert log_url(Config(), tmp_path) == f"sqlite:///{tmp_path / 'log.db'}"
    pg = "postgresql://u:p@db:5432/log"
    assert log_url(Config(database_url=pg), tmp_path) == pg


@pytest.mark.parametrize("bad, error, shown", [
    ("nonsense", ValueError, "not a database URL"),
    ("mysql://root:hunter2@db/log", ValueError, "unsupported log database"),
    ("postgresql://u:hunter2@127.0.0.1:1/log", RuntimeError, "cannot open the conversation log"),
])
def test_bad_urls_say_what_is_wrong_without_the_password(bad, error, shown):
    with pytest.raises(error, match=shown) as info:
        ConversationLog.open(bad)
    assert "hunter2" not in str(info.value)


def test_begin_turn_writes_the_question_and_an_incomplete_answer_in_one_go(log):
    cid, q1, a1 = log.begin_turn(None, "  How do I   rotate keys? ", task="qa", model="m", options={"k": 4},
                                 user="ann")
    conv = log.get_conversation(cid)
    assert conv.user == "ann" and conv.title == "How do I rotate keys?"
    q, a = conv.messages
    assert (q.id, q.role, q.parent_id) == (q1, "user", None)
    assert (a.id, a.role, a.status, a.parent_id, a.options) == (a1, "assistant", "incomplete", q1, {"k": 4})
    log.finish_answer(a1, content="Run vault rotate.", sources=sources(1))
    _, q2, a2 = log.begin_turn(cid, "And then?", task="qa", model="m", options={})
    msgs = {m.id: m for m in log.get_conversation(cid).messages}
    assert msgs[q2].parent_id == a1 and msgs[a2].parent_id == q2 and msgs[a2].status == "incomplete"
    with pytest.raises(KeyError):
        log.begin_turn("no-such-conversation", "x", task="qa", model="m", options={})


def test_a_deferred_finish_is_read_back_at_once_and_its_failure_is_logged(log, caplog):
    import logging

    cid, _, aid = log.begin_turn(None, "How do I rotate keys?", task="qa", model="m", options={})
    log.finish_answer_later(aid, content="Run vault rotate [1].", sources=sources(2), supported=[True, False])
    ans = log.get_conversation(cid).messages[-1]  # a read waits for the deferred write
    assert (ans.status, ans.content) == ("complete", "Run vault rotate [1].")
    assert [s.supported for s in ans.sources] == [True, False]
    log.finish_answer_later(aid, content="Run vault rotate.", sources=sources(1))  # finishing twice replaces
    assert [len(m.sources) for m in log.history(cid)] == [0, 0]  # history has no sources...
    assert len(log.get_conversation(cid).messages[-1].sources) == 1  # ...the detail has the new one
    with caplog.at_level(logging.ERROR):
        log.finish_answer_later("no-such-answer", content="x", sources=[])
        log.settle()
    assert "deferred write failed" in caplog.text


@pytest.fixture
def postgres_url(tmp_path):
    from log_backends import backend_url, skip_postgres_loudly

    try:
        with backend_url("postgresql", tmp_path) as u:
            yield u
    except LookupError as exc:
        skip_postgres_loudly(str(exc))
        pytest.skip(str(exc))


def test_an_idle_connection_dropped_by_the_server_is_replaced_not_an_error(postgres_url, monkeypatch):
    """PostgreSQL restarted (or a proxy timed the connection out) while the pool sat idle."""
    import psycopg

    from assistant.log import db as dbmod

    url = postgres_url
    log = ConversationLog.open(url)
    try:
        cid = log.start_conversation()
        with log.db.read() as s:
            pid = s.connection().execute(text("SELECT pg_backend_pid()")).scalar_one()
        plain = url.replace("postgresql+psycopg://", "postgresql://").split("?")[0]
        with psycopg.connect(plain, autocommit=True) as admin:
            assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]
        monkeypatch.setattr(dbmod, "IDLE_PING_S", 0.0)
        cid2, _, aid = log.begin_turn(cid, "Still there?", task="qa", model="m", options={})
        log.finish_answer(aid, content="Yes.", sources=[])
        assert cid2 == cid and log.get_conversation(cid).messages[-1].content == "Yes."
    finally:
        log.close()
