"""Held-out ranking quality of a query encoder: MRR, nDCG@10 and top-1 of each query's positive.

Two views, both over the passage vectors the index holds (the positive's own vector is replaced
by that of its text with the giveaway hidden, as in training):
  * lists: the query's candidate list (its positive and hard negatives: same page, BM25 neighbours);
  * corpus: every chunk of the workspace, as dense search would see them.
Ties count against the positive, so a constant scorer scores its worst.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

from finetune.ranker_data import RankQuery

EncodeFn = Callable[[Sequence[str]], np.ndarray]  # queries -> (n, d) unit vectors


def positive_rank(scores: np.ndarray, positive: int) -> int:
    """1-based rank of `scores[positive]`, ties counted as ahead of it."""
    return int(np.sum(scores >= scores[positive]))  # counts the positive itself


def summarise(ranks: Sequence[int]) -> dict[str, float]:
    n = max(1, len(ranks))
    return {"mrr": sum(1.0 / r for r in ranks) / n,
            "ndcg@10": sum(1.0 / math.log2(1 + r) for r in ranks if r <= 10) / n,
            "top1": sum(r == 1 for r in ranks) / n,
            "queries": len(ranks)}


def evaluate_encoder(encode: EncodeFn, queries: list[RankQuery], vectors: np.ndarray,
                     positives: np.ndarray, *, batch: int = 64) -> dict[str, dict[str, float]]:
    """{"lists": metrics, "corpus": metrics, "lists_mrr_by_kind": {kind: MRR}}; `positives[i]` is query i's
    positive vector as trained."""
    qvecs = np.concatenate([encode([q.query for q in queries[i:i + batch]]) for i in range(0, len(queries), batch)]) \
        if queries else np.zeros((0, vectors.shape[1]), dtype=np.float32)
    list_ranks, corpus_ranks = [], []
    for q, qv, pv in zip(queries, qvecs, positives):
        cands = np.vstack([pv[None, :], vectors[list(q.negatives)]])
        list_ranks.append(positive_rank(cands @ qv, 0))
        sims = vectors @ qv
        sims[q.positive] = float(pv @ qv)
        corpus_ranks.append(positive_rank(sims, q.positive))
    kinds = sorted({q.kind for q in queries})
    by_kind = {k: round(summarise([r for q, r in zip(queries, list_ranks) if q.kind == k])["mrr"], 4) for k in kinds}
    return {"lists": summarise(list_ranks), "corpus": summarise(corpus_ranks), "lists_mrr_by_kind": by_kind}


def top1_agreement(encode_a: EncodeFn, encode_b: EncodeFn, queries: list[RankQuery], vectors: np.ndarray,
                   positives: np.ndarray) -> float:
    """Share of queries whose first candidate is the same under both encoders (int8 vs float32)."""
    if not queries:
        return 1.0
    texts = [q.query for q in queries]
    a, b = encode_a(texts), encode_b(texts)
    same = 0
    for i, q in enumerate(queries):
        cands = np.vstack([positives[i][None, :], vectors[list(q.negatives)]])
        same += int(np.argmax(cands @ a[i]) == np.argmax(cands @ b[i]))
    return same / len(queries)
