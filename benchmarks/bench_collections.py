"""Search restricted to the collections a user may read: the row mask vs unfiltered search vs an index per collection.

At 100k chunks (synthetic clustered vectors and Zipf-distributed synthetic text, as bench_search.py
builds them: embedding 100k real passages takes hours on a 2-core CPU) the readable subset is 5 %
of the chunks (one collection of 50 of the 1000 documents). For dense, keyword and hybrid ranking it
times one query (query embedding excluded: it is the same in every variant), p50 and p95 of:

  unfiltered      `search.rank` over every row (what a user who reads everything pays)
  mask            the same call with the user's readable-rows mask (`index.collections.readable_mask`):
                  FAISS ID selector (IVF at 100k, with its exact fallback over the allowed rows),
                  BM25 scored and counted over the readable rows only
  per-collection  `search.rank` on a separate index built from the readable collection alone

and the ratio mask / unfiltered (target: at most 1.5x). The variants run in turn on each query, best of
3 kept, so load from other processes on a shared machine falls on all of them alike. It also times the mask's first build (cached
per set of collections afterwards), and a query whose only keyword occurs in forbidden rows against
one whose keyword occurs nowhere, since the time must not tell a user what they may not read.

    .venv/bin/python benchmarks/bench_collections.py [--chunks 100000] [--queries 200] [--share 0.05]
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import percentile, table, write_result  # noqa: E402
from benchmarks.bench_search import DIM, synthetic_state  # noqa: E402
from index import collections as access  # noqa: E402
from index import search as searching  # noqa: E402
from index.keyword import KeywordIndex  # noqa: E402
from index.store import State  # noqa: E402
from index.vectors import VectorIndex  # noqa: E402

MODES = ("dense", "keyword", "hybrid")
K = 5
TEAM = "team"


def label(state: State, share: float) -> State:
    """Every 1/share-th document goes to the readable collection, the rest to six others."""
    step = round(1 / share)
    docs = {p: replace(d, collection=TEAM if i % step == 0 else f"other{i % 6}")
            for i, (p, d) in enumerate(sorted(state.documents.items()))}
    return State(state.generation, state.manifest, docs, state.chunks, state.vectors, state.vector_index, state.keyword)


def subset_state(state: State, rows: np.ndarray, kind: str) -> State:
    """An index of the readable collection alone (what one index per collection would hold)."""
    chunks = [state.chunks[i] for i in rows]
    vectors = np.ascontiguousarray(state.vectors[rows])
    docs = {p: d for p, d in state.documents.items() if d.collection == TEAM}
    return State("", state.manifest, docs, chunks, vectors, VectorIndex.build(vectors, DIM, kind=kind),
                 KeywordIndex.build([c["text"] for c in chunks]))


def queries(state: State, n: int, rng: np.random.Generator) -> list[tuple[str, np.ndarray]]:
    """Query texts of 4 words from real chunks, with a vector near a real chunk's."""
    out = []
    for row in rng.integers(0, len(state.chunks), n):
        words = state.chunks[row]["text"].split()
        text = " ".join(rng.choice(words, 4, replace=False))
        vec = np.asarray(state.vectors[row]) + rng.normal(0, 0.05, DIM).astype(np.float32)
        out.append((text, (vec / np.linalg.norm(vec)).astype(np.float32)))
    return out


def timed(fn, qs) -> list[float]:
    fn(*qs[0])  # warm
    out = []
    for q in qs:
        t0 = time.perf_counter()
        fn(*q)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def interleaved(variants: dict, qs, repeats: int = 3) -> dict[str, list[float]]:
    """ms per query for each variant, run in turn on the same query and the best of `repeats` kept:
    on a shared machine, other processes' load then falls on every variant alike."""
    for fn in variants.values():
        fn(*qs[0])  # warm
    out: dict[str, list[float]] = {name: [] for name in variants}
    for q in qs:
        best = dict.fromkeys(variants, float("inf"))
        for _ in range(repeats):
            for name, fn in variants.items():
                t0 = time.perf_counter()
                fn(*q)
                best[name] = min(best[name], (time.perf_counter() - t0) * 1000)
        for name, ms in best.items():
            out[name].append(ms)
    return out


def run(n: int, n_queries: int, share: float, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    state = label(synthetic_state(n, rng), share)
    built_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    corpus = access.readable_mask(state, {TEAM})
    mask_ms = (time.perf_counter() - t0) * 1000
    rows = np.flatnonzero(corpus)
    alone = subset_state(state, rows, kind="auto")
    qs = queries(state, n_queries, rng)
    results, table_rows = {}, []
    for mode in MODES:
        times = interleaved({"unfiltered": lambda q, v: searching.rank(state, q, v, K, mode, None),
                             "mask": lambda q, v: searching.rank(state, q, v, K, mode, corpus, corpus=corpus),
                             "per_collection": lambda q, v: searching.rank(alone, q, v, K, mode, None)}, qs)
        stats = {name: {"p50_ms": percentile(t, 0.5), "p95_ms": percentile(t, 0.95)} for name, t in times.items()}
        stats["ratio_p50"] = stats["mask"]["p50_ms"] / stats["unfiltered"]["p50_ms"]
        stats["ratio_p95"] = stats["mask"]["p95_ms"] / stats["unfiltered"]["p95_ms"]
        results[mode] = stats
        table_rows.append([mode, stats["unfiltered"]["p50_ms"], stats["mask"]["p50_ms"], stats["per_collection"]["p50_ms"],
                           stats["ratio_p50"], stats["unfiltered"]["p95_ms"], stats["mask"]["p95_ms"], stats["ratio_p95"]])
    print(f"{n} chunks, {len(rows)} readable ({len(rows) / n:.1%}), index {state.vector_index.kind}; "
          f"built in {built_s:.0f} s; mask built in {mask_ms:.1f} ms (then cached)")
    print(table(["mode", "unfiltered p50", "mask p50", "per-collection p50", "mask/unfiltered p50",
                 "unfiltered p95", "mask p95", "mask/unfiltered p95"], table_rows))
    return {"chunks": n, "readable_chunks": int(len(rows)), "index_kind": state.vector_index.kind,
            "mask_build_ms": mask_ms, "modes": results, "timing_oracle": timing_oracle(state, corpus, rng)}


def timing_oracle(state: State, corpus: np.ndarray, rng: np.random.Generator, repeats: int = 300) -> dict:
    """Keyword search time for a word that only forbidden rows hold vs a word no row holds."""
    words = {}
    for i in np.flatnonzero(~corpus)[:2000]:
        for w in state.chunks[i]["text"].split():
            words.setdefault(w, set()).add(int(i))
    readable_words = {w for i in np.flatnonzero(corpus) for w in state.chunks[i]["text"].split()}
    hidden = sorted((w for w in words if w not in readable_words), key=lambda w: -len(words[w]))[0]
    qvec = np.asarray(state.vectors[0])
    forbidden = timed(lambda q, v: searching.rank(state, q, v, K, "keyword", corpus, corpus=corpus),
                      [(hidden, qvec)] * repeats)
    absent = timed(lambda q, v: searching.rank(state, q, v, K, "keyword", corpus, corpus=corpus),
                   [("zzznowhere", qvec)] * repeats)
    out = {"word_only_in_forbidden_rows": hidden, "forbidden_p50_ms": percentile(forbidden, 0.5),
           "absent_p50_ms": percentile(absent, 0.5)}
    print(f"timing: a word only forbidden rows hold ({hidden!r}) {out['forbidden_p50_ms']:.3f} ms p50, "
          f"a word no row holds {out['absent_p50_ms']:.3f} ms p50")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chunks", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--share", type=float, default=0.05, help="readable share of the documents")
    args = ap.parse_args()
    result = run(args.chunks, args.queries, args.share)
    print("wrote", write_result("bench_collections", {"queries": args.queries, "share": args.share, **result}))


if __name__ == "__main__":
    main()
