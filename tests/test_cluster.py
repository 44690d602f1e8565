"""The scale-out topology in CI: the short run of benchmarks/bench_scale.py (2 replicas behind nginx on a
PostgreSQL log, ~30 s of load, a document ingested and a replica SIGKILLed mid-load), checked here.

Needs nginx (scripts/install_nginx.sh) and PostgreSQL (scripts/start_postgres.sh); without either the
test is skipped with a warning and a banner in the output, never passed quietly.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _skip_loudly(reason: str) -> None:
    message = f"cluster test SKIPPED: {reason}"
    warnings.warn(message, stacklevel=2)
    print(f"\n*** {message} ***")
    pytest.skip(message)


@pytest.mark.slow
@pytest.mark.postgres
def test_two_replicas_lose_no_answer_reload_a_new_document_and_survive_a_kill(tmp_path):
    if not (shutil.which("nginx") or Path("/usr/sbin/nginx").exists()):
        _skip_loudly("nginx is not installed (run: bash scripts/install_nginx.sh)")
    if not (os.environ.get("TEST_POSTGRES_URL") or os.environ.get("DATABASE_URL")):
        _skip_loudly('no PostgreSQL (run: eval "$(bash scripts/start_postgres.sh)")')
    out = tmp_path / "scale.json"
    run = subprocess.run([sys.executable, "benchmarks/bench_scale.py", "--ci", "--json", str(out)], cwd=REPO,
                         capture_output=True, text=True, timeout=840)
    assert run.returncode == 0, run.stderr[-4000:]
    r = json.loads(out.read_text())
    assert r["proxy"] == "nginx" and r["log_backend"] == "postgresql" and r["replicas"] == 2
    assert r["answered"] > 0 and r["lost"] == 0 and r["logged"] == r["answered"], r
    assert r["request_ids_matched"] == r["request_ids_checked"] > 0  # nginx's id is the one in the log
    assert r["reload_seconds"] is not None and r["reload_seconds"] <= 60, r  # every replica found the new file
    assert r["killed_replica"] and r["after_kill"]["answered"] > 0, r  # the survivor kept answering
    before_kill = [e for e in r["error_samples"] if "before kill" in e]
    assert not before_kill, before_kill  # errors only where the kill cut requests off
    assert r["memory_per_replica_mb"] > 0 and r["p95_s"] >= r["p50_s"] > 0
