"""What an operator scrapes and reads: /ready, /metrics, request ids in the logs and the conversation log.

A real server over the real default models; clients are plain HTTP and gradio_client.
"""
from __future__ import annotations

import json
import logging
import re

import httpx
import pytest

from ui.request_log import JsonFormatter
from ui.server import launch

QUESTION = "Which environment variable makes the conversation log use PostgreSQL?"


@pytest.fixture(scope="module")
def server(demo_bot):
    demo_bot.warm_up()
    srv = launch(demo_bot, port=0)
    yield srv
    srv.close()


def _metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus' text format (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
        if m and m.group(1) == name:
            got = ",".join(sorted(p for p in (m.group(2) or "").split(",") if p))
            if got == want:
                return float(m.group(3))
    return 0.0


def test_ready_says_loaded_and_health_stays_alive(server):
    ready = httpx.get(f"{server.url}/ready")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    assert ready.json()["chunks"] > 0 and ready.json()["generation"] >= 1
    assert httpx.get(f"{server.url}/health").json()["status"] == "ok"


def test_metrics_count_an_answer_its_tokens_and_latency(server):
    before = httpx.get(f"{server.url}/metrics").text
    reply = httpx.post(f"{server.url}/v1/chat/completions", timeout=300,
                       json={"messages": [{"role": "user", "content": QUESTION}]})
    assert reply.status_code == 200, reply.text
    after = httpx.get(f"{server.url}/metrics")
    assert after.headers["content-type"].startswith("text/plain")
    text = after.text
    done = _metric(text, "assistant_answers_total", task="qa", outcome="complete")
    assert done == _metric(before, "assistant_answers_total", task="qa", outcome="complete") + 1
    tokens = _metric(text, "assistant_tokens_generated_total", task="qa") - \
        _metric(before, "assistant_tokens_generated_total", task="qa")
    assert tokens == reply.json()["usage"]["completion_tokens"] > 0
    assert _metric(text, "assistant_answer_duration_seconds_count", task="qa") >= 1
    assert _metric(text, "assistant_http_requests_total", route="v1_chat", method="POST", status="200") >= 1
    assert _metric(text, "assistant_index_generation") >= 1 and _metric(text, "assistant_index_chunks") > 0
    assert _metric(text, "assistant_ready") == 1 and _metric(text, "assistant_draining") == 0
    for name in ("assistant_queue_depth", "assistant_answers_running", "assistant_ingest_progress_ratio"):
        assert f"# TYPE {name} gauge" in text


def test_request_id_is_echoed_and_lands_in_the_conversation_log(server, demo_bot):
    rid = "req-test-0001"
    reply = httpx.post(f"{server.url}/v1/chat/completions", headers={"X-Request-ID": rid}, timeout=300,
                       json={"messages": [{"role": "user", "content": QUESTION}], "stream": True})
    assert reply.headers["x-request-id"] == rid
    events = [json.loads(line[6:]) for line in reply.text.splitlines()
              if line.startswith("data: {")]
    message_id = next(e["message_id"] for e in events if e.get("message_id"))
    from sqlalchemy import text

    with demo_bot.log.db.read() as s:
        rows = s.connection().execute(text("SELECT id, role, status FROM messages WHERE request_id = :r"),
                                      {"r": rid}).all()
    # the question and its answer, written by this request, finished before the last chunk was sent
    assert sorted((r[1], r[2]) for r in rows) == [("assistant", "complete"), ("user", "complete")]
    assert message_id in {r[0] for r in rows}
    # a made-up id that is not plain is replaced, never stored
    odd = httpx.get(f"{server.url}/health", headers={"X-Request-ID": "x" * 200})
    assert odd.headers["x-request-id"] != "x" * 200 and len(odd.headers["x-request-id"]) == 32


def test_gradio_answers_get_their_own_request_id_in_the_log(server, demo_bot):
    from gradio_client import Client
    from sqlalchemy import text

    client = Client(server.url, verbose=False)
    final = client.predict("What is the conversation log?", "qa", api_name="/ask")
    client.close()
    with demo_bot.log.db.read() as s:
        rid = s.connection().execute(text("SELECT request_id FROM messages WHERE id = :m"),
                                     {"m": final["message_id"]}).scalar()
    assert rid and re.fullmatch(r"[0-9a-f]{32}", rid)


def test_json_log_lines_carry_the_request_id():
    from foundation.request_context import bound_request_id

    record = logging.LogRecord("assistant.requests", logging.INFO, __file__, 1,
                               json.dumps({"event": "answer", "task": "qa"}), None, None)
    with bound_request_id("abc123"):
        line = json.loads(JsonFormatter().format(record))
    assert line["request_id"] == "abc123" and line["event"] == "answer" and line["level"] == "info"
    plain = logging.LogRecord("x", logging.WARNING, __file__, 1, "plain %s", ("words",), None)
    assert json.loads(JsonFormatter().format(plain))["message"] == "plain words"


def test_a_read_only_replica_refuses_to_ingest_and_still_answers(demo_bot, tmp_path):
    note = tmp_path / "note.md"
    note.write_text("# Note\n\nA replica must not write the shared index.\n")
    before = demo_bot.index.count
    with launch(demo_bot, port=0, read_only=True) as srv:
        with pytest.raises(PermissionError, match="read-only replica"):
            srv.app.state.bot.ingest([note])
        assert httpx.get(f"{srv.url}/ready").status_code == 200
    assert demo_bot.index.count == before
