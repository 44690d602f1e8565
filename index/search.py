"""Ranking: dense (FAISS), keyword (BM25), their document-aware fusion and optional reranking.

Hybrid search fuses the two lists' scaled scores and scores documents as well as passages
(`index.doc_ranking`), so a short page that answers beats a long page that merely mentions the
question's words many times. `rrf` (Cormack et al., 2009: 1/(60 + rank) from each list) was the
fusion before; benchmarks compare against it. A cross-encoder, when configured, re-scores the fused top.
"""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from foundation.text import search_tokens
from index import doc_ranking
from index.store import State
from index.vectors import VectorIndex
from index.types import Source

RRF_K = 60
HYBRID_DEPTH = 100  # passages each retriever hands to fusion; 50 measured 0.002 lower nDCG@10 on the dev sets
SNIPPET_CHARS = 300
EXACT_SUBSET_LIMIT = 50_000  # filtered dense search scans the allowed rows exactly up to this many
SUBSET_CACHE_BYTES = 256 * 2**20  # vectors of recent readable subsets kept for that scan (50k x 384 floats: 77 MB)

CODE_TYPES = {"python", "javascript", "typescript", "go", "java", "kotlin", "scala", "csharp", "rust", "swift",
              "php", "c", "cpp", "shell", "ruby", "sql"}


def filter_mask(state: State, path_prefix: str | None, file_types: Sequence[str] | None) -> np.ndarray | None:
    """Boolean mask over chunks allowed by the filters, or None when there is no filter."""
    if not path_prefix and not file_types:
        return None
    allowed_docs = np.ones(len(state.doc_paths), dtype=bool)
    if path_prefix:
        prefixes = _prefixes(path_prefix)
        allowed_docs &= np.array([any(_matches_prefix(p, x) for x in prefixes) for p in state.doc_paths], dtype=bool)
    if file_types:
        wanted = {t.lower().lstrip(".") for t in file_types}
        allowed_docs &= np.array([_type_matches(p, state.documents[p].file_type, wanted) for p in state.doc_paths],
                                 dtype=bool)
    return allowed_docs[state.doc_of_chunk] if len(state.doc_of_chunk) else np.zeros(0, dtype=bool)


def _prefixes(prefix: str) -> list[str]:
    raw = os.path.expanduser(prefix)
    if os.path.isabs(raw):
        return list({raw, str(Path(raw).resolve())})
    return [str(Path(raw).resolve()), "/" + raw.lstrip("./")]


def _matches_prefix(path: str, prefix: str) -> bool:
    if prefix.startswith("/") and path.startswith(prefix):
        return True
    return ("/" + prefix.strip("/") + "/") in path or path.endswith("/" + prefix.strip("/"))


def _type_matches(path: str, file_type: str, wanted: set[str]) -> bool:
    ext = Path(path).suffix.lower().lstrip(".")
    return file_type in wanted or ext in wanted or ("code" in wanted and file_type in CODE_TYPES)


def dense_candidates(state: State, qvec: np.ndarray, n: int, mask: np.ndarray | None) -> list[tuple[int, float]]:
    """The n nearest rows (cosine) among the `mask` rows.

    Under a mask of at most EXACT_SUBSET_LIMIT rows an approximate index is replaced by an exact scan of
    those rows (their vectors cached per mask): IVF lists and the HNSW graph are built from every row,
    so otherwise rows a caller may not read would decide which of their rows are found."""
    if state.vector_index is None or not len(state.chunks):
        return []
    narrow = mask is not None and int(np.count_nonzero(mask)) <= EXACT_SUBSET_LIMIT
    if narrow and state.vector_index.kind != "flat":
        rows, exact = _subset(state, mask)
        scores, ids = exact.search(qvec, min(n, len(rows)))
        return [(int(rows[i]), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]
    scores, ids = state.vector_index.search(qvec, n, mask=mask)
    return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]


def _subset(state: State, mask: np.ndarray) -> tuple[np.ndarray, VectorIndex]:
    """The mask's rows and an exact (flat) index of their vectors, kept per mask on the state (a server
    sees a handful of readable sets) within SUBSET_CACHE_BYTES, least recently used dropped first."""
    cache: dict = state.derived.setdefault("subsets", {})
    key = hashlib.blake2b(np.packbits(mask).tobytes(), digest_size=16).digest()
    hit = cache.pop(key, None)
    if hit is None:
        rows = np.flatnonzero(mask)
        dim = state.vectors.shape[1]
        hit = (rows, VectorIndex.build(np.ascontiguousarray(state.vectors[rows], dtype=np.float32), dim, kind="flat"))
    cache[key] = hit  # (re)inserted last: the most recently used
    while sum(len(r) for r, _ in cache.values()) * state.vectors.shape[1] * 4 > SUBSET_CACHE_BYTES and len(cache) > 1:
        cache.pop(next(iter(cache)))
    return hit


def _top(rows: np.ndarray, sims: np.ndarray, n: int) -> list[tuple[int, float]]:
    if len(rows) > n:
        part = np.argpartition(-sims, n - 1)[:n]
    else:
        part = np.arange(len(rows))
    order = part[np.argsort(-sims[part], kind="stable")]
    return [(int(rows[i]), float(sims[i])) for i in order]


def rrf(lists: list[list[tuple[int, float]]], k: int = RRF_K) -> list[tuple[int, float]]:
    """Passage-level reciprocal rank fusion (hybrid search before `doc_ranking`)."""
    fused: dict[int, float] = {}
    for ranked in lists:
        for rank, (row, _) in enumerate(ranked, start=1):
            fused[row] = fused.get(row, 0.0) + 1.0 / (k + rank)
    return sorted(fused.items(), key=lambda x: (-x[1], x[0]))


def rank(state: State, query: str, qvec: np.ndarray, k: int, mode: str, mask: np.ndarray | None,
         reranker: Callable[[str, list[str]], list[float]] | None = None,
         corpus: np.ndarray | None = None) -> list[tuple[int, float]]:
    """(row, score) best first, at most k. "dense" and "keyword" rank passages by one retriever;
    "hybrid" fuses both by `doc_ranking.fuse` (documents as well as passages, a file's passages spread out).

    `mask` is every row the search may return (filters and the caller's collections together);
    `corpus` the rows the caller may read, over which BM25 counts its statistics (None: all)."""
    depth = max(HYBRID_DEPTH, 4 * k) if mode == "hybrid" or reranker else k
    if mode == "dense":
        ranked = dense_candidates(state, qvec, depth, mask)
    elif mode == "keyword":
        ranked = state.keyword.search(query, depth, mask, corpus)
    else:
        dense = dense_candidates(state, qvec, depth, mask)
        named = doc_ranking.named_documents(state, query)
        if named and mask is not None:  # a name the caller may not read is no name at all
            named = {doc for doc in named if mask[state.doc_of_chunk == doc].any()}
        if named:  # a page the question names joins the candidates with its best passages
            have = {row for row, _ in dense}
            dense += [(r, s) for r, s in doc_ranking.named_candidates(state, qvec, named, mask) if r not in have]
            dense.sort(key=lambda x: -x[1])
        ranked = doc_ranking.fuse(state, query, dense, state.keyword.search(query, depth, mask, corpus), named=named)
    if reranker is not None and ranked:
        top = ranked[:max(20, 2 * k)]
        texts = [_passage_for_rerank(state, row) for row, _ in top]
        scores = reranker(query, texts)
        ranked = sorted(zip([r for r, _ in top], scores), key=lambda x: -x[1])
    return ranked[:k]


def _passage_for_rerank(state: State, row: int) -> str:
    c = state.chunks[row]
    heading = c.get("heading") or ""
    return f"{heading}\n{c['text']}" if heading else c["text"]


def locator(chunk: dict, file_type: str) -> str:
    lines = ""
    if chunk.get("start_line"):
        a, b = chunk["start_line"], chunk.get("end_line") or chunk["start_line"]
        lines = f"line {a}" if a == b else f"lines {a}-{b}"
    heading = chunk.get("heading") or ""
    part = f"part {chunk['part']} of {chunk['parts']}" if chunk.get("parts") else ""
    if chunk.get("page"):
        return ", ".join(filter(None, [heading, f"page {chunk['page']}", part]))
    if file_type in CODE_TYPES:
        return f"{heading}, {lines}" if heading and lines else (heading or lines)
    return ", ".join(filter(None, [heading, part])) if heading else (lines or part)


def make_snippet(text: str, query: str, limit: int = SNIPPET_CHARS) -> str:
    """A short excerpt, starting at the sentence that shares most words with the query."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    start = 0
    words = set(search_tokens(query)) if query else set()
    if words:
        best = 0
        for m in re.finditer(r"[^.!?。！？；]+[.!?。！？；]?", flat):
            overlap = len(words & set(search_tokens(m.group(0))))
            if overlap > best:
                best, start = overlap, m.start()
    if len(flat) - start < limit:
        start = max(0, len(flat) - limit)
        while start > 0 and not flat[start - 1].isspace():
            start -= 1  # begin on a word
    piece = flat[start:start + limit]
    if start + limit < len(flat):
        cut = piece.rfind(" ")
        piece = (piece[:cut] if cut > limit // 2 else piece).rstrip() + "…"
    return ("…" if start > 0 else "") + piece.lstrip()


def to_source(state: State, row: int, score: float, qvec: np.ndarray | None, query: str, rank: int) -> Source:
    c = state.chunks[row]
    doc = state.documents[c["path"]]
    dense = float(np.asarray(state.vectors[row]) @ qvec) if qvec is not None else None
    return Source(
        path=c["path"], title=doc.title, locator=locator(c, doc.file_type), snippet=make_snippet(c["text"], query),
        score=float(score), text=c["text"], chunk_id=c["id"], heading=c.get("heading") or "", page=c.get("page"),
        start_line=c.get("start_line"), end_line=c.get("end_line"), rank=rank, dense_score=dense,
        collection=doc.collection,
    )
