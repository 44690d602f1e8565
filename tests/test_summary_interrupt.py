"""Ctrl-C during a map-reduce summary keeps what is finished: the parts summarised so far, cited,
under a note saying which sections they cover; the answer says it is partial and is logged.

The document, the models, the log and the CLI are real. Only the Ctrl-C is simulated: the
generator's `stream` is wrapped so that on the chosen call KeyboardInterrupt is thrown into the
real decoding loop after its first piece, where the signal would land in the main thread.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from assistant import cli

# A frozen copy of an earlier docs/security.md (the live page grows, and the part counts below with it)
DOCS = Path(__file__).resolve().parent / "fixtures" / "long_document"
DOCUMENT = "security.md"  # about 1,500 tokens: three parts of at most 600
QUESTION = "Summarise security.md"


@pytest.fixture(scope="module")
def bot(tmp_path_factory):
    from assistant import Assistant

    docs = tmp_path_factory.mktemp("interrupt") / "docs"
    docs.mkdir()
    shutil.copy(DOCS / DOCUMENT, docs / DOCUMENT)
    assistant = Assistant.open(tmp_path_factory.mktemp("ws") / "workspace", summary_style="generated")
    assert not assistant.ingest([docs], progress=False).failed
    yield assistant
    assistant.close()


def ctrl_c_on_call(bot, monkeypatch, n: int, canned: str | None = None) -> list[int]:
    """Wrap the served generator: call `n` is interrupted after its first piece. With `canned`, the
    calls before it return that text without running the model (for tests of what happens next)."""
    gen = bot.generator()
    real = gen.stream
    calls: list[int] = []

    def stream(messages, **kwargs):
        calls.append(len(calls) + 1)
        if len(calls) < n and canned is not None:
            yield canned
            return
        pieces = real(messages, **kwargs)
        if len(calls) < n:
            yield from pieces
            return
        yield next(pieces)
        pieces.throw(KeyboardInterrupt)  # raised inside the real decoding loop, as Ctrl-C would be

    monkeypatch.setattr(gen, "stream", stream)
    return calls


def test_ctrl_c_after_two_of_three_parts_answers_with_their_cited_summaries(bot, monkeypatch):
    calls = ctrl_c_on_call(bot, monkeypatch, 3)
    status: list[str] = []
    stream = bot.stream(QUESTION, task="summarize", on_status=status.append)  # as `assistant ask` reads it
    text = "".join(stream)
    answer = stream.answer

    assert calls == [1, 2, 3] and "summarising part 3/3" in [s.split(",")[0] for s in status]
    assert text.strip() == answer.text
    extra = answer.extra
    assert (extra["stopped_after"], extra["parts"], extra["stop_reason"]) == (2, 3, "interrupted")
    covered, total = extra["sections_covered"], len(answer.sources)
    assert 2 <= covered < total
    assert answer.text.startswith(f"Stopped after part 2 of 3: this summary covers sections 1–{covered} "
                                  f"of {total} only; the rest, from section {covered + 1} (")
    # the two finished parts' summaries, each claim cited with a section the summary covers
    assert len(extra["part_summaries"]) == 2
    for part in extra["part_summaries"]:
        assert " ".join(part.split()[:5]) in answer.text
    cited = [int(n) for n in re.findall(r"\[(\d+)\]", answer.text)]
    assert cited and all(1 <= n <= covered for n in cited)
    assert any(c.citations for c in answer.sentences)

    # logged like any other answer: complete, with its text and sources
    logged = bot.history(answer.conversation_id)[-1]
    assert (logged.role, logged.status, logged.content) == ("assistant", "complete", answer.text)


def test_ctrl_c_before_the_first_part_is_done_stops_as_before(bot, monkeypatch):
    ctrl_c_on_call(bot, monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        for event in bot.stream_events(QUESTION, task="summarize"):
            assert "Stopped after" not in getattr(event, "text", "")  # nothing partial
    cid = bot.conversations(limit=1)[0].id
    assert bot.history(cid)[-1].status == "error"  # the log marks the turn unfinished, as for any Ctrl-C


def test_second_ctrl_c_while_the_partial_summary_is_written_exits(bot, monkeypatch):
    ctrl_c_on_call(bot, monkeypatch, 3, canned="API keys are stored hashed in the workspace.")
    real_embed = bot.index.embed
    second: list[bool] = []

    def embed(texts):  # the second Ctrl-C lands while the finished parts are being cited
        if any("API keys are stored hashed in the workspace." in t for t in texts):
            second.append(True)
            raise KeyboardInterrupt
        return real_embed(texts)

    monkeypatch.setattr(bot.index, "embed", embed)
    with pytest.raises(KeyboardInterrupt):
        list(bot.stream_events(QUESTION, task="summarize"))
    assert second == [True]


def test_cli_prints_the_partial_summary_with_its_sources(bot, monkeypatch, capsys):
    ctrl_c_on_call(bot, monkeypatch, 3, canned="The assistant keeps each user's documents apart.")
    monkeypatch.setattr(cli, "_open", lambda args: bot)
    rc = cli.main(["--workspace", str(bot.workspace), "ask", QUESTION, "--task", "summarize"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "Stopped after part 2 of 3" in out and "The assistant keeps each user's documents apart." in out
    assert "\nSources:\n  [1] " in out and "conversation " in out
