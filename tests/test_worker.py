"""`assistant worker`: the cluster's ingest writer keeps a folder ingested and says how far it got.

A real process over the real embedder: it ingests what is there, then a file dropped later, reports
each ingest as a JSON line and in Prometheus format, and leaves cleanly on SIGTERM.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]


def _next_ingest(proc: subprocess.Popen, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"the worker exited: {proc.stderr.read()[-3000:]}")
        event = json.loads(line)
        assert event["event"] != "ingest_error", event
        if event["event"] == "ingest":
            return event
    raise AssertionError("no ingest reported in time")


def _metric(port: int, name: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return float(next(line.split()[-1] for line in text.splitlines() if line.startswith(name + " ")
                      or line.startswith(name + "{")))


def test_worker_ingests_the_folder_then_each_new_file_and_reports_it(tmp_path, free_port):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for name in ("keys.md", "backups.md"):
        (inbox / name).write_text(f"# {name[:-3].title()}\n\nHow the team handles {name[:-3]}: weekly, with a checklist.\n")
    proc = subprocess.Popen([sys.executable, "-m", "assistant.cli", "--workspace", str(tmp_path / "ws"), "worker",
                             str(inbox), "--interval", "0.5", "--metrics-port", str(free_port)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert json.loads(proc.stdout.readline())["event"] == "watching"
        first = _next_ingest(proc)
        assert (first["added"], first["failed"], first["generation"]) == (2, [], "gen-000001")
        assert _metric(free_port, 'assistant_ingest_files_total{outcome="added"}') == 2
        assert _metric(free_port, "assistant_index_generation") == 1
        assert _metric(free_port, "assistant_ingest_progress_ratio") == 1

        (inbox / "rotation.md").write_text("# Rotation\n\nRotate the signing keys every 90 days.\n")
        second = _next_ingest(proc)
        assert (second["added"], second["skipped"], second["generation"]) == (1, 2, "gen-000002")
        assert _metric(free_port, "assistant_index_generation") == 2

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
