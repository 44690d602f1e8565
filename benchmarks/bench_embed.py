"""Embedding paths (issue 14): int8 ONNX vs float32 torch vs plain `SentenceTransformer.encode`.

Speed, in one run on real pages (the dev set's man pages of sections 1/8 rendered to text and
git's HTML manual from /usr/share/doc, built by benchmarks/devset/build_corpus.py):
  * plain: `SentenceTransformer(path).encode(texts, batch_size=32)` (library defaults, float32) on
    exactly the chunk texts the pipeline embedded;
  * whole ingest (load, chunk, embed, FAISS + BM25, commit) with embed_backend "torch" and "onnx-int8",
    each into a fresh index. The embedder and the chunker's tokenizer are loaded before the clock
    starts, as plain encode's model is. The tokenizer load is timed apart: where it is the first thing
    in a process to import transformers (the int8 path otherwise never does) it costs seconds, once;
  * the three are measured `--repeat` times in turn (int8, plain, torch, int8, ...) and the fastest of
    each kept: on a shared machine the load changes within a run, and the same rule for all three
    keeps the ratios fair.
Quality: the dev set's retrieval questions (retrieval_short_pages.jsonl: Debian FAQ answers among
long git/SQLite reference pages) through `index.evaluation.evaluate`, both paths on the same pages,
plus the top-5 neighbour overlap of the two indexes' stored vectors.

    .venv/bin/python benchmarks/bench_embed.py [--files 250] [--reference 80]
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import table, write_result  # noqa: E402
from index.document_index import DocumentIndex  # noqa: E402
from index.evaluation import evaluate  # noqa: E402
from index.ingest import embed_text  # noqa: E402

DEVSET = Path(__file__).resolve().parent / "devset"
CORPUS = DEVSET / "corpus"


def speed_pages(folder: Path, limit: int) -> int:
    """Copy up to `limit` real pages into `folder`: the man pages, then git's HTML pages, shortest first
    (a few hundred pages in minutes on 2 cores; all 295 are ~7,700 chunks)."""
    git = sorted((CORPUS / "en" / "git").rglob("*.html"), key=lambda p: (p.stat().st_size, p.name))
    sources = sorted((CORPUS / "summaries").rglob("*.txt")) + git
    if not sources:
        sys.exit("The dev set corpus is missing: python3 benchmarks/devset/build_corpus.py")
    for i, src in enumerate(sources[:limit]):
        shutil.copy(src, folder / f"{i:04d}-{src.name}")
    return min(limit, len(sources))


def quality_pages(folder: Path, reference: int) -> None:
    """All FAQ answers (the questions' targets) and the first `reference` long reference pages."""
    root = CORPUS / "retrieval"
    shutil.copytree(root / "faq", folder / "faq")
    for src in sorted((root / "reference").rglob("*")):
        if src.is_file() and reference > 0:
            dest = folder / "reference" / src.relative_to(root / "reference")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dest)
            reference -= 1


def chunk_texts(idx: DocumentIndex) -> list[str]:
    state = idx._current()
    titles = {p: d.title for p, d in state.documents.items()}
    return [embed_text(titles[c["path"]], c["heading"], c["text"]) for c in state.chunks]


def plain_encode(model_path: str, texts: list[str]) -> float:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(model_path, device="cpu")
    model.encode(["warm up"])
    start = time.perf_counter()
    model.encode(texts, batch_size=32, normalize_embeddings=True)
    return time.perf_counter() - start


def timed_ingest(folder: Path, pages: Path, backend: str) -> tuple[DocumentIndex, float, float]:
    """(index, ingest seconds, seconds to load the chunker's tokenizer beforehand)."""
    idx = DocumentIndex.open(folder, embed_backend=backend, device="cpu")
    idx.embed(["warm up"])  # model load (and the one-time int8 export) outside the timing
    start = time.perf_counter()
    idx.token_counter()
    tokenizer_s = time.perf_counter() - start
    start = time.perf_counter()
    report = idx.ingest([pages], progress=False)
    assert not report.failed, report.failed[:3]
    return idx, time.perf_counter() - start, tokenizer_s


def top5_overlap(a: np.ndarray, b: np.ndarray, sample: int = 2000) -> float:
    rows = np.arange(min(sample, len(a)))
    sa, sb = a[rows] @ a.T, b[rows] @ b.T
    sa[rows, rows] = sb[rows, rows] = -np.inf
    na, nb = np.argsort(-sa, axis=1)[:, :5], np.argsort(-sb, axis=1)[:, :5]
    return float(np.mean([len(set(x) & set(y)) / 5 for x, y in zip(na, nb)]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=250, help="real pages for the speed comparison")
    ap.add_argument("--reference", type=int, default=80, help="long reference pages beside the FAQ for quality")
    ap.add_argument("--repeat", type=int, default=2, help="rounds of the three speed measurements; fastest kept")
    ap.add_argument("--skip-quality", action="store_true")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_embed_"))
    try:
        (work / "pages").mkdir()
        n_files = speed_pages(work / "pages", args.files)
        int8_s = torch_s = plain_s = float("inf")
        for round_ in range(max(1, args.repeat)):
            int8_idx, seconds, tok_s = timed_ingest(work / f"int8-{round_}", work / "pages", "onnx-int8")
            int8_s = min(int8_s, seconds)
            if round_ == 0:
                cold_tokenizer_s = tok_s
                texts = chunk_texts(int8_idx)
            plain_s = min(plain_s, plain_encode(int8_idx.embedder_path, texts))
            torch_idx, seconds, _ = timed_ingest(work / f"torch-{round_}", work / "pages", "torch")
            torch_s = min(torch_s, seconds)
        n = len(texts)
        assert n == torch_idx.count, (n, torch_idx.count)
        overlap = top5_overlap(np.asarray(int8_idx._current().vectors), np.asarray(torch_idx._current().vectors))
        rate = n / plain_s
        speed = [
            ["plain SentenceTransformer.encode, float32 (baseline)", n, plain_s, rate, 1.0],
            ["whole ingest, embed_backend=torch (float32)", n, torch_s, n / torch_s, n / torch_s / rate],
            ["whole ingest, embed_backend=onnx-int8", n, int8_s, n / int8_s, n / int8_s / rate],
        ]
        print(f"{n_files} pages -> {n} chunks; top-5 neighbour overlap int8 vs float32 = {overlap:.3f}; "
              f"best of {max(1, args.repeat)}; the chunker's tokenizer loaded first in the process: "
              f"{cold_tokenizer_s:.1f} s (not in the ingest times)")
        print(table(["path", "chunks", "seconds", "chunks/s", "x plain encode"], speed))
        quality = []
        if not args.skip_quality:
            qa = DEVSET / "retrieval_short_pages.jsonl"
            quality_pages(work / "qpages", args.reference)
            for backend in ("torch", "onnx-int8"):
                idx = DocumentIndex.open(work / f"q-{backend}", embed_backend=backend, device="cpu")
                idx.ingest([work / "qpages"], progress=False)
                res = evaluate(idx, qa, modes=("dense", "hybrid"))
                for mode, m in res["modes"].items():
                    quality.append([backend, mode, idx.count, m["recall@10"], m["ndcg@10"], m["mrr"]])
            print(table(["embed_backend", "mode", "chunks", "recall@10", "nDCG@10", "MRR"], quality))
        path = write_result("bench_embed", {
            "pages": n_files, "chunks": n, "top5_overlap_int8_vs_float32": overlap, "repeat": max(1, args.repeat),
            "cold_tokenizer_load_s": cold_tokenizer_s,
            "speed": [dict(zip(["path", "chunks", "seconds", "chunks_per_s", "x_plain"], r)) for r in speed],
            "quality": [dict(zip(["backend", "mode", "chunks", "recall@10", "ndcg@10", "mrr"], r)) for r in quality],
        })
        print(f"wrote {path}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
