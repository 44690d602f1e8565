"""benchmarks/gpu_check.sh: on a machine without a GPU it says so and succeeds; its code paths run at tiny sizes."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run(env_extra: dict[str, str], timeout: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", **env_extra}
    return subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh")], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=REPO)


def test_without_a_gpu_it_says_no_gpu_and_exits_0():
    done = run({}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "no GPU" in done.stdout


@pytest.mark.slow
def test_tiny_sizes_run_every_row_on_the_cpu():
    done = run({"GPU_CHECK_TINY": "1"}, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((REPO / "benchmarks" / "results" / "gpu_check_tiny.json").read_text())
    rows = {r["what"]: r for r in result["rows"]}
    assert rows["FAISS flat, CPU"]["recall@10"] == 1.0  # exact search agrees with the torch ground truth
    assert all(r["tokens_per_s"] > 0 for w, r in rows.items() if "fine-tuning" in w)
    assert any(w.startswith("embedding") and r["sentences_per_s"] > 0 for w, r in rows.items())
