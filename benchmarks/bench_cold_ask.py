"""A cold `assistant ask` (issue 15): the whole command in a fresh process, and where its seconds go.

Each repetition runs, in a new Python process each:
  * the command as a user types it, `assistant --workspace WS ask QUESTION`, timed from outside
    (interpreter start to exit: what the shell waits for);
  * a probe that does the same steps one at a time and times each: interpreter + imports of the
    CLI, opening the workspace, the log (SQLite + schema check), the index (FAISS + BM25 + the
    embedder, with one warm-up embedding), the generator, then the answer itself (retrieval and
    generation, from the answer's own timings).
With `--before DIR` (a checkout of an older commit, e.g. `git worktree add /tmp/before HEAD~5`),
the same runs alternate between that checkout and this one, so both see the same machine load.
Medians of `--repeat` (default 5). The workspace is ingested from `docs/` once, by this checkout.

    .venv/bin/python benchmarks/bench_cold_ask.py [--repeat 5] [--before /tmp/before]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import median, table, write_result  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
QUESTION = "Which environment variable chooses the workspace folder?"
STAGES = ("imports", "open", "log", "index + embedder", "generator", "retrieval", "generation", "checks + log write")

PROBE = r"""
import json, sys, time
t0 = time.perf_counter()
import assistant.cli  # what the command imports before it does anything
from assistant import Assistant
t1 = time.perf_counter()
bot = Assistant.open(sys.argv[1])
t2 = time.perf_counter()
_ = bot.log
t3 = time.perf_counter()
bot.index.embed(["warm-up"])
t4 = time.perf_counter()
bot.generator()
t5 = time.perf_counter()
ans = bot.ask(sys.argv[2])
t6 = time.perf_counter()
tm = ans.timings
answer_s = t6 - t5
print(json.dumps({"imports": t1 - t0, "open": t2 - t1, "log": t3 - t2, "index + embedder": t4 - t3,
                  "generator": t5 - t4, "retrieval": tm.retrieval_ms / 1000, "generation": tm.generation_ms / 1000,
                  "checks + log write": max(0.0, answer_s - (tm.retrieval_ms + tm.generation_ms) / 1000),
                  "text": ans.text[:200], "module": assistant.cli.__file__}))
"""


def python_of(checkout: Path) -> str:
    own = checkout / ".venv" / "bin" / "python"
    return str(own if own.exists() else REPO / ".venv" / "bin" / "python")


def run_command(checkout: Path, workspace: Path) -> float:
    start = time.perf_counter()
    subprocess.run([python_of(checkout), "-m", "assistant.cli", "--workspace", str(workspace), "ask", QUESTION],
                   cwd=checkout, check=True, capture_output=True, env=env_for(checkout))
    return time.perf_counter() - start


def run_probe(checkout: Path, workspace: Path) -> dict:
    start = time.perf_counter()
    out = subprocess.run([python_of(checkout), "-c", PROBE, str(workspace), QUESTION], cwd=checkout, check=True,
                         capture_output=True, text=True, env=env_for(checkout))
    wall = time.perf_counter() - start
    stages = json.loads(out.stdout.strip().splitlines()[-1])
    stages["interpreter start"] = max(0.0, wall - sum(stages[s] for s in STAGES))
    return stages


def env_for(checkout: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(checkout), "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--before", type=Path, help="an older checkout to compare against in the same run")
    args = ap.parse_args()
    checkouts = {"now": REPO} | ({"before": args.before.resolve()} if args.before else {})

    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp) / "workspace"
        subprocess.run([python_of(REPO), "-m", "assistant.cli", "--workspace", str(ws), "ingest", "docs/"],
                       cwd=REPO, check=True, capture_output=True, env=env_for(REPO))
        for checkout in checkouts.values():  # first runs convert/cache models: not timed
            run_command(checkout, ws)
        commands: dict[str, list[float]] = {k: [] for k in checkouts}
        probes: dict[str, list[dict]] = {k: [] for k in checkouts}
        for i in range(args.repeat):
            for label, checkout in checkouts.items():
                commands[label].append(run_command(checkout, ws))
                probes[label].append(run_probe(checkout, ws))
            print(f"repetition {i + 1}/{args.repeat}: " + ", ".join(
                f"{k} {commands[k][-1]:.2f}s" for k in checkouts), flush=True)

    names = ["interpreter start", *STAGES]
    result = {"question": QUESTION, "repeat": args.repeat, "checkouts": {k: str(v) for k, v in checkouts.items()},
              "command_s": {k: median(v) for k, v in commands.items()},
              "stages_s": {k: {s: median([p[s] for p in probes[k]]) for s in names} for k in checkouts},
              "answers": {k: probes[k][-1]["text"] for k in checkouts}}
    headers = ["stage", *(f"{k} (s, median)" for k in checkouts)]
    rows = [[s, *(result["stages_s"][k][s] for k in checkouts)] for s in names]
    rows.append(["probe total", *(sum(result["stages_s"][k].values()) for k in checkouts)])
    rows.append(["`assistant ask` command", *(result["command_s"][k] for k in checkouts)])
    print(table(headers, rows))
    print(f"wrote {write_result('bench_cold_ask', result)}")


if __name__ == "__main__":
    main()
