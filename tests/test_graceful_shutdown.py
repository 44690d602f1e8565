"""SIGTERM on a real `assistant serve`: the streamed answer in flight finishes, new questions are refused
(503, which the proxy retries elsewhere), `/ready` turns 503, and the process exits cleanly with the
answer complete in the conversation log under its request id.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def serving(demo_bot, tmp_path, free_port):
    """A served copy of the demo workspace in its own process (JSON logs on)."""
    demo_bot.warm_up()
    ws = tmp_path / "ws"
    shutil.copytree(demo_bot.workspace, ws, ignore=shutil.ignore_patterns("log.db*", "uploads"))
    env = {**os.environ, "ASSISTANT_LOG_FORMAT": "json", "ASSISTANT_GRACE_S": "240"}
    proc = subprocess.Popen([sys.executable, "-m", "assistant.cli", "--workspace", str(ws), "serve",
                             "--port", str(free_port)], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{free_port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{url}/ready", timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail(f"the server never became ready: {proc.communicate()[1][-3000:]}")
    yield proc, url, ws
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_sigterm_finishes_the_streamed_answer_and_refuses_new_ones(serving):
    proc, url, ws = serving
    events: list[dict] = []
    first_text, ended = threading.Event(), threading.Event()

    def stream() -> None:
        # a code answer streams token by token for several seconds (a qa answer arrives shaped, at once)
        body = {"messages": [{"role": "user", "content": "Write a Python function that reads the conversation "
                                                            "log with SQLModel and prints each question, with comments."}],
                "stream": True, "max_tokens": 300, "task": "code"}
        with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=600,
                          headers={"X-Request-ID": "sigterm-test-1"}) as reply:
            for line in reply.iter_lines():
                if line.startswith("data: {"):
                    events.append(json.loads(line[6:]))
                    if events[-1]["choices"][0]["delta"].get("content"):
                        first_text.set()
                elif line == "data: [DONE]":
                    events.append({"done": True})
        ended.set()

    reader = threading.Thread(target=stream, daemon=True)
    reader.start()
    assert first_text.wait(300), "no text streamed"
    assert not ended.is_set(), "the answer ended before SIGTERM: nothing was in flight"
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)  # the handler runs in the server's main thread

    refused = httpx.post(f"{url}/v1/chat/completions", timeout=30,
                         json={"messages": [{"role": "user", "content": "Another question?"}]})
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "draining"
    assert refused.headers.get("retry-after")
    assert httpx.get(f"{url}/ready", timeout=10).status_code == 503
    assert not ended.is_set(), "the answer should still be streaming while the server drains"

    reader.join(600)
    assert events and events[-1] == {"done": True}, events[-3:]
    final = next(e for e in events if e.get("choices", [{}])[0].get("finish_reason"))
    assert final["message_id"] and not any("error" in e for e in events)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]

    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    answer = next(line for line in lines if line.get("event") == "answer")
    assert answer["request_id"] == "sigterm-test-1" and answer["outcome"] == "complete"
    assert any(line.get("event") == "shutdown" and line["finished_in_flight"] for line in lines)

    from assistant.log import ConversationLog

    with ConversationLog.open(f"sqlite:///{ws / 'log.db'}") as clog:
        row = clog.get_conversation(final["conversation_id"]).messages[-1]
        assert row.id == final["message_id"] and row.status == "complete" and row.content
