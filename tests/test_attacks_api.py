"""Attacks on the served API, replayed against a real server over the real default models.

Each test is one finding of the security review (issue 12): whose conversation /v1 may touch,
unbounded or ignored parameters, password guessing, an open host, refused uploads left on disk,
and raw tracebacks from `assistant logs`. Clients are the real ones: httpx, the `openai` package
and `gradio_client`.
"""
from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from ui.login_limit import LoginThrottle
from ui.ownership import NO_SUCH_CONVERSATION
from ui.server import launch

QUESTION = "Which environment variable makes the conversation log use PostgreSQL?"
KEYS = {"alice": "key-alice-5b1f9c2e7d4a", "bob": "key-bob-9c2e5b1f03a8"}
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def keyed(demo_bot):
    """Logins for alice and bob, and one API key each acting as that user."""
    srv = launch(demo_bot, port=0, auth=[("alice", "wonder"), ("bob", "builder")],
                 api_keys=[f"{key}:{user}" for user, key in KEYS.items()])
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def open_server(demo_bot):
    srv = launch(demo_bot, port=0)
    yield srv
    srv.close()


def _chat(srv, as_user: str, **body) -> httpx.Response:
    """A raw /v1 request with `as_user`'s key; `body` may name another user in its "user" field."""
    body.setdefault("messages", [{"role": "user", "content": QUESTION}])
    return httpx.post(f"{srv.url}/v1/chat/completions", json=body, timeout=300,
                      headers={"Authorization": f"Bearer {KEYS[as_user]}"})


def _openai_error(resp: httpx.Response, status: int, param: str | None) -> str:
    assert resp.status_code == status, (resp.status_code, resp.text[:300])
    err = resp.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}, err
    assert err["type"] == "invalid_request_error" and err["param"] == param and err["message"]
    return err["message"]


# ---- whose conversation is it ---------------------------------------------------------------

def test_v1_acts_as_the_keys_user_and_refuses_anyone_elses_conversation(demo_bot, keyed):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    first = _chat(keyed, "alice", user="bob")  # the body's "user" is not who is asking
    assert first.status_code == 200, first.text[:300]
    cid = first.json()["conversation_id"]
    assert demo_bot.conversation(cid).user == "alice"
    n_messages = len(demo_bot.conversation(cid).messages)

    follow = [{"role": "user", "content": "And how do I check it?"}]
    for stream in (False, True):  # bob may neither read nor extend it, streaming or not
        message = _openai_error(_chat(keyed, "bob", messages=follow, conversation_id=cid, stream=stream),
                                404, "conversation_id")
        assert message == NO_SUCH_CONVERSATION
    assert _openai_error(_chat(keyed, "bob", messages=follow, conversation_id="01NOSUCHCONVERSATION00000"),
                         404, "conversation_id") == NO_SUCH_CONVERSATION  # same words: no existence oracle
    assert len(demo_bot.conversation(cid).messages) == n_messages

    bob = Client(keyed.url, auth=("bob", "builder"), verbose=False)  # the chat refuses with the same words
    try:
        with pytest.raises(AppError, match=NO_SUCH_CONVERSATION):
            bob.predict("And then?", "qa", cid, api_name="/ask")
    finally:
        bob.close()

    again = _chat(keyed, "alice", messages=follow, conversation_id=cid)
    assert again.status_code == 200 and again.json()["conversation_id"] == cid
    assert len(demo_bot.conversation(cid).messages) == n_messages + 2


def test_body_user_never_creates_conversations_for_someone_else(demo_bot, keyed):
    before = {c.id for c in demo_bot.conversations(user="carol", limit=500)}
    resp = _chat(keyed, "bob", user="carol", messages=[{"role": "user", "content": "How do I ingest documents?"}],
                 max_tokens=8)
    assert resp.status_code == 200, resp.text[:300]
    assert demo_bot.conversation(resp.json()["conversation_id"]).user == "bob"
    assert {c.id for c in demo_bot.conversations(user="carol", limit=500)} == before


def test_wrong_or_missing_key_is_refused_in_openai_shape(keyed):
    r = httpx.post(f"{keyed.url}/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]},
                   headers={"Authorization": "Bearer key-alice-5b1f9c2e7d4aX"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    assert httpx.get(f"{keyed.url}/v1/models").json()["error"]["code"] == "invalid_api_key"


# ---- every number checked -------------------------------------------------------------------

@pytest.mark.parametrize("body, param", [
    ({"temperature": 1e308}, "temperature"),
    ({"temperature": -0.5}, "temperature"),
    ({"temperature": "hot"}, "temperature"),
    ({"top_p": 0}, "top_p"),
    ({"top_p": 1.5}, "top_p"),
    ({"k": 10**9}, "k"),
    ({"k": 0}, "k"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"max_tokens": 10**20}, "max_tokens"),
    ({"max_completion_tokens": -3}, "max_completion_tokens"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"stop": [""]}, "stop"),
    ({"n": 3}, "n"),
    ({"task": "poem"}, "task"),
])
def test_out_of_range_values_are_400s_in_openai_shape(keyed, body, param):
    message = _openai_error(_chat(keyed, "alice", **body), 400, param)
    assert param in message


def test_gradio_endpoints_check_the_same_bounds(open_server):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    c = Client(open_server.url, verbose=False)
    try:
        with pytest.raises(AppError, match="k must be a whole number from 1 to 50"):
            c.predict(QUESTION, "qa", "", 10**9, api_name="/ask")
        with pytest.raises(AppError, match="temperature must be a number from 0 to 2"):
            c.predict(QUESTION, "qa", "", 0, 1e308, api_name="/ask")
        with pytest.raises(AppError, match="k must be a whole number from 1 to 50"):
            c.predict("api key", 10**9, "hybrid", api_name="/search")
        with pytest.raises(AppError, match="mode must be one of"):
            c.predict("api key", 3, "fuzzy", api_name="/search")
        with pytest.raises(AppError, match=r"rating must be -1, 0 or 1 \(got 'x'\)"):
            c.predict("some-message", "x", api_name="/feedback")
        assert 1 <= len(c.predict("api key", 50, "hybrid", api_name="/search")) <= 50
    finally:
        c.close()


def test_max_tokens_is_honoured_and_reported_in_usage(keyed):
    from openai import OpenAI

    oa = OpenAI(base_url=f"{keyed.url}/v1", api_key=KEYS["alice"])
    full = oa.chat.completions.create(model="base", messages=[{"role": "user", "content": QUESTION}])
    short = oa.chat.completions.create(model="base", max_tokens=6, messages=[{"role": "user", "content": QUESTION}])
    assert full.usage.completion_tokens > 6, full.usage
    assert 0 < short.usage.completion_tokens <= 6 and short.choices[0].finish_reason == "length"
    chunks = list(oa.chat.completions.create(model="base", max_tokens=6, stream=True,
                                             messages=[{"role": "user", "content": QUESTION}]))
    usage = chunks[-1].usage
    assert usage is not None and 0 < usage.completion_tokens <= 6 and chunks[-1].choices[0].finish_reason == "length"


def test_stop_sequences_are_honoured_streaming_or_not(keyed):
    from openai import OpenAI

    oa = OpenAI(base_url=f"{keyed.url}/v1", api_key=KEYS["alice"])
    ask = dict(model="base", temperature=0, messages=[{"role": "user", "content": QUESTION}])
    full = oa.chat.completions.create(**ask)
    words = full.choices[0].message.content.split()
    assert len(words) >= 4, full.choices[0].message.content
    stop = words[2]  # a word greedy decoding is sure to produce again
    cut = oa.chat.completions.create(stop=stop, **ask)
    text = cut.choices[0].message.content
    assert stop not in text and len(text) < len(full.choices[0].message.content)
    # usage counts the model's tokens: fewer when the model's own text was cut, the same when the
    # answer is a quoted sentence (the model's failed try cost the same)
    assert cut.usage.completion_tokens <= full.usage.completion_tokens
    streamed = "".join(ch.choices[0].delta.content or "" for ch in oa.chat.completions.create(stop=[stop], stream=True, **ask)
                       if ch.choices)
    assert stop not in streamed and streamed.strip()


# ---- sign-in, exposure, uploads -------------------------------------------------------------

def test_password_guessing_is_refused_after_five_failures(demo_bot):
    from gradio_client import Client

    srv = launch(demo_bot, port=0, auth=[("alice", "wonder")], login_throttle=LoginThrottle(lockout_s=30))
    try:
        codes = [httpx.post(f"{srv.url}/login", data={"username": "alice", "password": f"guess{i}"}).status_code
                 for i in range(5)]
        assert codes == [400] * 5
        locked = httpx.post(f"{srv.url}/login", data={"username": "alice", "password": "wonder"})
        assert locked.status_code == 429, locked.text  # even the right password, or guessing goes on
        assert "Too many failed sign-ins" in locked.json()["detail"] and int(locked.headers["retry-after"]) <= 30
        with pytest.raises(ValueError, match="Could not login"):
            Client(srv.url, auth=("alice", "wonder"), verbose=False)
    finally:
        srv.close()


def test_a_right_password_before_the_limit_clears_the_count(demo_bot):
    srv = launch(demo_bot, port=0, auth=[("alice", "wonder")])
    try:
        for _ in range(4):
            assert httpx.post(f"{srv.url}/login", data={"username": "alice", "password": "nope"}).status_code == 400
        assert httpx.post(f"{srv.url}/login", data={"username": "alice", "password": "wonder"}).status_code == 200
        for _ in range(4):
            assert httpx.post(f"{srv.url}/login", data={"username": "alice", "password": "nope"}).status_code == 400
        assert httpx.post(f"{srv.url}/login", data={"username": "alice", "password": "wonder"}).status_code == 200
    finally:
        srv.close()


def test_open_server_on_all_interfaces_warns_who_can_read_what(demo_bot, capsys):
    srv = launch(demo_bot, host="0.0.0.0", port=0)
    try:
        out = capsys.readouterr().out
        assert f"anyone who can reach 0.0.0.0:{srv.port} on this network can read every ingested document" in out
    finally:
        srv.close()
    srv = launch(demo_bot, port=0)
    try:
        assert "anyone who can reach" not in capsys.readouterr().out
    finally:
        srv.close()


def test_refused_and_unreadable_uploads_leave_nothing_behind(demo_bot, open_server, tmp_path):
    from gradio.utils import get_upload_folder
    from gradio_client import Client, handle_file

    tag = uuid.uuid4().hex[:8]
    exe = tmp_path / f"tool-{tag}.exe"
    exe.write_bytes(b"MZ" + tag.encode())
    broken = tmp_path / f"broken-{tag}.pdf"
    broken.write_bytes(b"%PDF-1.7 not really a pdf " + tag.encode())
    c = Client(open_server.url, verbose=False)
    try:
        report = c.predict([handle_file(str(exe)), handle_file(str(broken))], api_name="/ingest")
    finally:
        c.close()
    assert {exe.name, broken.name} <= {Path(f["file"]).name for f in report["failed"]}, report
    left = [p for p in Path(get_upload_folder()).rglob(f"*{tag}*")] + \
        [p for p in (demo_bot.workspace / "uploads").rglob(f"*{tag}*")]
    assert left == [], left


# ---- the logs CLI ---------------------------------------------------------------------------

@pytest.mark.parametrize("argv, says", [
    (["search", "x" * 50_000], "at most 1000 are searched"),
    (["search", "keys", "--limit", str(10**20)], "--limit must be from 1 to 10000"),
    (["list", "--limit", "-1"], "--limit must be from 1 to 10000"),
    (["show", "y" * 5_000], "is not a conversation id"),
    (["show", "01NOSUCHCONVERSATION00000"], "no conversation"),
    (["prune", "--days", str(10**20)], "--days must be from 1 to 36500"),
])
def test_logs_cli_turns_bad_input_into_one_line_errors(tmp_path, argv, says):
    from assistant.config import Config
    from assistant.log import ConversationLog, log_url

    ws = tmp_path / "ws"
    with ConversationLog.open(log_url(Config(), ws)) as log:
        log.start_conversation(user="ann")
    run = subprocess.run([sys.executable, "-m", "assistant.cli", "--workspace", str(ws), "logs", *argv],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert run.returncode == 2, run.stderr[-500:]
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and says in lines[0], run.stderr[-500:]
    assert "Traceback" not in run.stderr and len(lines[0]) < 300
