"""Search quality on real documents, and search latency / approximate-index recall at scale.

Sections, all in one run:
  1. Real documents: Python's own reference topics (`pydoc_data.topics`, ~80 long reST-like pages)
     are written as files, ingested, and 62 questions with a known topic are run through
     `index.evaluation.evaluate`: recall@1/5/10, MRR, nDCG@10 of dense, keyword and hybrid.
     A question also counts as answered by a topic page that contains the expected page
     verbatim (e.g. "compound" contains "for"), found by text inclusion, not by hand.
  2. Latency of one query at 10k and 100k chunks (synthetic clustered vectors + synthetic text;
     the index kind the default picks: flat at 10k, IVF at 100k):
     p50/p95 of dense, keyword and hybrid ranking, plus the real query embedding.
  3. Approximate index (IVF, HNSW) at 100k: recall@10 against exact search and the speed-up.
  4. (--million) dense-only exact vs IVF at 1M vectors.
  5. GPU: FAISS on the GPU when `faiss.get_num_gpus() > 0`; prints "no GPU" otherwise.

    .venv/bin/python benchmarks/bench_search.py [--sizes 10000 100000] [--queries 200] [--million]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import RESULTS, percentile, table, write_result  # noqa: E402
from index import DocumentIndex  # noqa: E402
from index import search as searching  # noqa: E402
from index.evaluation import evaluate, format_table  # noqa: E402
from index.keyword import KeywordIndex  # noqa: E402
from index.store import DocumentInfo, State  # noqa: E402
from index.vectors import VectorIndex, gpu_count, ivf_params  # noqa: E402

QA = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "index" / "pydoc_qa.jsonl"
DIM = 384


# --- 1. real documents --------------------------------------------------------------------------

def real_documents(work: Path) -> dict:
    from pydoc_data.topics import topics

    docs = work / "pydoc_topics"
    docs.mkdir(parents=True, exist_ok=True)
    for name, text in topics.items():
        (docs / f"{name}.rst").write_text(text)
    bodies = {name: " ".join(text.split("\n", 3)[-1].split()) for name, text in topics.items()}
    qa_out = work / "pydoc_qa_paths.jsonl"
    with qa_out.open("w") as fh:
        for line in QA.read_text().splitlines():
            item = json.loads(line)
            probe = bodies[item["topic"]][:400]
            paths = [f"{item['topic']}.rst"] + sorted(f"{n}.rst" for n, b in bodies.items()
                                                      if n != item["topic"] and probe in b)
            fh.write(json.dumps({"question": item["question"], "path": paths}) + "\n")
    idx = DocumentIndex.open(work / "pydoc_index")
    started = time.perf_counter()
    report = idx.ingest([docs], progress=True)
    print(f"ingest: {report.summary()} ({time.perf_counter() - started:.1f}s)")
    result = evaluate(idx, qa_out)
    print(format_table(result))
    for mode, missed in result["misses"].items():
        print(f"  {mode} misses @10: {len(missed)}")
    return {"documents": len(idx.documents()), "chunks": idx.count, **result}


# --- 2-4. synthetic scale -------------------------------------------------------------------------

def clustered_vectors(n: int, rng: np.random.Generator, clusters: int = 1000) -> np.ndarray:
    centers = rng.standard_normal((clusters, DIM), dtype=np.float32)
    out = np.empty((n, DIM), dtype=np.float32)
    step = 100_000
    for s in range(0, n, step):
        m = min(step, n - s)
        assign = rng.integers(0, clusters, m)
        out[s:s + m] = centers[assign] + 0.9 * rng.standard_normal((m, DIM), dtype=np.float32)
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


def synthetic_state(n: int, rng: np.random.Generator, kind: str = "auto") -> State:
    vocab = [f"term{i}" for i in range(20_000)]
    weights = 1.0 / np.arange(1, len(vocab) + 1)
    weights /= weights.sum()
    words = rng.choice(len(vocab), size=(n, 40), p=weights)
    chunks, docs = [], {}
    for i in range(n):
        path = f"/bench/doc{i // 100}.md"
        chunks.append({"id": f"{i}", "path": path, "ordinal": i % 100, "text": " ".join(vocab[w] for w in words[i]),
                       "heading": "", "page": None, "start_line": None, "end_line": None})
        if path not in docs:
            docs[path] = DocumentInfo(path, path, "markdown", 100, "0" * 64, 0)
    vectors = clustered_vectors(n, rng)
    vindex = VectorIndex.build(vectors, DIM, kind=kind)
    keyword = KeywordIndex.build([c["text"] for c in chunks])
    manifest = {"embedder": "all-MiniLM-L6-v2", "dimension": DIM}
    return State("", manifest, docs, chunks, vectors, vindex, keyword)


def latency(n: int, queries: int, rng: np.random.Generator, work: Path) -> tuple[list, State]:
    t = time.perf_counter()
    state = synthetic_state(n, rng)
    build_s = time.perf_counter() - t
    qrows = rng.integers(0, n, queries)
    qvecs = state.vectors[qrows] + 0.05 * rng.standard_normal((queries, DIM), dtype=np.float32)
    qvecs /= np.linalg.norm(qvecs, axis=1, keepdims=True)
    qtexts = [" ".join(state.chunks[r]["text"].split()[:6]) for r in qrows]
    rows = []
    for mode in ("dense", "keyword", "hybrid"):
        times = []
        for qv, qt in zip(qvecs, qtexts):
            s = time.perf_counter()
            ranked = searching.rank(state, qt, qv, 5, mode, None)
            [searching.to_source(state, r, sc, qv, qt, i) for i, (r, sc) in enumerate(ranked, 1)]
            times.append(1000 * (time.perf_counter() - s))
        rows.append([n, mode, percentile(times, 0.5), percentile(times, 0.95)])
    # filtered hybrid (path prefix matching 10% of the documents)
    times = []
    for qv, qt in zip(qvecs, qtexts):
        s = time.perf_counter()
        mask = searching.filter_mask(state, "/bench/doc1", None)
        searching.rank(state, qt, qv, 5, "hybrid", mask)
        times.append(1000 * (time.perf_counter() - s))
    rows.append([n, "hybrid+filter", percentile(times, 0.5), percentile(times, 0.95)])
    print(f"  built {n} synthetic chunks (vectors + BM25) in {build_s:.1f}s")
    return rows, state


def query_embedding_latency(work: Path, queries: int) -> list:
    idx = DocumentIndex.open(work / "empty_index")
    idx.embed(["warm up"])
    times = []
    for i in range(min(queries, 50)):
        s = time.perf_counter()
        idx.embed([f"how do I configure the feature number {i} for production?"])
        times.append(1000 * (time.perf_counter() - s))
    return ["-", "query embedding", percentile(times, 0.5), percentile(times, 0.95)]


def approx_recall(vectors: np.ndarray, queries: np.ndarray, kinds=("ivf", "hnsw"), use_gpu: bool = False) -> list:
    flat = VectorIndex.build(vectors, DIM, kind="flat", use_gpu=use_gpu)
    _, exact = flat.search(queries, 10)
    one = [1000 * _timed(lambda q=q: flat.search(q, 10)) for q in queries[:100]]
    rows = [["flat (exact)", len(vectors), "-", 0.0, 1.0, percentile(one, 0.5), 1.0]]
    for kind in kinds:
        s = time.perf_counter()
        index = VectorIndex.build(vectors, DIM, kind=kind, use_gpu=use_gpu)
        build_s = time.perf_counter() - s
        _, got = index.search(queries, 10)
        recall = float(np.mean([len(set(a) & set(e)) / 10 for a, e in zip(got, exact)]))
        single = [1000 * _timed(lambda q=q: index.search(q, 10)) for q in queries[:100]]
        params = {k: v for k, v in index.params.items() if k != "threshold"}
        rows.append([kind, len(vectors), json.dumps(params), build_s, recall, percentile(single, 0.5),
                     percentile(one, 0.5) / max(percentile(single, 0.5), 1e-6)])
    return rows


def _timed(fn) -> float:
    s = time.perf_counter()
    fn()
    return time.perf_counter() - s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--million", action="store_true", help="also dense-only exact vs IVF at 1M vectors")
    ap.add_argument("--skip-real", action="store_true", help="skip the pydoc topics evaluation")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    out: dict = {"ivf_params_100k": ivf_params(100_000)}
    work = RESULTS / "search_work"
    work.mkdir(parents=True, exist_ok=True)

    if not args.skip_real:
        print("\n== 1. Real documents: Python reference topics (pydoc_data.topics) ==")
        out["real_documents"] = real_documents(work)

    print("\n== 2. Latency of one query (ms), synthetic chunks, k=5, CPU ==")
    rows, state = [], None
    for n in args.sizes:
        r, state = latency(n, args.queries, rng, work)
        rows += r
    rows.append(query_embedding_latency(work, args.queries))
    print(table(["chunks", "mode", "p50 ms", "p95 ms"], rows))
    out["latency"] = [dict(zip(["chunks", "mode", "p50_ms", "p95_ms"], r)) for r in rows]

    print(f"\n== 3. Approximate index vs exact at {len(state.vectors)} vectors (recall@10, single-query p50) ==")
    vectors = np.asarray(state.vectors)
    queries = vectors[rng.integers(0, len(vectors), args.queries)] + 0.05 * rng.standard_normal((args.queries, DIM), dtype=np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    headers = ["index", "vectors", "params", "build s", "recall@10", "p50 ms", "speed-up"]
    approx = approx_recall(vectors, queries)
    print(table(headers, approx))
    out["approximate"] = [dict(zip(headers, r)) for r in approx]

    if args.million:
        print("\n== 4. Dense-only at 1M vectors ==")
        big = clustered_vectors(1_000_000, rng)
        rows = approx_recall(big, queries[:100], kinds=("ivf",))
        print(table(headers, rows))
        out["million"] = [dict(zip(headers, r)) for r in rows]
        del big

    print("\n== 5. GPU ==")
    if gpu_count() == 0:
        print("no GPU: faiss.get_num_gpus() == 0 (faiss-cpu build or no device); GPU rows skipped")
        out["gpu"] = "no GPU"
    else:
        rows = approx_recall(vectors, queries, kinds=("ivf",), use_gpu=True)
        print(table(headers, rows))
        out["gpu"] = [dict(zip(headers, r)) for r in rows]
    path = write_result("bench_search", out)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
