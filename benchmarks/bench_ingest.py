"""Ingest throughput: the whole pipeline against plain `SentenceTransformer.encode` on the same chunks.

Corpus: Python's reference topics (`pydoc_data.topics`, real reST-like text, ~80 files). In one run:
  * baseline: `SentenceTransformer(path).encode(texts, batch_size=32)` (the library defaults) on
    exactly the texts the pipeline embedded;
  * pipeline: `DocumentIndex.ingest` from files to a committed generation, split into its stages
    (load + chunk, embed, build FAISS + BM25 + write) using the progress callback's timestamps;
  * incremental: re-ingest with nothing changed, and with one file changed.
The ratio columns divide chunks/s by the baseline's chunks/s (1.0 = as fast as plain encode).

    .venv/bin/python benchmarks/bench_ingest.py [--docs 80] [--repeat 1]
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import table, write_result  # noqa: E402
from index import DocumentIndex  # noqa: E402
from foundation.devices import pick_device  # noqa: E402
from index.ingest import embed_text  # noqa: E402


def write_corpus(folder: Path, limit: int) -> int:
    from pydoc_data.topics import topics

    folder.mkdir(parents=True, exist_ok=True)
    names = sorted(topics)[:limit]
    for name in names:
        (folder / f"{name}.rst").write_text(topics[name])
    return sum(len(topics[n]) for n in names)


def baseline_texts(folder: Path, idx: DocumentIndex) -> list[str]:
    """The exact texts the pipeline will embed (it is deterministic), computed without embedding."""
    from index.chunking import chunk_document
    from index.loaders import load_document

    texts = []
    counter = idx.token_counter()
    for path in sorted(folder.iterdir()):
        doc = load_document(path, path.read_bytes())
        for ch in chunk_document(doc, counter, idx.chunk_tokens, idx.chunk_overlap):
            texts.append(embed_text(doc.title, ch.heading, ch.text))
    return texts


def plain_encode(idx: DocumentIndex, texts: list[str], batch_size: int) -> float:
    """Seconds for `SentenceTransformer.encode` with library defaults on `texts`."""
    from sentence_transformers import SentenceTransformer

    plain = SentenceTransformer(idx.embedder_path, device=pick_device("auto"))
    plain.encode(["warm up"])
    s = time.perf_counter()
    plain.encode(texts, batch_size=batch_size, normalize_embeddings=True)
    return time.perf_counter() - s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=80, help="how many topic files to ingest (max ~80)")
    ap.add_argument("--batch-size", type=int, default=32, help="baseline encode batch size")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_ingest_"))
    try:
        chars = write_corpus(work / "docs", args.docs)
        idx = DocumentIndex.open(work / "index")
        idx.embed(["warm up"])  # load the model outside the timings
        marks: dict[str, float] = {}

        def progress(message: str, done: int, total: int) -> None:
            marks.setdefault(f"{message}:start", time.perf_counter())
            if done == total:
                marks[f"{message}:end"] = time.perf_counter()

        # Baseline before the pipeline as well as after it: on a shared machine the load changes,
        # and taking the faster baseline keeps the ratio conservative.
        base_before = plain_encode(idx, baseline_texts(work / "docs", idx), args.batch_size)
        start = time.perf_counter()
        report = idx.ingest([work / "docs"], progress=progress)
        total_s = time.perf_counter() - start
        n = report.chunks_added
        load_s = marks["Loading files:end"] - marks["Loading files:start"]
        embed_s = marks["Embedding chunks:end"] - marks["Embedding chunks:start"]
        commit_s = total_s - load_s - embed_s

        texts = [embed_text(c.title, c.heading, c.text) for c in idx.iter_chunks()]
        base_s = min(base_before, plain_encode(idx, texts, args.batch_size))  # best of before and after

        s = time.perf_counter()
        unchanged = idx.ingest([work / "docs"], progress=False)
        skip_s = time.perf_counter() - s
        victim = sorted((work / "docs").iterdir())[0]
        victim.write_text(victim.read_text() + "\nAn added closing paragraph about nothing in particular.\n")
        s = time.perf_counter()
        changed = idx.ingest([work / "docs"], progress=False)
        change_s = time.perf_counter() - s

        base_rate = n / base_s
        rows = [
            ["plain SentenceTransformer.encode (baseline)", n, base_s, base_rate, 1.0],
            ["pipeline: embedding stage", n, embed_s, n / embed_s, (n / embed_s) / base_rate],
            ["pipeline: load + chunk stage", n, load_s, n / load_s, (n / load_s) / base_rate],
            ["pipeline: FAISS + BM25 + commit", n, commit_s, n / commit_s, (n / commit_s) / base_rate],
            ["pipeline: whole ingest", n, total_s, n / total_s, (n / total_s) / base_rate],
            [f"re-ingest, unchanged ({len(unchanged.skipped)} skipped)", 0, skip_s, 0.0, total_s / skip_s],
            [f"re-ingest, 1 file changed ({changed.chunks_added} chunks)", changed.chunks_added, change_s,
             changed.chunks_added / change_s, total_s / change_s],
        ]
        print(f"{len(report.added)} files, {chars / 1e6:.2f} M chars -> {n} chunks "
              f"(chunk_tokens={idx.chunk_tokens}, overlap={idx.chunk_overlap}), device={pick_device('auto')}")
        print(table(["stage", "chunks", "seconds", "chunks/s", "ratio (x baseline; re-ingest: x full)"], rows))
        path = write_result("bench_ingest", {
            "files": len(report.added), "chars": chars, "chunks": n, "device": pick_device("auto"),
            "rows": [dict(zip(["stage", "chunks", "seconds", "chunks_per_s", "ratio"], r)) for r in rows],
        })
        print(f"wrote {path}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
