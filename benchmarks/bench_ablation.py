"""Ablation over every development set: the default answer pipeline, then each rule or technique off.

Each row is the default with one change (a rule of `assistant.tasks.rules` switched off by
`Config.rules_off`, or a technique's switch); each column group one development set, answered in
the same run on its own workspace (built once by `bench_answers.workspace_for`):

    git+faq     qa_en.jsonl, its git and Debian FAQ questions (the rules' tuning set)
    paraphrase  qa_paraphrase.jsonl (qa_en's facts in other words; identifiers nobody documents)
    handbook    qa_handbook.jsonl (the Debian Administrator's Handbook, written by someone else)
    sqlite      qa_en.jsonl, its SQLite questions (a workspace of the SQLite manual alone)
    zh          qa_zh.jsonl (Chinese man pages)

    python benchmarks/bench_ablation.py                       # every row, every set
    python benchmarks/bench_ablation.py --sets handbook zh --rows default page-name

Prints a table per figure and writes benchmarks/results/bench_ablation.json after each cell (a
long run that is stopped keeps what it measured), with every question's outcome for the rows.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _common import RESULTS, table  # noqa: E402
from bench_answers import DEVSET, workspace_for  # noqa: E402

from assistant import Assistant  # noqa: E402
from assistant.evaluation.answers import evaluate  # noqa: E402
from assistant.tasks.rules import RULES  # noqa: E402

SETS = {  # name: (question file, manuals of the workspace and whose questions are asked, language)
    "git+faq": ("qa_en.jsonl", ["git", "debian-faq"], "en"),
    "paraphrase": ("qa_paraphrase.jsonl", ["git", "debian-faq"], "en"),
    "handbook": ("qa_handbook.jsonl", ["handbook"], "en"),
    "sqlite": ("qa_en.jsonl", ["sqlite"], "en"),
    "zh": ("qa_zh.jsonl", [], "zh"),
}
ROWS: dict[str, dict] = {"default": {}}
ROWS.update({f"{r.name} off": {"rules_off": r.name} for r in RULES})
ROWS.update({
    "evidence by sentence (evidence_windows off)": {"evidence_windows": False},
    "declines by window wording (decline_by_vocabulary off)": {"decline_by_vocabulary": False},
    "no quote under the answer (quote_evidence off)": {"quote_evidence": False},
    "quote only, no model (answer_candidates 0)": {"answer_candidates": 0},
})
FIGURES = ["strict_accuracy", "citation_accuracy", "declined_unanswerable", "false_declines", "median_latency_ms"]
OUT = RESULTS / "bench_ablation.json"


def questions_for(name: str) -> Path:
    """The set's questions, in a file of their own (qa_en holds several manuals' questions)."""
    file, manuals, lang = SETS[name]
    rows = [json.loads(line) for line in (DEVSET / file).read_text(encoding="utf-8").splitlines() if line.strip()]
    if lang == "en":
        rows = [r for r in rows if r.get("manual") in manuals]
    path = Path(tempfile.gettempdir()) / f"bench_ablation_{name}.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", nargs="*", default=list(SETS), choices=list(SETS))
    ap.add_argument("--rows", nargs="*", help="row names as in the table (or a rule's name); default: all")
    ap.add_argument("--limit", type=int, help="questions per set (a quick look, not a figure)")
    args = ap.parse_args()
    wanted = [r for r in ROWS if not args.rows or r in args.rows or r.removesuffix(" off") in args.rows]
    previous = json.loads(OUT.read_text()) if OUT.exists() else {}
    from foundation.machine import cpu, describe

    result = {"benchmark": "bench_ablation", "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                                                         "cpu": describe(cpu())}, "cells": previous.get("cells", {}),
              "per_question": previous.get("per_question", {})}
    workspaces = {name: workspace_for(SETS[name][1], SETS[name][2]) for name in args.sets}
    files = {name: questions_for(name) for name in args.sets}
    for row in wanted:
        for name in args.sets:
            bot = Assistant.open(workspaces[name])
            bot.config = bot.config.replace(**ROWS[row])
            t0 = time.perf_counter()
            measured = evaluate(bot, files[name], limit=args.limit)
            bot.close()
            cell = dict(measured["all"], seconds=round(time.perf_counter() - t0, 1))
            result["cells"].setdefault(row, {})[name] = cell
            result["per_question"].setdefault(row, {})[name] = [
                {k: q[k] for k in ("id", "declined", "correct", "cited_right")} for q in measured["per_question"]]
            result["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            OUT.write_text(json.dumps(result, indent=1, ensure_ascii=False))
            print(f"{row} | {name}: " + ", ".join(f"{k} {cell[k]}" for k in FIGURES), flush=True)
    for figure in FIGURES:
        print(f"\n{figure}")
        print(table(["row", *args.sets], [[row, *[result["cells"].get(row, {}).get(s, {}).get(figure, "-")
                                                  for s in args.sets]] for row in wanted]))
    print("wrote", OUT)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
