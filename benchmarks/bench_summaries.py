"""Summaries on the two development sets, against the baselines a summary must beat, in the same run.

Issue 20: one-sentence summaries of manual pages scored ROUGE-L 0.14 where quoting the
DESCRIPTION's first sentence scored 0.22. This prints, per set and per requested form, the
summaries' ROUGE-L against the pages' own one-line descriptions, the first-sentence baseline
(DESCRIPTION's, a module docstring's, or the first section's first sentence, quoted as it stands),
their ratio, and the first-30-words baseline; it writes benchmarks/results/bench_summaries.json.

    python3 benchmarks/devset/build_corpus.py           # the manual pages (NAME removed)
    python3 benchmarks/devset/build_summary_sets.py      # Python modules (docstring line removed), sections 5/7 (NAME kept)
    python benchmarks/bench_summaries.py                  # every set
    python benchmarks/bench_summaries.py --sets py --limit 20
    python benchmarks/bench_summaries.py --sets man58 --by-name   # the request alone must name its page

Each set is ingested once into its own workspace under --workspaces (kept between runs). The
sets are for development: independent checks use other pages (sections 2/3, PostgreSQL, ...).
man58 is this machine's /usr/share/man/man5 and man8 read from their roff sources (607 pages here),
NAME lines kept; 90 requests name their page as a user would ("the manual page for fstab",
"fstab(5)"). By name (2026-12-07, Intel Xeon, 2 cores): ROUGE-L 0.395 before the request's page name
was resolved (a search picked the passages; one-sentence 0.571, right page 0.967), 0.505 after
(one-sentence 0.885, right page 1.000); the small sets give the same figures by name or by path.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _common import table, write_result  # noqa: E402
from bench_answers import SYSTEM_MAN  # noqa: E402

from assistant import Assistant  # noqa: E402
from assistant.evaluation.summaries import evaluate  # noqa: E402

DEVSET = Path(__file__).resolve().parent / "devset"
SETS = {  # name: (question file, corpus folders it summarises)
    "man": (DEVSET / "summaries.jsonl", [DEVSET / "corpus" / "summaries"]),
    "py": (DEVSET / "summaries_py.jsonl", [DEVSET / "corpus" / "summaries_py"]),
    "man57": (DEVSET / "summaries_man57.jsonl", [DEVSET / "corpus" / "summaries_man57"]),
    # this machine's section 5 and 8 pages (607 on Debian 12 with man-db), read from roff, NAME kept:
    # with --by-name, whether a request finds its page among hundreds
    "man58": (DEVSET / "summaries_man58.jsonl", [SYSTEM_MAN / "man5", SYSTEM_MAN / "man8"]),
}


def workspace(root: Path, name: str, corpus: list[Path]) -> Assistant:
    """The set's workspace, ingesting its corpus the first time (an ingest skips unchanged files)."""
    for folder in corpus:
        if not folder.is_dir():
            sys.exit(f"bench_summaries: no corpus at {folder}; build it first (see this script's docstring)")
    bot = Assistant.open(str(root / name))
    report = bot.ingest([str(folder) for folder in corpus])
    if report.failed:
        print(f"bench_summaries: {len(report.failed)} files failed to load in {[str(f) for f in corpus]}",
              file=sys.stderr)
    return bot


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", nargs="+", choices=sorted(SETS), default=sorted(SETS))
    ap.add_argument("--workspaces", type=Path, default=Path("/tmp/bench-summaries"),
                    help="one workspace per set is made here (default: %(default)s)")
    ap.add_argument("--limit", type=int, default=None, help="first N requests of each set")
    ap.add_argument("--by-name", action="store_true",
                    help="the requests' words must name their page (no path given), as in a chat")
    args = ap.parse_args(argv)
    rows, results = [], {}
    for name in args.sets:
        set_file, corpus = SETS[name]
        result = evaluate(workspace(args.workspaces, name, corpus), set_file, limit=args.limit, by_name=args.by_name)
        results[name] = result
        for form, f in [("all", result["all"]), *sorted(result["all"]["by_form"].items())]:
            rows.append([name, form, f["documents"], f["rouge_l"], f["baseline_first_sentence_rouge_l"],
                         f["ratio_to_first_sentence"] or 0.0, f["baseline_first_30_words_rouge_l"],
                         f["form_respected"], f["right_document"], f["median_words"]])
    print(table(["set", "form", "docs", "ROUGE-L", "first sentence", "ratio", "first 30 words", "form kept",
                 "right page", "median words"], rows))
    path = write_result("bench_summaries", {"sets": results, "by_name": args.by_name})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
