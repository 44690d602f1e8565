"""Where the answer is lost: retrieval, the choice of window, or the answer written from it.

For each answerable question of a development set, without calling the model:
- passage: the answer string occurs in one of the top_k passages read (and in the first);
- window first: it occurs in the evidence window ranked first (what the model is handed, and what
  is quoted): the issue's target "answer window ranked first for >= 70 %";
- window any: it occurs in one of the evidence windows (the model may try the next one);
- deeper: it occurs in one of the first 20 passages (what a wider candidate pool could reach).

    python benchmarks/bench_windows.py --qa benchmarks/devset/qa_paraphrase.jsonl
    python benchmarks/bench_windows.py --manuals handbook --qa benchmarks/devset/qa_handbook.jsonl

Rows compare settings in the same run (against the default). Prints a table and writes
benchmarks/results/bench_windows.json (with each question's outcome for the default setting).

Last run (Intel Xeon, 2 cores, 2026-12-07; "holds" = an acceptable answer string occurs in it, so a
window that answers in other words counts as a miss):

    set (answerable)     passage first  passage any  window first  window any  deep any (20)
    git+faq (103)        0.553          0.816        0.515         0.699       0.981
    paraphrase (32)      0.312          0.656        0.219         0.438       0.844
    handbook (32)        0.750          0.938        0.625         0.750       0.969
    sqlite (69)          0.638          0.812        0.594         0.739       0.942
    zh (50)              0.580          0.900        0.540         0.760       0.940

Then HTML definition lists became sections led by their term (`index.html_loader`, a window
inside one led by it, `evidence.narrow`); re-ingested, same machine, 2026-12-07:

    git+faq (103)        0.602          0.854        0.602         0.777       1.000
    paraphrase (32)      0.281          0.625        0.219         0.469       0.906
    handbook (32)        0.750          0.938        0.625         0.750       0.969
    sqlite (69)          0.652          0.812        0.609         0.739       0.942
    zh (50)              unchanged (plain-text man pages)

Then manual pages saved as text were read by their layout (`index.man_text`: sections, options
under their terms, no running header) and no chunk ends on an option's term (`index.chunking`);
re-ingested, same machine: zh (50) 0.480 / 0.880 / 0.540 / 0.720 / 0.980 (the English rows
unchanged). Window first is where it was; the answer is less often in the first passage because
a page's NAME and SYNOPSIS are now passages of their own and win some searches.
Then no chunk ends on a line that introduces what follows ("... the following commands:"),
window first: git+faq 0.592, paraphrase 0.281, handbook 0.625, sqlite 0.594, zh 0.540.
Then the whole option bonus for a question that asks for an option expressly, "how do I" counted
as asking for one, and one-word page names in Chinese questions (`index.doc_ranking.spelled_out`),
window first: git+faq 0.602, paraphrase 0.344, handbook 0.688, sqlite 0.594, zh 0.600. Measured and dropped the same day: a smaller step of the
rank prior per place (0.05 / 0.025 / 0.0125 instead of 0.075) put more answers first on git+faq (0.612
/ 0.641 / 0.650) but brought windows closer, so the model ran on more questions (median answer 57 ms
-> 0.95 / 1.1 s) for +1 / +1 right answers over all five sets (bench_ablation); the question's request
words ("which option", "用哪个选项") left out of the word coverage: handbook 0.688 -> 0.656, zh 0.600 -> 0.560.

The answer is nearly always among the first 20 passages, and the window chosen first holds it about
as often as the first passage does: the order, not the candidates, is what is missing. Scoring more
passages' windows (8 / 12 instead of 3) puts the answer among the windows far more often (git+faq
window any 0.757 -> 0.883 / 0.922, paraphrase 0.469 -> 0.656 / 0.688) but not first (0.515 ->
0.515 / 0.505), at 2-3x the planning time. Measured and dropped on the same sets, window first:
the window features (cosines, word coverage, value bonus, retrieval scores and order) combined by
weights learned on two sets and tested on the third, 0.505 -> 0.534, 0.281 -> 0.250, 0.625 -> 0.594
(the hand weights are as good as these features allow); re-ranking the 8 best windows by the
default generator's likelihood of the question (query likelihood), 0.515 -> 0.544, 0.281 -> 0.312,
0.625 -> 0.500 at 1.2 s a question.
Measured and dropped on 2026-12-08 (Intel Xeon, 2 cores; window first on git+faq, paraphrase,
handbook, sqlite, zh, man58; default 0.602 / 0.344 / 0.688 / 0.594 / 0.600 / 0.733):
- more passages re-ranked (top_k 8 or 12), still 3 scored: 0.612-0.621 / 0.281 / 0.688 / 0.580;
- a smaller rank prior step per place (0.0125 instead of 0.075): 0.660 / 0.344 / 0.688 / 0.652 /
  0.660 / 0.700, but strict accuracy needs the model on the closer windows (bench_ablation: git+faq
  0.650 -> 0.670 at a median answer of 1.4 s; with model_margin 0.05 to keep it at ~60 ms, 0.641,
  paraphrase 0.344 -> 0.312, zh 0.600 -> 0.660), and higher-placed windows of later passages pass
  the evidence gate, so fewer unanswerable questions are declined (git+faq 0.684 -> 0.632, zh 0.500
  -> 0.333);
- each sentence embedded with its page title and heading ("git-log(1) OPTIONS: ..."), alone or
  averaged with the bare sentence: 0.583-0.592 / 0.344 / 0.719 / 0.551-0.580 / 0.600 / 0.733, at
  ~1.5x the planning time.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _common import median, table, write_result  # noqa: E402
from bench_answers import DEVSET, workspace_for  # noqa: E402

from assistant import Assistant  # noqa: E402
from assistant.context import WorkspaceContext  # noqa: E402
from assistant.evaluation.answers import read_items  # noqa: E402
from assistant.evaluation.metrics import normalise  # noqa: E402
from assistant.tasks import qa  # noqa: E402
from assistant.tasks.base import TaskRequest  # noqa: E402

SETTINGS: dict[str, dict] = {
    "default": {},
    "evidence by sentence (evidence_windows off)": {"evidence_windows": False},
    "4 passages scored": {"evidence_sources": 4},
    "8 passages scored": {"top_k": 8, "evidence_sources": 8},
    "12 passages scored": {"top_k": 12, "evidence_sources": 12},
}
DEEP = 20


def holds(text: str, answers: list[str]) -> bool:
    flat = normalise(text)
    return any(normalise(a) and normalise(a) in flat for a in answers)


def measure(bot: Assistant, items: list) -> tuple[dict, list[dict]]:
    rows = []
    for item in items:
        ctx = WorkspaceContext(bot.index, bot.config, bot.generator(), "qa")
        req = TaskRequest(text=item.question, query=item.question, k=bot.config.top_k)
        t0 = time.perf_counter()
        found = qa.plan(ctx, req)
        ms = (time.perf_counter() - t0) * 1000
        sources = found.sources if found else []
        evidence = found.evidence if found else []
        deep = ctx.retrieve(item.question, DEEP)
        first_passage = next((i for i, s in enumerate(sources) if holds(s.text, item.answers)), None)
        rows.append({"id": item.id, "question": item.question,
                     "passage_any": first_passage is not None, "passage_first": first_passage == 0,
                     "window_first": bool(evidence) and holds(evidence[0].text, item.answers),
                     "window_any": any(holds(e.text, item.answers) for e in evidence),
                     "deep_any": any(holds(s.text, item.answers) for s in deep),
                     "first_window": evidence[0].text[:300] if evidence else "", "plan_ms": round(ms, 1)})
    n = max(1, len(rows))
    share = {key: round(sum(r[key] for r in rows) / n, 3)
             for key in ("passage_first", "passage_any", "window_first", "window_any", "deep_any")}
    share["median_plan_ms"] = round(median([r["plan_ms"] for r in rows]) or 0.0, 1)
    return share, rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manuals", nargs="*", default=["git", "debian-faq"])
    ap.add_argument("--qa", default=str(DEVSET / "qa_en.jsonl"))
    ap.add_argument("--lang", default="en")
    ap.add_argument("--only", nargs="*", help="run only these settings (names as in the table)")
    args = ap.parse_args()
    items = [i for i in read_items(args.qa) if i.answerable]
    manuals = {json.loads(line).get("id"): json.loads(line).get("manual")
               for line in Path(args.qa).read_text(encoding="utf-8").splitlines() if line.strip()}
    items = [i for i in items if args.lang != "en" or manuals.get(i.id) in (None, *args.manuals)]
    ws = workspace_for(args.manuals if args.lang == "en" else [], args.lang)
    results, per_question = {}, {}
    for name, changes in SETTINGS.items():
        if args.only and name not in args.only:
            continue
        bot = Assistant.open(ws)
        bot.config = bot.config.replace(**changes)
        results[name], per_question[name] = measure(bot, items)
        bot.close()
    keys = ["passage_first", "passage_any", "window_first", "window_any", "deep_any", "median_plan_ms"]
    print(f"{len(items)} answerable questions from {Path(args.qa).name}")
    print(table(["setting", *keys], [[name, *[r[k] for k in keys]] for name, r in results.items()]))
    print("wrote", write_result("bench_windows", {"qa": Path(args.qa).name, "manuals": args.manuals,
                                                  "questions": len(items), "results": results,
                                                  "per_question": per_question}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
