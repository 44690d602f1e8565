"""`redact = true` end to end: secrets that are asked, answered, cited, rated and exported never
reach the log's rows (messages, titles, full-text index, sources, feedback) or `assistant logs
export`; and feedback that is too long is refused before anything is written."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import text

import assistant.core
from assistant import Assistant
from assistant.cli import main
from assistant.log import ConversationLog
from assistant.log.store import MAX_COMMENT_CHARS, MAX_CORRECTION_CHARS
from index.types import Source

AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
AZURE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
PEM_BODY = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7"
# Each secret as the user (or a document) writes it, and the part that must never be stored.
SHAPES = {
    "url password": ("postgresql+psycopg://admin:Sup3rPgPass@db/assistant", "Sup3rPgPass"),
    "aws secret": (f"aws_secret_access_key = {AWS_SECRET}", AWS_SECRET),
    "aws pair": (f"AKIAIOSFODNN7EXAMPLE {AWS_SECRET}", AWS_SECRET),
    "basic auth": ("Authorization: Basic YWRtaW46U3VwM3JQZ1Bhc3M=", "YWRtaW46U3VwM3JQZ1Bhc3M"),
    "private key": (f"-----BEGIN PRIVATE KEY-----\n{PEM_BODY}\n", PEM_BODY),
    "json password": ('{"password": "correct horse battery"}', "correct horse battery"),
    "azure key": (f"AccountName=acct;AccountKey={AZURE_KEY};EndpointSuffix=core.windows.net", AZURE_KEY[:20]),
    "sas": ("https://acct.blob.core.windows.net/c/f.pdf?sv=2022-11-02&sig=Xy7%2BabcDEF123%3D", "Xy7%2BabcDEF123"),
    "stripe": ("sk_live_51H8abcdefghijklmnopqrstuvwx", "sk_live_51H8"),
    "prose": ("my password is hunter22", "hunter22"),
}
LEAKS = [gone for _, gone in SHAPES.values()]
# The title is the first question's first 120 characters: the URL password must be inside them.
QUESTION = "Why does " + " and ".join(shape for shape, _ in SHAPES.values()) + " fail on the relay?"
ANSWER = "Reconnect with " + " then ".join(shape for shape, _ in SHAPES.values()) + " on the relay [1]."
DOCUMENT = "# Relay credentials\n\nThe relay connects with these settings:\n\n" + \
    "\n\n".join(shape for shape, _ in SHAPES.values()) + "\n"


class Parrot:
    """A generator that always says `ANSWER` (the model repeating a secret it was shown)."""

    name = "parrot"
    context_window = 2048

    def stream(self, messages, *, max_new_tokens, temperature=0.0, stop=None, **kwargs):
        yield from (word + " " for word in ANSWER.split(" "))

    def count_tokens(self, text_: str) -> int:
        return len(text_.split()) + len(text_) // 6


@pytest.fixture
def bot(url, tmp_path, monkeypatch):
    """An Assistant with `redact = true` in its config file, its log at `url`, one document ingested."""
    monkeypatch.setattr(assistant.core, "load_generator", lambda *args, **kwargs: Parrot())
    ws, docs = tmp_path / "workspace", tmp_path / "docs"
    ws.mkdir()
    docs.mkdir()
    (ws / "config.toml").write_text(f"redact = true\ndatabase_url = {json.dumps(url)}\n", encoding="utf-8")
    (docs / "relay.md").write_text(DOCUMENT, encoding="utf-8")
    bot = Assistant.open(ws)
    assert not bot.ingest([docs], progress=False).failed
    yield bot
    bot.close()


def raw_rows(log: ConversationLog) -> str:
    """Every text column of every table the log writes, as stored (plus SQLite's FTS copy)."""
    tables = ["conversations", "messages", "sources", "feedback"]
    if log.db.dialect == "sqlite":
        tables.append("messages_fts")
    with log.db.read() as s:
        conn = s.connection()
        return "\n".join(str(value) for table in tables
                         for row in conn.execute(text(f"SELECT * FROM {table}")) for value in row)


def test_no_secret_reaches_the_log_or_the_export(bot, capsys):
    answer = bot.ask(QUESTION)
    assert answer.sources and answer.sources[0].path.endswith("relay.md")
    bot.feedback(answer.message_id, rating=-1, comment=f"leaked {SHAPES['aws secret'][0]}",
                 correction=f"Use {SHAPES['url password'][0]} and {SHAPES['private key'][0]}")
    follow_up = bot.ask(f"And {SHAPES['sas'][0]}?", conversation_id=answer.conversation_id)
    bot.feedback(follow_up.message_id, rating=1, comment=SHAPES["json password"][0])
    bot.log.settle()

    stored = raw_rows(bot.log)
    assert "[SECRET]" in stored and "relay" in stored  # the rows are there, scrubbed
    assert [leak for leak in LEAKS if leak in stored] == []
    title = bot.log.get_conversation(answer.conversation_id).title
    assert title.startswith("Why does postgresql+psycopg://admin:[SECRET]@db/assistant and ")

    bot.close()  # the CLI opens the workspace log itself, with the workspace's redact setting
    assert main(["--workspace", str(bot.workspace), "logs", "export", "--format", "jsonl"]) == 0
    exported = capsys.readouterr().out
    assert len(exported.splitlines()) == 2 and "[SECRET]" in exported
    assert [leak for leak in LEAKS if leak in exported] == []


def test_export_scrubs_rows_written_before_redaction_was_turned_on(url):
    with ConversationLog.open(url) as log:  # redaction off: stored in clear
        cid = log.start_conversation()
        qid = log.record_question(cid, QUESTION, task="qa")
        aid = log.begin_answer(cid, qid, task="qa", model="m", options={})
        log.finish_answer(aid, content=ANSWER, sources=[])
        log.add_feedback(aid, rating=-1, correction=f"Use {SHAPES['url password'][0]}")
        assert "Sup3rPgPass" in json.dumps(log.export())
    with ConversationLog.open(url, redact=True) as log:
        (record,) = log.export()
    dumped = json.dumps(record)
    assert [leak for leak in LEAKS if leak in dumped] == []
    assert record["message_id"] == aid and record["correction"] == "Use postgresql+psycopg://admin:[SECRET]@db/assistant"


@pytest.mark.parametrize("field, limit", [("comment", MAX_COMMENT_CHARS), ("correction", MAX_CORRECTION_CHARS)])
def test_feedback_longer_than_the_limit_is_refused_with_a_reason(url, field, limit):
    with ConversationLog.open(url) as log:
        cid = log.start_conversation()
        qid = log.record_question(cid, "How do I rotate keys?", task="qa")
        aid = log.begin_answer(cid, qid, task="qa", model="m", options={})
        log.finish_answer(aid, content="Run vault rotate.", sources=[])
        log.add_feedback(aid, rating=1, **{field: "x" * limit})  # at the limit: kept
        with pytest.raises(ValueError, match=rf"{field} is {limit + 1:,} characters; the limit is {limit:,}"):
            log.add_feedback(aid, rating=-1, **{field: "x" * (limit + 1)})
        with pytest.raises(ValueError, match="the limit is"):
            log.add_feedback(aid, rating=-1, **{field: "x" * 1_000_000})
        (feedback,) = log.get_conversation(cid).messages[1].feedback
    assert feedback.rating == 1 and len(getattr(feedback, field)) == limit  # the refused ones changed nothing



def test_a_secret_repeated_out_of_context_is_removed_there_too(url):
    """Context finds "hunter22" in the question; the answer, its sources and the feedback repeat
    it bare (a decline lists the words no passage mentions), and lose it there too."""
    with ConversationLog.open(url, redact=True) as log:
        cid, _, aid = log.begin_turn(None, "my password is hunter22 and sig=Xy7%2BabcDEF123%3D", task="qa",
                                     model="m", options={})
        log.finish_answer(aid, content="No passage mentions “hunter22”, “Xy7”, “BabcDEF123”.",
                          sources=[Source("a.md", "A", "", "hunter22 appears here", 0.5)])
        log.add_feedback(aid, rating=-1, comment="hunter22 is mine")
        log.begin_turn(cid, "is hunter22 too weak? hunter is a fine word", task="qa", model="m", options={})
        stored = raw_rows(log)
    assert "hunter22" not in stored and "BabcDEF123" not in stored
    assert "No passage mentions “[SECRET]”" in stored and "hunter is a fine word" in stored
