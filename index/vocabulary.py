"""Does the workspace mention a term at all? The question behind "the documents do not contain this".

A question may name a thing in its own words ("non-sequential page fetch") or name something the
documents never mention (`max_parallel_foo`, `--auto-stage-all`). Telling the two apart by whether
the retrieved windows hold the question's words fails both ways (issue 20: paraphrases declined,
invented options answered with another option's default); asking the whole readable workspace does
not. Counting is exact and cheap: the BM25 posting lists give the chunks that hold every token of
the term, and the term's own spelling is then looked for in those chunks' text (so `--auto-stage-all`
is not "mentioned" by a chunk holding "auto", "stage" and "all" apart).
"""
from __future__ import annotations

import re
from typing import Callable

import numpy as np

from foundation.text import search_tokens
from index.keyword import KeywordIndex

_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"[a-z]+")
_JOINERS = re.compile(r"[\s_-]+")


def posting_rows(keyword: KeywordIndex, token: str) -> np.ndarray:
    """The rows (chunks) whose text holds `token` (a `search_tokens` token); empty when none does."""
    r = keyword.retriever
    if r is None:
        return np.zeros(0, dtype=np.int64)
    tid = r.vocab_dict.get(token)
    if tid is None:
        return np.zeros(0, dtype=np.int64)
    indptr = r.scores["indptr"]
    return np.asarray(r.scores["indices"][indptr[tid]:indptr[tid + 1]], dtype=np.int64)


def mention_rows(keyword: KeywordIndex, text_of: Callable[[int], str], term: str, readable: np.ndarray | None = None,
                 limit: int = 0) -> np.ndarray:
    """The readable rows that mention `term` as written (case and spacing aside).

    `text_of(i)` is row i's text; `readable` (bool per row, None: all) is what the asker may read, so a
    term found only in a collection they cannot read is "not mentioned". `limit` > 0 stops after that
    many rows (callers usually need to know "none, one, or several").
    """
    tokens = list(dict.fromkeys(search_tokens(term)))
    if not tokens:
        return np.zeros(0, dtype=np.int64)
    rows: np.ndarray | None = None
    for found in sorted((posting_rows(keyword, t) for t in tokens), key=len):  # rarest first
        rows = found if rows is None else np.intersect1d(rows, found, assume_unique=True)
        if not len(rows):
            return rows
    assert rows is not None
    if readable is not None:
        rows = rows[readable[rows]]
    if is_plain_word(term):
        return rows[:limit] if limit else rows
    out = []
    for row in rows:
        if spelled_in(term, text_of(int(row))):
            out.append(int(row))
            if limit and len(out) >= limit:
                break
    return np.asarray(out, dtype=np.int64)


def is_plain_word(term: str) -> bool:
    """A word of letters alone: any form of it counts as a mention ("rotating" for "rotate")."""
    return bool(_WORD.fullmatch(term.strip().lower()))


def mentioned_in(term: str, text: str) -> bool:
    """`text` mentions `term` the way `mention_rows` counts it (for one text, without an index)."""
    if is_plain_word(term):
        return set(search_tokens(term)) <= set(search_tokens(text))
    return spelled_in(term, text)


def spelled_in(term: str, text: str) -> bool:
    """`term` occurs in `text` as written, case and runs of white space aside; a name of several
    words also where hyphens or underscores join them ("expire unreachable" in "--expire-unreachable")."""
    joined = _JOINERS if " " in term.strip() else _SPACE
    return joined.sub(" ", term.strip()).lower() in joined.sub(" ", text).lower()
