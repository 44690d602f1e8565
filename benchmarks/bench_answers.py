"""Answer accuracy on the development set (benchmarks/devset), with each QA technique on and off.

Builds (once) a workspace per sub-corpus of `benchmarks/devset/corpus` (run
`python3 benchmarks/devset/build_corpus.py` first), then runs `assistant eval answers` under
several settings in the same run, so the rows compare like with like:

    python benchmarks/bench_answers.py                     # git + Debian FAQ questions, all rows
    python benchmarks/bench_answers.py --manuals git debian-faq sqlite --limit 50
    python benchmarks/bench_answers.py --manuals handbook   # the Debian Administrator's Handbook

Questions come from devset/qa_en.jsonl, and also from devset/qa_handbook.jsonl when `handbook`
is among --manuals (unless --qa names a file).

Rows: the answer pipeline before narrowing (whole passage to the model, no quote), narrowing and
checks without the quote, the default (quote under the answer), quoting only (no model), and the
default pipeline on the float32 reference decoder and on int8 forced (against the default, whose
decoder the self-check chose on this CPU: `assistant doctor` says which).
Prints a table and writes benchmarks/results/bench_answers.json.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _common import RESULTS, table, write_result  # noqa: E402

from assistant import Assistant  # noqa: E402
from assistant.evaluation.answers import evaluate  # noqa: E402

DEVSET = Path(__file__).resolve().parent / "devset"
SETTINGS = {
    "whole passage, no quote": {"narrow_evidence": False, "quote_evidence": False, "min_evidence": 0.0},
    "narrowed + checked, no quote": {"quote_evidence": False},
    "default (quote under the answer)": {},
    "quote only (no model)": {"answer_candidates": 0},
    # issue 20 part 3: declines from the workspace's vocabulary vs from the windows' wording
    "declines by window wording (vocabulary off)": {"decline_by_vocabulary": False},
    # issue 20: evidence scored by each sentence alone (evidence_windows off) vs with the window it hands the model
    "evidence by sentence (evidence_windows off)": {"evidence_windows": False},
    # the decoder rows (issue 24): the default is whatever the self-check chose on this CPU
    "decoder = transformers (float32 reference)": {"decoder": "transformers"},
    "decoder = ctranslate2-int8 (forced)": {"decoder": "ctranslate2-int8"},
}


SYSTEM_MAN = Path("/usr/share/man")  # lang "man": this machine's manual pages, read from their roff sources


def workspace_for(manuals: list[str], lang: str) -> Path:
    """A workspace holding the named manuals (built on first use, reused afterwards); for lang "man"
    the named sections of this machine's manual pages (["man5", "man8"] for qa_man58.jsonl)."""
    if lang == "man":
        ws = RESULTS / f"devset-ws-man-{'-'.join(sorted(manuals))}"
        if not (ws / "index" / "CURRENT").exists():
            print(Assistant.open(ws).ingest([SYSTEM_MAN / m for m in manuals]).summary())
        return ws
    root = DEVSET / "corpus" / lang
    if not root.is_dir():
        sys.exit(f"{root} is missing: build the corpus first (python3 benchmarks/devset/build_corpus.py)")
    ws = RESULTS / f"devset-ws-{lang}-{'-'.join(sorted(manuals)) or 'all'}"
    if not (ws / "index" / "CURRENT").exists():  # (an ingest stopped half-way left no CURRENT: ingest again)
        staging = ws.with_suffix(".docs") / lang
        for m in manuals or [p.name for p in root.iterdir() if p.is_dir()]:
            shutil.copytree(root / m, staging / m, dirs_exist_ok=True)
        print(Assistant.open(ws).ingest([staging]).summary())
    return ws


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manuals", nargs="*", default=["git", "debian-faq"])
    ap.add_argument("--qa", help="question file (default: qa_en.jsonl, plus qa_handbook.jsonl for --manuals handbook)")
    ap.add_argument("--lang", default="en")
    ap.add_argument("--limit", type=int)
    ap.add_argument("--only", nargs="*", help="run only these settings (names as in the table)")
    args = ap.parse_args()
    qa_files = [Path(args.qa)] if args.qa else [DEVSET / "qa_en.jsonl"] + (
        [DEVSET / "qa_handbook.jsonl"] if "handbook" in args.manuals else [])
    rows = [json.loads(line) for f in qa_files for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = [r for r in rows if not args.manuals or r.get("manual") in args.manuals or r.get("lang") != "en"]
    qa = RESULTS / "bench_answers_questions.jsonl"
    RESULTS.mkdir(parents=True, exist_ok=True)
    qa.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    ws = workspace_for(args.manuals if args.lang == "en" else [], args.lang)
    results = {}
    for name, changes in SETTINGS.items():
        if args.only and name not in args.only:
            continue
        bot = Assistant.open(ws)
        bot.config = bot.config.replace(**changes)
        results[name] = evaluate(bot, qa, limit=args.limit)["all"]
        bot.close()
    keys = ["strict_accuracy", "citation_accuracy", "declined_unanswerable", "false_declines", "median_latency_ms"]
    print(table(["setting", *keys], [[name, *[r[k] if r[k] is not None else "-" for k in keys]]
                                     for name, r in results.items()]))
    print("wrote", write_result("bench_answers", {"questions": len(rows), "manuals": args.manuals, "results": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
