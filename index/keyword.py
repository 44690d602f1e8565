"""Keyword search: BM25 (bm25s) over `foundation.text.search_tokens` (English, code identifiers, Chinese)."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from foundation.text import search_tokens

TOKENS_FILE = "tokens.jsonl"


class KeywordIndex:
    """BM25 over chunk texts. Rebuilt on ingest (IDF is global), saved beside the vectors.

    The token lists are saved too (`tokens.jsonl`, one chunk per line), so a re-ingest rebuilds
    BM25 from stored tokens and only tokenises new chunks: tokenising is ~70% of a rebuild.
    """

    def __init__(self, retriever=None, size: int = 0, tokens: list[list[str]] | None = None):
        self.retriever = retriever
        self.size = size
        self.tokens = tokens  # held only between build and save

    @classmethod
    def build(cls, texts: Sequence[str], show_progress: bool = False) -> "KeywordIndex":
        return cls.from_tokens([search_tokens(t) for t in texts], show_progress)

    @classmethod
    def from_tokens(cls, tokens: list[list[str]], show_progress: bool = False) -> "KeywordIndex":
        import bm25s

        # bm25s sets its own logger to DEBUG, so "Building index from tokens" reaches the user's terminal
        logging.getLogger("bm25s").setLevel(logging.WARNING)
        if not tokens:
            return cls(None, 0, [])
        corpus = [t or ["\u2205"] for t in tokens]  # empty docs still need a row
        retriever = bm25s.BM25()
        retriever.index(corpus, show_progress=show_progress)
        return cls(retriever, len(tokens), tokens)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "size.json").write_text(json.dumps({"size": self.size}))
        if self.tokens is not None:
            with (directory / TOKENS_FILE).open("w", encoding="utf-8") as fh:
                fh.writelines(json.dumps(t, ensure_ascii=False) + "\n" for t in self.tokens)
        if self.retriever is not None:
            self.retriever.save(str(directory), show_progress=False)
        self.tokens = None  # on disk now; do not keep hundreds of MB of lists alive

    @staticmethod
    def load_tokens(directory: Path, expected: int) -> list[list[str]] | None:
        """The saved token lists, or None if absent or not matching `expected` chunks."""
        path = directory / TOKENS_FILE
        if not path.exists():
            return None
        with path.open(encoding="utf-8") as fh:
            tokens = [json.loads(line) for line in fh]
        return tokens if len(tokens) == expected else None

    @classmethod
    def load(cls, directory: Path) -> "KeywordIndex":
        import bm25s

        size = json.loads((directory / "size.json").read_text())["size"]
        if size == 0:
            return cls(None, 0)
        return cls(bm25s.BM25.load(str(directory), mmap=False, show_progress=False), size)

    def search(self, query: str, k: int, mask: np.ndarray | None = None,
               corpus: np.ndarray | None = None) -> list[tuple[int, float]]:
        """(row, bm25 score) pairs, best first; rows with a zero mask or zero score are dropped.

        `corpus` (bool per row) is the part of the index the caller may read: IDF is counted over
        it alone, so a passage the caller cannot see changes no score they can (`mask` only filters).
        """
        if self.retriever is None or k <= 0:
            return []
        tokens = [t for t in search_tokens(query) if t in self.retriever.vocab_dict]
        if corpus is not None:
            allowed = corpus if mask is None or mask is corpus else mask & corpus
            rows, scores = self._matches_within(tokens, allowed, corpus)
            return _best(rows, scores, k)
        if not tokens:
            return []
        scores = np.asarray(self.retriever.get_scores(tokens), dtype=np.float32)
        if mask is not None:
            scores = np.where(mask, scores, 0.0)
        # Select among matching chunks only: usually few, and partitioning an array of mostly equal
        # zeros is slow (16 ms at 30k chunks in bm25s' own top-k, 1 ms this way).
        rows = np.flatnonzero(scores > 0)
        return _best(rows, scores[rows], k)

    def _matches_within(self, tokens: list[str], allowed: np.ndarray,
                        corpus: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The `allowed` rows holding a query token and their BM25 scores, with IDF counted over `corpus`.

        bm25s stores, per token, idf x the term-frequency part for every row holding it (Lucene's
        idf = ln(1 + (N - df + 0.5) / (df + 0.5))); each token's postings are rescaled by the ratio of
        the restricted idf to the global one. Only the postings are touched, never an array of every
        row, so a narrow caller pays for what they may read. The average passage length stays the index's.
        """
        r = self.retriever
        data, indices, indptr = r.scores["data"], r.scores["indices"], r.scores["indptr"]
        total, readable = float(r.scores["num_docs"]), float(np.count_nonzero(corpus))
        found_rows, found_scores = [], []
        for tid in (r.get_tokens_ids(tokens) if tokens else []):
            rows = indices[indptr[tid]:indptr[tid + 1]]
            inside = corpus[rows]
            df_in = float(np.count_nonzero(inside))
            if not df_in:
                continue
            keep = inside if allowed is corpus else allowed[rows]
            ratio = _idf(readable, df_in) / _idf(total, float(len(rows)))
            found_rows.append(rows[keep])
            found_scores.append(data[indptr[tid]:indptr[tid + 1]][keep] * ratio)
        if not found_rows:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        rows, where = np.unique(np.concatenate(found_rows), return_inverse=True)
        return rows, np.bincount(where, weights=np.concatenate(found_scores)).astype(np.float32)


def _best(rows: np.ndarray, scores: np.ndarray, k: int) -> list[tuple[int, float]]:
    """The k best (row, score) with a positive score, ties broken by row."""
    keep = scores > 0
    rows, scores = rows[keep], scores[keep]
    if len(rows) > k:
        top = np.argpartition(-scores, k - 1)[:k]
        rows, scores = rows[top], scores[top]
    order = np.lexsort((rows, -scores))
    return [(int(rows[i]), float(scores[i])) for i in order]


def _idf(n: float, df: float) -> float:
    return float(np.log(1.0 + (n - df + 0.5) / (df + 0.5)))
