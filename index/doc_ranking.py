"""Document-aware hybrid fusion: rank the pages as well as the passages, so the page that answers comes first.

Passage-level reciprocal rank fusion loses twice on collections where short pages that answer sit
among long pages: ranks throw away how far ahead the best passage is (a clear dense winner counts
the same as a near tie), and a long page fills the top with many passages that mention the
question's words. Here, for the passages that dense and BM25 search returned:

  1. each list's scores are min-max scaled to [0, 1] over the list (cosines and BM25 scores live on
     unrelated scales; the scale keeps the gaps that ranks drop), and a passage's score is the
     convex combination  p = w * dense + (1 - w) * bm25  (0 where a list missed it; Bruch et al.,
     2023, "An analysis of fusion functions for hybrid retrieval"); w is `dense_weight`, or
     `dense_weight_cjk` for a question in Chinese, Japanese or Korean, which the default English
     embedder reads poorly;
  2. a document's score is its best passage's p plus `hit_bonus` x each of its next `extra_hits`:
     the best passage decides (MaxP, Dai & Callan 2019) and a few more hits add a little, so a
     page is not rewarded for its length, as a sum over passages would (a further penalty of
     0.01-0.05 x log(passages in the page) measured within 0.002 of none, so there is none);
  3. a passage ranks by  document_weight * its document + (1 - document_weight) * p, less
     `repeat_penalty` for each better passage of the same file already above it, so the top k
     spans several files while a file's 2nd and 3rd passages stay reachable.

Titles and heading paths are not matched word by word: every passage is embedded and indexed
under its "Title > Heading" path (`index.ingest.embed_text`), and an extra document score for the
share of the question's words (IDF-weighted) in the title and file name measured no gain: -0.005
and -0.009 nDCG@10 on the short pages at weights 0.1 and 0.2, no change on the others. What does
count is a question that spells out a page's whole name of two words or more ("Which option of git
tag makes an annotated tag?" names git-tag(1)): both words are common across a manual, so neither
list may rank that page, yet the user has said which page it is. In a Chinese question a word in
Latin letters is a name on its own ("sort 按数值大小排序要加哪个选项？" names sort(1)): one-word names
count there, and only there (zh, 50 questions, same run: hybrid nDCG@10 0.897 -> 0.949, recall@1
0.82 -> 0.94; answers: citations 0.79 -> 0.94, strict accuracy 0.54 either way, three lucky answers
from another page's option became three right ones from the named page). Such a *named document*
joins the candidates with its best passages, which get `named_bonus`. Measured (nDCG@10, bonus 0
/ 0.15 / 0.3 / 0.5): git+FAQ 0.860 / 0.874 / 0.878 / 0.883, the same with the passage required
0.656 / 0.663 / 0.668 / 0.670, Python's reference topics 0.875 / 0.879 / 0.885 / 0.885; the short
pages and the Chinese pages (whose one-word names did not count then) unchanged at 0.919 and
0.896. 0.3 takes most of the gain while a named page's passages still leave room for other files.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Container

import numpy as np

from foundation.text import has_cjk
from index.store import State


@dataclass(frozen=True)
class Fusion:
    """The few weights of hybrid fusion, chosen by a grid on the dev sets. nDCG@10 on the short pages
    among long pages / git+Debian FAQ pages / the same with the answer passage required, each query
    embedded alone as search does: these give 0.919 / 0.856 / 0.659, passage-level RRF 0.834 /
    0.835 / 0.653. Dense weight 0.5 / 0.85: 0.889 / 0.843 / 0.657 and 0.920 / 0.842 / 0.639.
    Hit bonus 0 / 0.3: 0.922 / 0.852 / 0.649 and 0.895 / 0.853 / 0.666. The repeat penalty trades
    pages for passages: 0 / 0.03 / 0.05 / 0.2 / 1.0 (1.0: a file's 2nd passage below every other
    file's 1st) give 0.918 / 0.919 / 0.922 / 0.925 / 0.926 on the short pages, 0.835 / 0.856 /
    0.860 / 0.872 / 0.875 on git+FAQ, but 0.659 / 0.659 / 0.650 / 0.633 / 0.554 with the passage
    required; the passage is what the assistant quotes, so the penalty stays mild.
    benchmarks/bench_retrieval.py measures the defaults against the baselines in one run."""

    dense_weight: float = 0.7  # share of meaning over BM25; lower helps exact terms, hurts paraphrased questions
    # The same for CJK questions. With the English default embedder (dense alone: nDCG@10 0.66 on the
    # Chinese dev set, BM25 alone 0.90) 0.3 / 0.4 / 0.5 / 0.55 / 0.7 gave 0.895 / 0.898 / 0.913 / 0.866 / 0.751:
    # 0.4 stays clear of that cliff. A multilingual embedder would want it nearer dense_weight.
    dense_weight_cjk: float = 0.4
    document_weight: float = 0.3  # share of the document's score in a passage's; higher groups a file's passages
    extra_hits: int = 2  # passages after the best one that add to a document's score
    hit_bonus: float = 0.1  # what each adds, x its own score; higher favours pages with many matching passages
    repeat_penalty: float = 0.03  # per better passage of the same file above; higher spreads the top k over more files
    named_bonus: float = 0.3  # added to the passages of a document whose whole name the question spells out
    named_passages: int = 3  # a named document's best passages (by meaning) that join the candidates


DEFAULT = Fusion()


def scaled(ranked: list[tuple[int, float]]) -> dict[int, float]:
    """row -> score min-max scaled over the list to [0, 1] (1.0 for all when they are equal)."""
    if not ranked:
        return {}
    scores = np.array([s for _, s in ranked], dtype=np.float64)
    lo, hi = scores.min(), scores.max()
    values = (scores - lo) / (hi - lo) if hi > lo else np.ones_like(scores)
    return {row: float(v) for (row, _), v in zip(ranked, values)}


_WORD = re.compile(r"[a-z0-9]+")
_SECTION = re.compile(r"\s*\(\w{1,3}\)\s*$")  # "git-tag(1)": a manual page's section
MAX_NAME_WORDS = 6


_FILE_SECTION = re.compile(r"^([\w+-][\w.+-]*)\.\d[a-z]{0,3}$")  # "sort.1", "shutdown.8": a page saved by its file name


def bare_title(title: str) -> str:
    """A title without its manual section: "git-tag(1)" -> "git-tag", "sort.1" -> "sort"."""
    title = _SECTION.sub("", title or "").strip()
    m = _FILE_SECTION.match(title)
    return m.group(1) if m else title


def name_words(title: str, path: str) -> set[tuple[str, ...]]:
    """A document's names of one to six words (its title without a manual section, its file name
    without its extension and section), as lower-case word tuples."""
    names = set()
    for name in (bare_title(title), bare_title(Path(path).stem)):
        words = tuple(_WORD.findall(name.lower()))
        if 1 <= len(words) <= MAX_NAME_WORDS:
            names.add(words)
    return names


def spelled_out(query: str, names: Container[tuple[str, ...]]) -> set[tuple[str, ...]]:
    """The names among `names` (word tuples, as `name_words` makes them) that the query spells out.

    A one-word name counts only in a question written in Chinese (Japanese, Korean): there a word in
    Latin letters is a name ("sort 按数值大小排序要加哪个选项？" names sort(1)); in English "sort",
    "tag" or "log" are words the question uses for what it asks."""
    words = _WORD.findall(query.lower())
    shortest = 1 if has_cjk(query) else 2
    return {key for n in range(shortest, MAX_NAME_WORDS + 1) for start in range(len(words) - n + 1)
            if (key := tuple(words[start:start + n])) in names}


def document_names(state: State) -> dict[tuple[str, ...], set[int]]:
    """Every document's `name_words`, mapped to the documents; computed once per loaded index state."""
    names = state.derived.get("document_names")
    if names is None:
        names = {}
        for i, path in enumerate(state.doc_paths):
            for words in name_words(state.documents[path].title, path):
                names.setdefault(words, set()).add(i)
        state.derived["document_names"] = names
    return names


def named_documents(state: State, query: str) -> set[int]:
    """The documents whose whole name the question spells out (two words or more; one in a Chinese question)."""
    names = document_names(state)
    return {doc for name in spelled_out(query, names) for doc in names[name]} if names else set()


def named_candidates(state: State, qvec: np.ndarray, named: set[int], mask: np.ndarray | None,
                     fusion: Fusion = DEFAULT) -> list[tuple[int, float]]:
    """A named document's best passages by meaning (row, cosine), to join the dense list."""
    out: list[tuple[int, float]] = []
    for doc in named:
        rows = np.flatnonzero(state.doc_of_chunk == doc)
        if mask is not None:
            rows = rows[mask[rows]]
        if len(rows):
            sims = np.asarray(state.vectors[rows]) @ qvec.reshape(-1)
            best = np.argsort(-sims, kind="stable")[:fusion.named_passages]
            out += [(int(rows[i]), float(sims[i])) for i in best]
    return out


def fuse(state: State, query: str, dense: list[tuple[int, float]], keyword: list[tuple[int, float]],
         fusion: Fusion = DEFAULT, named: set[int] = frozenset()) -> list[tuple[int, float]]:
    """(row, score) best first, over the passages either list holds; scores lie in about [0, 1].
    Documents in `named` (see `named_documents`) get `named_bonus`."""
    w = fusion.dense_weight_cjk if has_cjk(query) else fusion.dense_weight
    d, k = scaled(dense), scaled(keyword)
    passage = {row: w * d.get(row, 0.0) + (1 - w) * k.get(row, 0.0) for row in d.keys() | k.keys()}
    by_doc: dict[int, list[int]] = {}
    for row in sorted(passage, key=lambda r: (-passage[r], r)):
        by_doc.setdefault(int(state.doc_of_chunk[row]), []).append(row)
    scored = []
    for rows in by_doc.values():
        best = [passage[r] for r in rows[:1 + fusion.extra_hits]]
        document = best[0] + fusion.hit_bonus * sum(best[1:])
        bonus = fusion.named_bonus if named and int(state.doc_of_chunk[rows[0]]) in named else 0.0
        for n, row in enumerate(rows):
            score = fusion.document_weight * document + (1 - fusion.document_weight) * passage[row]
            scored.append((row, score + bonus - fusion.repeat_penalty * n))
    return sorted(scored, key=lambda x: (-x[1], x[0]))
