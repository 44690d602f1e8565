"""Ablation over every development set: the default answer pipeline, then each rule or technique off.

Each row is the default with one change (a rule of `assistant.tasks.rules` switched off by
`Config.rules_off`, or a technique's switch); each column group one development set, answered in
the same run on its own workspace (built once by `bench_answers.workspace_for`):

    git+faq     qa_en.jsonl, its git and Debian FAQ questions (the rules' tuning set)
    paraphrase  qa_paraphrase.jsonl (qa_en's facts in other words; identifiers nobody documents)
    handbook    qa_handbook.jsonl (the Debian Administrator's Handbook, written by someone else)
    sqlite      qa_en.jsonl, its SQLite questions (a workspace of the SQLite manual alone)
    zh          qa_zh.jsonl (Chinese man pages)
    man58       qa_man58.jsonl (this machine's /usr/share/man/man5 and man8, read from roff; written
                after the rules and never tuned on)

    python benchmarks/bench_ablation.py                       # every row, every set
    python benchmarks/bench_ablation.py --sets handbook zh --rows default page-name

Prints a table per figure and writes benchmarks/results/bench_ablation.json after each cell (a
long run that is stopped keeps what it measured, and --resume skips the cells it holds), with
every question's outcome for the rows.

A rule's row re-asks only the questions the rule can act on (`can_apply`: a question that asks no
number cannot get the number bonus, one that spells out no page's name cannot get its lead); the
others take the default row's outcome, which is exactly what they would get (greedy decoding, the
same code path). So the rule rows cost minutes, and their latency column is mostly the default's.
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
from assistant.evaluation.answers import evaluate, rates  # noqa: E402
from assistant.tasks import answerability, rules  # noqa: E402
from assistant.tasks.rules import RULES  # noqa: E402
from index import doc_ranking  # noqa: E402

SETS = {  # name: (question file, manuals of the workspace and whose questions are asked, language)
    "git+faq": ("qa_en.jsonl", ["git", "debian-faq"], "en"),
    "paraphrase": ("qa_paraphrase.jsonl", ["git", "debian-faq"], "en"),
    "handbook": ("qa_handbook.jsonl", ["handbook"], "en"),
    "sqlite": ("qa_en.jsonl", ["sqlite"], "en"),
    "zh": ("qa_zh.jsonl", [], "zh"),
    "man58": ("qa_man58.jsonl", ["man5", "man8"], "man"),
}
ROWS: dict[str, dict] = {"default": {}}
ROWS.update({f"{r.name} off": {"rules_off": r.name} for r in RULES})
ROWS.update({
    "evidence by sentence (evidence_windows off)": {"evidence_windows": False},
    "declines by window wording (decline_by_vocabulary off)": {"decline_by_vocabulary": False},
    "no quote under the answer (quote_evidence off)": {"quote_evidence": False},
    "model written to the end of a failing sentence (stop_at_foreign_term off)": {"stop_at_foreign_term": False},
    "the model on every question (model_margin inf)": {"model_margin": float("inf")},
    "one window for the model (answer_candidates 1)": {"answer_candidates": 1},
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


def can_apply(rule: str, question: str, bot: Assistant) -> bool:
    """Whether switching `rule` off could change this question's answer (False: it cannot)."""
    if rule == "number-bonus":
        return bool(rules.ASKS_NUMBER.search(question))
    if rule == "option-bonus":
        return bool(rules.ASKS_OPTION.search(question))
    if rule == "page-name":
        return bool(rules.ASKS_FOR_NAME.search(question))
    if rule == "quantity-without-number":
        return answerability.asks_for_quantity(question)
    if rule == "term-not-in-windows":
        return bool(answerability.distinctive_terms(question))
    if rule == "absent-term":
        return bool(answerability.absent_terms(question, bot.index.mentions))
    if rule == "named-page-lead":
        return bool(doc_ranking.named_documents(bot.index._current(), question))
    return True


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", nargs="*", default=list(SETS), choices=list(SETS))
    ap.add_argument("--rows", nargs="*", help="row names as in the table (or a rule's name); default: all")
    ap.add_argument("--limit", type=int, help="questions per set (a quick look, not a figure)")
    ap.add_argument("--resume", action="store_true", help="keep the cells the last run measured")
    ap.add_argument("--out", type=Path, default=OUT, help=f"result file (default {OUT})")
    args = ap.parse_args()
    wanted = [r for r in ROWS if not args.rows or r in args.rows or r.removesuffix(" off") in args.rows]
    out = args.out
    previous = json.loads(out.read_text()) if args.resume and out.exists() else {}
    from foundation.machine import cpu, describe

    result = {"benchmark": "bench_ablation", "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                                                         "cpu": describe(cpu())}, "cells": previous.get("cells", {}),
              "per_question": previous.get("per_question", {})}
    workspaces = {name: workspace_for(SETS[name][1], SETS[name][2]) for name in args.sets}
    files = {name: questions_for(name) for name in args.sets}
    keep = ("id", "answerable", "declined", "correct", "cited_right", "latency_ms")
    for name in args.sets:  # one assistant per set, its settings changed per row (an assistant per cell grew to 21 GB)
        bot = Assistant.open(workspaces[name])
        base = bot.config
        for row in wanted:
            if args.resume and name in result["cells"].get(row, {}):
                continue
            bot.config = base.replace(**ROWS[row])
            t0 = time.perf_counter()
            rule = ROWS[row].get("rules_off")
            default = {q["id"]: q for q in result["per_question"].get("default", {}).get(name, [])}
            asked = files[name]
            if rule and default:  # only the questions the rule can act on; the rest keep the default's outcome
                lines = [line for line in asked.read_text(encoding="utf-8").splitlines() if line.strip()]
                lines = [line for line in lines if can_apply(rule, json.loads(line)["question"], bot)]
                asked = asked.with_name(f"{asked.stem}-{rule}.jsonl")
                asked.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
            measured = evaluate(bot, asked, limit=args.limit)["per_question"] if asked.read_text().strip() else []
            outcomes = {q["id"]: {k: q[k] for k in keep} for q in measured}
            merged = [outcomes.get(i, d) for i, d in default.items()] if rule and default else list(outcomes.values())
            cell = dict(rates(merged), asked=len(measured), seconds=round(time.perf_counter() - t0, 1))
            result["cells"].setdefault(row, {})[name] = cell
            result["per_question"].setdefault(row, {})[name] = merged
            result["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            out.write_text(json.dumps(result, indent=1, ensure_ascii=False))
            print(f"{row} | {name}: asked {len(measured)}, " + ", ".join(f"{k} {cell[k]}" for k in FIGURES), flush=True)
        bot.close()
    for figure in FIGURES:
        print(f"\n{figure}")
        print(table(["row", *args.sets], [[row, *[result["cells"].get(row, {}).get(s, {}).get(figure, "-")
                                                  for s in args.sets]] for row in wanted]))
    print("wrote", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
