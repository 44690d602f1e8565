"""Which collection each document belongs to, and the row mask of the collections a caller may read.

The index knows collections only as a label per document (`DocumentInfo.collection`); who may read
which collection is the assistant's business (`assistant.collections`). Search takes the set of
readable collection names and turns it into a boolean mask over chunks, applied BEFORE ranking
(FAISS ID selector, BM25 scores and statistics over the readable rows only), so a document the
caller may not read is never a candidate and changes neither the answer nor the ranking of what is
shown. An index written before collections existed has no labels: every document reads as `shared`.
"""
from __future__ import annotations

import re
from typing import Collection

import numpy as np

from index.store import State

SHARED = "shared"  # every user may read it; documents ingested before collections existed live here
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


def check_name(name: str) -> str:
    """A collection name as stored; ValueError with the rule when it breaks it."""
    name = (name or "").strip()
    if not _NAME.match(name):
        raise ValueError(f"collection name {name!r} is not allowed: use 1-64 letters, digits, '_', '.', '@' or '-', "
                         "starting with a letter or digit")
    return name


def document_collections(state: State) -> np.ndarray:
    """Each document's collection, in `state.doc_paths` order (computed once per loaded state)."""
    labels = state.derived.get("doc_collections")
    if labels is None:
        labels = state.derived["doc_collections"] = np.array(
            [state.documents[p].collection or SHARED for p in state.doc_paths], dtype=object)
    return labels


def readable_documents(state: State, collections: Collection[str] | None) -> np.ndarray | None:
    """Boolean per document (doc_paths order) readable through `collections`; None = no restriction."""
    if collections is None:
        return None
    labels = document_collections(state)
    wanted = set(collections)
    return np.fromiter((label in wanted for label in labels), dtype=bool, count=len(labels))


def readable_mask(state: State, collections: Collection[str] | None) -> np.ndarray | None:
    """Boolean per chunk readable through `collections`; None when nothing is hidden (or no restriction).

    Cached per set of collections on the state: a server asks with a handful of distinct sets."""
    if collections is None:
        return None
    key = ("readable", frozenset(collections))
    if key not in state.derived:
        docs = readable_documents(state, collections)
        mask = docs[state.doc_of_chunk] if len(state.doc_of_chunk) else np.zeros(0, dtype=bool)
        state.derived[key] = None if mask.all() else mask
    return state.derived[key]


def combine(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
    """Both masks' rows (None = all rows)."""
    if a is None:
        return b
    if b is None:
        return a
    return a & b
