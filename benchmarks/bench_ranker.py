"""The workspace ranker (issue 20, part 1), one manual at a time: trained only on that manual's text.

For each manual of the dev set (git, sqlite, debian-faq under benchmarks/devset/corpus/en/), in one run:
  1. ingest the manual alone into its own workspace under --work (re-used: unchanged files are skipped);
  2. train a ranker on it (`finetune.recipes.ranker`, the same code as `assistant finetune --recipe ranker`),
     timed, and read its held-out pair figures (pages it never saw; untrained vs trained query encoder);
  3. retrieval on the manual's answerable questions of qa_en.jsonl, nDCG@10 / recall@1 / MRR:
       * hybrid: the product's default order, no ranker (the baseline, measured in this run);
       * hybrid + untrained: the same fusion with the untrained encoder (separates fusion from learning);
       * hybrid + ranker: the trained ranker, as the assistant serves it;
     page-level (a hit on the answer's page counts) and passage-level (the hit must hold the answer).
Last run (2 CPU cores shared with other work, load 10-16; --max-seconds 300):
  debian-faq, 17 pages / 357 chunks: 33 steps in 249 s (298 s in all); held-out pairs (3 pages) list MRR 0.535 ->
    0.573, corpus MRR 0.371 -> 0.402; retrieval nDCG@10 page 0.862 hybrid / 0.826 + untrained / 0.803 + ranker,
    passage 0.714 / 0.715 / 0.708.
  git, 206 pages / 7,123 chunks: 37 steps in 294 s (520 s in all); held-out pairs (300 queries) list MRR 0.390 ->
    0.479, corpus MRR 0.193 -> 0.302; retrieval nDCG@10 page 0.889 / 0.867 / 0.844, passage 0.678 / 0.647 / 0.639.
  sqlite, 212 pages / 13,800 chunks: 70 steps in 297 s (563 s in all); held-out pairs (300 queries) list MRR 0.497
    -> 0.497, corpus MRR 0.174 -> 0.207; retrieval nDCG@10 page 0.823 / 0.807 / 0.830, passage 0.637 / 0.613 / 0.651.
The ranker learns its own kind of query on pages it never saw (git, corpus view everywhere), but real questions
come out worse on git and the FAQ and only slightly better on SQLite, and the fusion alone (untrained) always
costs; lowering the ranker's weight in the fusion on git (0.5, 0.25) only moves it toward plain hybrid (page nDCG@10
0.863, 0.877). Trained on headings alone (no clozes; 126 steps in 186 s on a quieter machine), git's held-out
pairs rose further (list MRR 0.553, corpus 0.349) and real questions still fell (page 0.851, passage 0.643): what
the pairs teach does not carry over to users' questions here. Reordering only the passages within each page
(the hybrid's page order kept) lowers passage-level nDCG@10 too: git 0.678 -> 0.653, sqlite 0.637 -> 0.624,
debian-faq 0.714 -> 0.687. Nothing is served by default. (debian-faq's split was then keyed by
absolute path; keyed by file name it holds out 3 other pages, where 30 steps of 16 took list MRR 0.597 -> 0.564.)

    .venv/bin/python benchmarks/bench_ranker.py [--work DIR] [--manuals debian-faq git sqlite] [--max-seconds 480]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._common import table, write_result  # noqa: E402
from finetune.recipes.ranker import RankerConfig, train_ranker  # noqa: E402
from foundation.model_paths import resolve_embedder  # noqa: E402
from foundation.workspace import atomic_write_json  # noqa: E402
from index import DocumentIndex  # noqa: E402
from index.evaluation import evaluate  # noqa: E402
from index.reranking import QUERY_ENCODER, RANKER_META, QueryEncoder  # noqa: E402

DEVSET = REPO / "benchmarks" / "devset"
CORPUS = DEVSET / "corpus" / "en"


def questions(manual: str, out: Path, passage: bool) -> Path | None:
    """The manual's answerable questions; with `passage`, a hit must also hold the first expected answer."""
    rows = []
    for line in (DEVSET / "qa_en.jsonl").read_text().splitlines():
        item = json.loads(line)
        if item.get("answerable") and item.get("manual") == manual and item.get("path"):
            row = {"question": item["question"], "path": item["path"]}
            rows.append({**row, "passage": item["answers"][0]} if passage else row)
    if not rows:
        return None
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


def untrained_ranker(folder: Path) -> Path:
    """The bundled encoder as a ranker folder: the same fusion with nothing learnt (the control)."""
    if not (folder / RANKER_META).exists():
        QueryEncoder(resolve_embedder("all-MiniLM-L6-v2")).save(folder)
        atomic_write_json(folder / RANKER_META, {"kind": QUERY_ENCODER, "base": "all-MiniLM-L6-v2", "int8_agrees": False})
    return folder


def retrieval(ws: Path, reranker: str, qa: Path) -> dict:
    idx = DocumentIndex.open(ws / "index", device="cpu", reranker=reranker)
    return evaluate(idx, qa, modes=("hybrid",))["modes"]["hybrid"]


def run_manual(manual: str, work: Path, max_seconds: float) -> dict:
    ws = work / manual
    started = time.perf_counter()
    report = DocumentIndex.open(ws / "index", device="cpu").ingest([CORPUS / manual], progress=False)
    print(f"[{manual}] ingest: {report.summary()} ({time.perf_counter() - started:.0f}s)", flush=True)
    result = train_ranker(RankerConfig(workspace=ws, name=f"bench-{int(time.time())}", max_seconds=max_seconds,
                                       serve=False, progress=False))
    m = result.metrics
    print(f"[{manual}] ranker: {m['training']['steps']} steps, {m['training']['seconds']} s training, "
          f"{m['seconds_total']} s in all; held-out lists MRR {m['untrained']['lists']['mrr']:.3f} -> "
          f"{m['trained']['lists']['mrr']:.3f}", flush=True)
    control = untrained_ranker(work / "untrained-ranker")
    rankings = {"hybrid": "", "hybrid + untrained": str(control), "hybrid + ranker": str(result.folder / "model")}
    out = {"manual": manual, "pages": m["data"]["pages"], "chunks": m["data"]["chunks"], "ranker": result.name,
           "heldout_pairs": {"untrained": m["untrained"], "trained": m["trained"]}, "training": m["training"],
           "int8": m["int8"], "seconds_total": m["seconds_total"], "would_serve": result.reasons[-1], "retrieval": {}}
    for level in ("page", "passage"):
        qa = questions(manual, work / f"{manual}_{level}.jsonl", passage=level == "passage")
        if qa is not None:
            out["retrieval"][level] = {name: retrieval(ws, setting, qa) for name, setting in rankings.items()}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "bench_ranker",
                    help="one workspace per manual, kept and re-used")
    ap.add_argument("--manuals", nargs="+", default=["debian-faq", "git", "sqlite"])
    ap.add_argument("--max-seconds", type=float, default=480.0, help="training budget per manual")
    args = ap.parse_args()
    if not CORPUS.exists():
        sys.exit("build the dev set corpus first: python3 benchmarks/devset/build_corpus.py")
    args.work.mkdir(parents=True, exist_ok=True)
    results = [run_manual(m, args.work, args.max_seconds) for m in args.manuals]
    rows = []
    for r in results:
        h = r["heldout_pairs"]
        rows.append([r["manual"], "held-out pairs (lists)", h["untrained"]["lists"]["mrr"], h["trained"]["lists"]["mrr"],
                     h["untrained"]["lists"]["ndcg@10"], h["trained"]["lists"]["ndcg@10"], h["trained"]["lists"]["queries"]])
        rows.append([r["manual"], "held-out pairs (corpus)", h["untrained"]["corpus"]["mrr"], h["trained"]["corpus"]["mrr"],
                     h["untrained"]["corpus"]["ndcg@10"], h["trained"]["corpus"]["ndcg@10"], h["trained"]["corpus"]["queries"]])
    print(table(["manual", "set", "MRR untrained", "MRR trained", "nDCG@10 untrained", "nDCG@10 trained", "queries"], rows))
    rows = []
    for r in results:
        for level, modes in r["retrieval"].items():
            for name, m in modes.items():
                rows.append([r["manual"], level, name, m["ndcg@10"], m["recall@1"], m["mrr"], f"{m['ms_per_query']:.0f}"])
    print(table(["manual", "target", "ranking", "nDCG@10", "recall@1", "MRR", "ms/query"], rows))
    rows = [[r["manual"], r["pages"], r["chunks"], r["training"]["steps"], r["training"]["seconds"], r["seconds_total"],
             r["int8"]["agrees"]] for r in results]
    print(table(["manual", "pages", "chunks", "steps", "training s", "total s", "int8 serves"], rows))
    print(f"wrote {write_result('bench_ranker', {'manuals': results})}")


if __name__ == "__main__":
    main()
