"""Retrieval evaluation: recall@k, MRR and nDCG@10 of dense, keyword and hybrid search side by side.

The Q/A file is JSON Lines, one question per line:

    {"question": "How long are API tokens valid?", "path": "api.rst", "passage": "twelve hours"}

A hit is relevant when its path equals `path` or ends with "/" + `path` (`path` may also be a list
of acceptable paths, for questions that several documents answer), and, when `passage` is given,
its text contains that passage (case and whitespace ignored). Each question has one target,
so recall@k is the share of questions with a relevant hit in the top k, MRR the mean of 1/rank of
the first relevant hit (0 if none in the top 10 or max k), and nDCG@10 = 1/log2(1 + rank)
(the ideal DCG of a single relevant item is 1).
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from foundation.jsonl import read_jsonl

if TYPE_CHECKING:
    from index.document_index import DocumentIndex
    from index.types import Source

MODES = ("dense", "keyword", "hybrid")


def read_qa(qa_file: Path) -> list[dict[str, str]]:
    """Parse and validate the Q/A file; errors name the line."""
    qa_file = Path(qa_file)
    if not qa_file.exists():
        raise FileNotFoundError(f"Q/A file {qa_file} does not exist")
    items = []
    for n, item in read_jsonl(qa_file, objects=False):
        paths = item.get("path") if isinstance(item, dict) else None
        paths = [paths] if isinstance(paths, str) else (paths if isinstance(paths, list) else None)
        if not isinstance(item, dict) or not str(item.get("question", "")).strip() or not paths \
                or not all(isinstance(p, str) and p.strip() for p in paths):
            raise ValueError(f'{qa_file}:{n}: each line needs "question" and "path" (optionally "passage")')
        items.append(item)
    if not items:
        raise ValueError(f"{qa_file} has no questions")
    return items


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _path_matches(hit_path: str, path: str) -> bool:
    want = path.strip().lstrip("./") if not path.startswith("/") else path
    return hit_path == path or hit_path.endswith("/" + want) or hit_path == want


def is_relevant(hit: "Source", path: str | list[str], passage: str | None) -> bool:
    paths = [path] if isinstance(path, str) else path
    if not any(_path_matches(hit.path, p) for p in paths):
        return False
    return not passage or _norm(passage) in _norm(hit.text)


def first_relevant_rank(hits: Sequence["Source"], path: str | list[str], passage: str | None) -> int | None:
    for rank, hit in enumerate(hits, start=1):
        if is_relevant(hit, path, passage):
            return rank
    return None


def evaluate(index: "DocumentIndex", qa_file: Path, ks: Sequence[int] = (1, 5, 10),
             modes: Sequence[str] = MODES) -> dict[str, Any]:
    """Run every question in every mode; returns metrics per mode, misses and timings."""
    items = read_qa(qa_file)
    ks = sorted({int(k) for k in ks})
    depth = max(10, ks[-1])
    result: dict[str, Any] = {"qa_file": str(qa_file), "n_questions": len(items), "ks": ks,
                              "modes": {}, "misses": {}, "per_question": []}
    ranks: dict[str, list[int | None]] = {m: [] for m in modes}
    for mode in modes:
        clear = getattr(index, "clear_query_cache", None)
        if clear is not None:
            clear()  # each mode pays for its own query embeddings in ms_per_query
        started = time.perf_counter()
        for item in items:
            hits = index.search(item["question"], k=depth, mode=mode)
            ranks[mode].append(first_relevant_rank(hits, item["path"], item.get("passage")))
        elapsed = time.perf_counter() - started
        r = ranks[mode]
        metrics = {f"recall@{k}": sum(1 for x in r if x is not None and x <= k) / len(r) for k in ks}
        metrics["mrr"] = sum(1.0 / x for x in r if x is not None) / len(r)
        metrics["ndcg@10"] = sum(1.0 / math.log2(1 + x) for x in r if x is not None and x <= 10) / len(r)
        metrics["ms_per_query"] = 1000 * elapsed / len(r)
        result["modes"][mode] = metrics
        result["misses"][mode] = [it["question"] for it, x in zip(items, r) if x is None]
    for i, item in enumerate(items):
        result["per_question"].append({"question": item["question"], "path": item["path"],
                                       **{f"rank_{m}": ranks[m][i] for m in modes}})
    return result


def format_table(result: dict[str, Any]) -> str:
    """A Markdown table: one row per metric, one column per mode."""
    modes = list(result["modes"])
    metrics = list(next(iter(result["modes"].values())))
    lines = [f"Retrieval on {result['n_questions']} questions ({result.get('qa_file', '')})", "",
             "| metric | " + " | ".join(modes) + " |", "|---" * (len(modes) + 1) + "|"]
    for metric in metrics:
        cells = []
        for m in modes:
            value = result["modes"][m][metric]
            cells.append(f"{value:.1f}" if metric == "ms_per_query" else f"{value:.3f}")
        lines.append(f"| {metric} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
