"""The README's run command ends in `assistant demo`: it must ingest the bundled docs and serve a
chat that answers. We start the real command in a subprocess and talk to it with gradio_client."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx


def test_demo_ingests_the_bundled_docs_and_answers(tmp_path, free_port):
    port = free_port
    env = {**os.environ, "ASSISTANT_WORKSPACE": str(tmp_path / "ws")}
    proc = subprocess.Popen([sys.executable, "-m", "assistant.cli", "demo", "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 600
        while time.time() < deadline:
            assert proc.poll() is None, proc.stdout.read()
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(1)
        else:
            raise AssertionError("the demo did not start serving within 10 minutes")
        page = httpx.get(url + "/", timeout=30)
        assert page.status_code == 200 and "Domain Assistant" in page.text

        from gradio_client import Client

        client = Client(url, verbose=False)
        result = client.predict("How do I make the assistant serve a fine-tuned model?", api_name="/ask")
        final = result[-1] if isinstance(result, list) else result
        assert final["text"].strip()
        assert any(Path(s["file"]).name == "fine-tuning.md" for s in final["sources"]), final["sources"]
        assert (tmp_path / "ws" / "log.db").exists()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
