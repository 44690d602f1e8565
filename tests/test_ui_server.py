"""The served app end to end: a real server on 127.0.0.1 over the real default models.

Clients are the ones users run: `gradio_client` for the named endpoints, the `openai` package
for /v1, plain HTTP for health, logins and uploads.
"""
from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest

from ui.server import launch

QUESTION = "Which environment variable makes the conversation log use PostgreSQL?"
API_KEY = "test-key-123-5b1f9c2e"  # served keys have 16+ characters


@pytest.fixture(scope="module")
def server(demo_bot):
    srv = launch(demo_bot, port=0)
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def auth_server(demo_bot):
    srv = launch(demo_bot, port=0, auth=[("alice", "wonder"), ("bob", "builder")], api_keys=[API_KEY])
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client

    c = Client(server.url, verbose=False)
    yield c
    c.close()


def test_health_and_named_endpoints_are_listed(server, client):
    health = httpx.get(f"{server.url}/health").json()
    assert health["status"] == "ok" and health["auth"] is False
    # which decoder and embedder run on this CPU, and why (the demo bot answered already: both are loaded)
    client.predict("What is the log?", "qa", api_name="/ask")
    health = httpx.get(f"{server.url}/health").json()
    assert health["decoder"]["decoder"] in ("ctranslate2-int8", "ctranslate2-float32", "transformers"), health
    assert health["decoder"]["reason"] and health["embedder"]["backend"] in ("onnx-int8", "torch") and health["cpu"]
    assert "/root/" not in str(health) and "/home/" not in str(health)
    endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert {"/ask", "/search", "/ingest", "/feedback"} <= set(endpoints)


def test_ask_streams_then_returns_sources_and_feedback_is_logged(demo_bot, client):
    job = client.submit(QUESTION, api_name="/ask")
    updates = list(job)
    final = job.result()
    partial = [u for u in updates if not u.get("done")]
    assert len(partial) >= 2, "the answer should arrive in several pieces"
    assert final["done"] and final["text"].strip() and final["message_id"]
    assert final["text"].startswith(partial[0]["text"].strip()[:5])
    assert any(Path(s["file"]).name == "conversation-log.md" for s in final["sources"])

    fid = client.predict(final["message_id"], 1, "exact", "", api_name="/feedback")
    assert fid
    detail = demo_bot.conversation(final["conversation_id"])
    rated = [f for m in detail.messages for f in m.feedback]
    assert [(f.rating, f.comment) for f in rated] == [(1, "exact")]


def test_search_endpoint_returns_ranked_passages(client):
    hits = client.predict("PostgreSQL DATABASE_URL", 3, "hybrid", api_name="/search")
    assert 1 <= len(hits) <= 3 and [h["n"] for h in hits] == list(range(1, len(hits) + 1))
    assert any(Path(h["file"]).name == "conversation-log.md" for h in hits)


def test_feedback_with_bad_rating_or_unknown_message_is_an_error(client):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="rating"):
        client.predict("whatever", 5, api_name="/feedback")
    with pytest.raises(AppError, match="no message"):
        client.predict("not-a-message-id", 1, api_name="/feedback")


def test_ingest_endpoint_uploads_into_workspace_and_reports_failures(demo_bot, client, tmp_path):
    from gradio_client import handle_file

    good = tmp_path / "zebra-policy.md"
    good.write_text("# Zebra policy\n\nZebras may visit the office on Tuesdays only, escorted by facilities staff.\n")
    bad = tmp_path / "malware.exe"
    bad.write_bytes(b"MZ\x00\x00")
    report = client.predict([handle_file(str(good)), handle_file(str(bad))], api_name="/ingest")
    uploads = (demo_bot.workspace / "uploads").resolve()
    assert report["added"] == ["zebra-policy.md"]  # relative to the uploads folder: no server path
    assert (uploads / "zebra-policy.md").is_file()
    assert [f["file"] for f in report["failed"]] == ["malware.exe"] and "not accepted" in report["failed"][0]["reason"]
    assert any(Path(d.path).name == "zebra-policy.md" for d in demo_bot.documents())


def test_upload_with_traversal_name_stays_in_uploads(demo_bot, server, client):
    # Upload through Gradio's own route with a hostile multipart file name, then ingest it.
    files = {"files": ("../../../escape-test.md", b"# Escape\n\nNothing to see.\n", "text/markdown")}
    resp = httpx.post(f"{server.url}/gradio_api/upload", files=files)
    assert resp.status_code == 200, resp.text
    cached = resp.json()[0]
    hostile = {"path": cached, "meta": {"_type": "gradio.FileData"}, "orig_name": "../../../escape-test.md"}
    report = client.predict([hostile], api_name="/ingest")
    assert report["added"] == ["escape-test.md"]
    assert (demo_bot.workspace / "uploads" / "escape-test.md").is_file()
    assert not (demo_bot.workspace.parent / "escape-test.md").exists()


def test_ingest_refuses_files_outside_gradio_cache(demo_bot, server, tmp_path):
    """A raw API call naming a server-side path (not an upload) must not read that file."""
    secret = tmp_path / "secret-plans.md"
    secret.write_text("# Secret\n\nThe vault code is 1234.\n")
    payload = {"data": [[{"path": str(secret), "meta": {"_type": "gradio.FileData"}}]]}
    event = httpx.post(f"{server.url}/gradio_api/call/ingest", json=payload).json()["event_id"]
    stream = httpx.get(f"{server.url}/gradio_api/call/ingest/{event}", timeout=60).text
    assert "event: error" in stream and "event: complete" not in stream
    assert not (demo_bot.workspace / "uploads" / "secret-plans.md").exists()
    assert not any(Path(d.path).name == "secret-plans.md" for d in demo_bot.documents())


def test_oversized_upload_is_refused_by_the_server(demo_bot):
    srv = launch(demo_bot, port=0, max_upload_mb=0.01)
    try:
        resp = httpx.post(f"{srv.url}/gradio_api/upload", files={"files": ("big.md", b"x" * 20_000, "text/markdown")})
        assert resp.status_code == 413, (resp.status_code, resp.text[:200])
    finally:
        srv.close()


def test_server_does_not_serve_workspace_or_system_files(demo_bot, server):
    for target in [demo_bot.workspace / "config.toml", Path("/etc/passwd")]:
        resp = httpx.get(f"{server.url}/gradio_api/file={target}")
        assert resp.status_code in (403, 404), (target, resp.status_code)


def test_openai_client_json_and_streaming(server):
    from openai import OpenAI

    oa = OpenAI(base_url=f"{server.url}/v1", api_key="unused")
    assert "base" in [m.id for m in oa.models.list()]
    resp = oa.chat.completions.create(model="base", messages=[{"role": "user", "content": QUESTION}])
    text = resp.choices[0].message.content
    sources = resp.model_extra["sources"]
    assert text.strip() and any(Path(s["file"]).name == "conversation-log.md" for s in sources)
    assert not [s["file"] for s in sources if Path(s["file"]).is_absolute()]  # no server paths over /v1
    assert resp.usage.completion_tokens > 0 and resp.model_extra["message_id"]

    stream = oa.chat.completions.create(
        model="base", stream=True,
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "How do I ingest documents?"}])
    chunks = list(stream)
    deltas = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(deltas) >= 2 and "".join(deltas).strip()
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop" and last.model_extra["sources"]
    assert not [s["file"] for s in last.model_extra["sources"] if Path(s["file"]).is_absolute()]


def test_openai_api_rejects_bad_requests(server):
    r = httpx.post(f"{server.url}/v1/chat/completions", json={"messages": [{"role": "system", "content": "x"}]})
    assert r.status_code == 400 and "user message" in r.text
    r = httpx.post(f"{server.url}/v1/chat/completions", json={"model": "gpt-9", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 404 and "/v1/models" in r.text
    r = httpx.post(f"{server.url}/v1/chat/completions", json={"task": "poem", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 400


def test_v1_requires_a_bearer_key_when_auth_is_on(auth_server):
    from openai import AuthenticationError, OpenAI

    assert httpx.get(f"{auth_server.url}/v1/models").status_code == 401
    assert httpx.get(f"{auth_server.url}/v1/models", headers={"Authorization": "Bearer wrong"}).status_code == 401
    with pytest.raises(AuthenticationError):
        OpenAI(base_url=f"{auth_server.url}/v1", api_key="wrong").models.list()
    ok = OpenAI(base_url=f"{auth_server.url}/v1", api_key=API_KEY).models.list()
    assert "base" in [m.id for m in ok]
    assert httpx.get(f"{auth_server.url}/health").status_code == 200  # liveness stays open


def test_ui_and_gradio_api_require_login(auth_server):
    from gradio_client import Client

    assert httpx.get(f"{auth_server.url}/config").status_code == 401
    assert httpx.get(f"{auth_server.url}/gradio_api/info").status_code == 401
    with pytest.raises(Exception, match="credentials were not provided"):
        Client(auth_server.url, verbose=False)
    with pytest.raises(ValueError, match="Could not login"):
        Client(auth_server.url, auth=("alice", "wrong"), verbose=False)


def test_each_user_sees_only_their_own_conversations(demo_bot, auth_server):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    alice = Client(auth_server.url, auth=("alice", "wonder"), verbose=False)
    bob = Client(auth_server.url, auth=("bob", "builder"), verbose=False)
    try:
        ans = alice.predict("How do I share the chat with a login?", api_name="/ask")
        cid = ans["conversation_id"]
        assert cid in {c.id for c in demo_bot.conversations(user="alice")}
        assert cid not in {c.id for c in demo_bot.conversations(user="bob")}
        with pytest.raises(AppError, match="No such conversation"):
            bob.predict("And then?", "qa", cid, api_name="/ask")
        with pytest.raises(AppError, match="No such conversation"):  # nor rate alice's answer
            bob.predict(ans["message_id"], -1, "", "wrong!", api_name="/feedback")
        assert not [f for m in demo_bot.conversation(cid).messages for f in m.feedback]
        assert alice.predict(ans["message_id"], 1, api_name="/feedback")
        assert [f.user for m in demo_bot.conversation(cid).messages for f in m.feedback] == ["alice"]
    finally:
        alice.close()
        bob.close()


def test_share_without_internet_keeps_serving_locally(demo_bot, capsys):
    from ui.security import AuthConfigError

    with pytest.raises(AuthConfigError, match="refusing to share"):
        launch(demo_bot, port=0, share=True)
    srv = launch(demo_bot, port=0, share=True, allow_public_share=True)
    try:
        out = capsys.readouterr().out
        assert srv.share_url is None and srv.share_error
        assert "Share link could NOT be created" in out and "Still serving locally" in out
        assert httpx.get(f"{srv.url}/health").json()["status"] == "ok"
    finally:
        srv.close()


def test_concurrent_chats_and_an_ingest_all_complete(client, server, tmp_path):
    """Four chats at once plus an ingest: the queue runs them side by side, nobody is dropped."""
    from gradio_client import Client, handle_file

    doc = tmp_path / "parallel-notes.md"
    doc.write_text("# Parallel notes\n\nThe canteen opens at half past eight.\n")
    results: dict[str, object] = {}

    def ask(i: int) -> None:
        c = Client(server.url, verbose=False)
        try:
            results[f"ask{i}"] = c.predict("How do I ingest documents?", api_name="/ask")
        finally:
            c.close()

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    report = client.predict([handle_file(str(doc))], api_name="/ingest")
    for t in threads:
        t.join(300)
    assert report["added"] or report["updated"]
    assert all(results[f"ask{i}"]["done"] and results[f"ask{i}"]["text"] for i in range(4)), results


def test_port_in_use_is_a_clear_error(demo_bot, server):
    with pytest.raises(OSError, match="already in use"):
        launch(demo_bot, port=server.port)
