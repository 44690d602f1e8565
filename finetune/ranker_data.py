"""Ranking pairs from the workspace's own text, with no human labels: what the ranker learns from.

Each `RankQuery` is a query, the passage that answers it and hard negatives, built from the
index's chunks (path, heading, text):
  * question: a heading that is itself a question (FAQ style, "How do I build a source package?");
  * heading: any other section heading, as a query for its section ("Rebasing merges"); a heading
    that many pages share ("OPTIONS") is prefixed with its page's first heading so it names one place;
    a definition's term ("-n, --dry-run", which heads its definition and starts it) is not one;
  * cloze: a sentence that states a value, option or name, its key term blanked ("The default is ___
    kilobytes"), as a query for the rest of its chunk (the inverse cloze task, Lee et al. 2019).
The positive is shown without what gives the answer away (the heading's last part, the sentence),
otherwise the ranker would learn to copy strings. Negatives are other sections of the same page and
BM25 neighbours from the whole workspace, never a chunk of the positive's own section.
Queries are split into train and held-out by document (`finetune.split`), so the held-out score is
that of pages the ranker never saw.
"""
from __future__ import annotations

import os
import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from finetune.errors import DataError
from finetune.split import split
from index.ingest import embed_text
from index.sections import defined_term
from index.keyword import KeywordIndex
from index.store import current_generation, load_latest

KINDS = ("question", "heading", "cloze")
_NUMBERING = re.compile(r"^(?:chapter\s+\d+\.?|appendix\s+[a-z]\.?|\d+(?:\.\d+)*\.?|[a-z]\.\d+(?:\.\d+)*\.?)\s+", re.I)
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'`(])|\n\s*\n")
# a key term: an option, a number with or without a unit, an identifier with _ . ( or ::, a quoted or ALLCAPS name
_KEY_TERM = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*(?:=\S+)?|\d[\d,.]*(?:\s?%|\s?[KMG]i?B)?|[A-Za-z_][\w]*(?:[._:]+\w+)+(?:\(\d?\))?"
                       r"|\"[^\"]{2,40}\"|[A-Z]{3,}[A-Z0-9_]*)(?![\w-])")
BLANK = "___"


@dataclass(frozen=True)
class RankQuery:
    """One query with its candidate list: the positive (as shown to the ranker) and negative chunk rows."""

    query: str
    kind: str
    path: str
    positive: int  # row in the chunk list
    positive_text: str  # the positive as the ranker sees it (giveaway removed)
    negatives: tuple[int, ...] = field(default_factory=tuple)


@dataclass
class RankData:
    chunks: list[dict]
    train: list[RankQuery]
    heldout: list[RankQuery]
    counts: dict[str, int]



def passage_text(chunk: dict, heading: str | None = None, text: str | None = None) -> str:
    """A chunk as the index embedded it ("Title > Heading" line, then text), optionally with a part hidden."""
    head = (chunk.get("heading") or "") if heading is None else heading
    return embed_text(chunk.get("title", ""), head, chunk["text"] if text is None else text)


def load_index(index_dir: Path) -> tuple[list[dict], np.ndarray, KeywordIndex]:
    """The committed chunks (each with its document's title), their stored vectors and the BM25 index.

    Read-only, like `index.document_index.committed_chunks`: no embedder loads, nothing is written."""
    generation = current_generation(Path(index_dir))
    if generation is None:
        raise DataError(f"no index in {index_dir}: ingest documents first (`assistant ingest PATH`)")
    state = load_latest(Path(index_dir), generation)
    chunks = [{**c, "title": state.documents[c["path"]].title} for c in state.chunks]
    return chunks, np.asarray(state.vectors, dtype=np.float32), state.keyword


def heading_leaf(heading: str) -> str:
    """The last part of a heading path, without its numbering ("7.14. How do I..." -> "How do I...")."""
    leaf = heading.split(" > ")[-1].strip()
    return _NUMBERING.sub("", leaf).strip()


def heading_queries(chunks: list[dict]) -> list[RankQuery]:
    """One query per section: its heading's last part, for the section's first chunk."""
    first: dict[tuple[str, str], int] = {}
    for row, c in enumerate(chunks):
        if c.get("heading"):
            key = (c["path"], c["heading"])
            if key not in first or c["ordinal"] < chunks[first[key]]["ordinal"]:
                first[key] = row
    pages_with_leaf = Counter()
    for path, heading in {(p, heading_leaf(h).lower()) for p, h in first}:
        pages_with_leaf[heading] += 1
    out = []
    for (path, heading), row in first.items():
        if defined_term(heading, chunks[row]["text"]):
            continue  # a definition's term ("-n, --dry-run") is its passage's first line: no query, a copy
        leaf = heading_leaf(heading)
        words = leaf.split()
        if not (1 <= len(words) <= 30) or len(leaf) < 4:
            continue
        parents = heading.split(" > ")[:-1]
        query = leaf
        if pages_with_leaf[leaf.lower()] > 2:  # "OPTIONS", "Description": say which page
            top = heading_leaf(parents[0]) if parents else ""
            if not top:
                continue
            query = f"{top} {leaf}"
        kind = "question" if leaf.endswith("?") else "heading"
        out.append(RankQuery(query, kind, path, row, passage_text(chunks[row], heading=" > ".join(parents))))
    return out


def cloze_queries(chunks: list[dict], rng: random.Random) -> list[RankQuery]:
    """At most one per chunk: a sentence stating a key term, blanked, as the query for the rest of its chunk."""
    out = []
    for row, c in enumerate(chunks):
        sentences = [s.strip() for s in _SENTENCE.split(c["text"]) if s and 6 <= len(s.split()) <= 40]
        sentences = [s for s in sentences if _KEY_TERM.search(s)]
        if not sentences:
            continue
        sentence = rng.choice(sentences)
        rest = c["text"].replace(sentence, " ", 1)
        if len(rest.split()) < 20:
            continue
        terms = _KEY_TERM.findall(sentence)
        term = rng.choice(terms)
        query = " ".join(sentence.replace(term, BLANK, 1).split())
        out.append(RankQuery(query, "cloze", c["path"], row, passage_text(c, text=rest)))
    return out


def add_negatives(queries: list[RankQuery], chunks: list[dict], keyword: KeywordIndex, rng: random.Random, *,
                  same_page: int = 4, neighbours: int = 6) -> list[RankQuery]:
    """Hard negatives for each query: other sections of its page, then its BM25 neighbours anywhere."""
    by_page: dict[str, list[int]] = defaultdict(list)
    for row, c in enumerate(chunks):
        by_page[c["path"]].append(row)

    def same_section(row: int, pos: int) -> bool:
        a, b = chunks[row], chunks[pos]
        return a["path"] == b["path"] and (a.get("heading") or "") == (b.get("heading") or "")

    out = []
    for q in queries:
        page = [r for r in by_page[q.path] if not same_section(r, q.positive)]
        picked = rng.sample(page, min(same_page, len(page)))
        for row, _ in keyword.search(q.query, neighbours + same_page + 8):
            if len(picked) >= same_page + neighbours:
                break
            if row not in picked and not same_section(row, q.positive):
                picked.append(row)
        if picked:
            out.append(RankQuery(q.query, q.kind, q.path, q.positive, q.positive_text, tuple(picked)))
    return out


def build_rank_data(chunks: list[dict], *, heldout_fraction: float = 0.2, max_train: int = 2000,
                    max_heldout: int = 300, seed: int = 0, keyword: KeywordIndex | None = None) -> RankData:
    """All queries from `chunks`, split by document, capped (a 300-page manual gives more than minutes of training)."""
    rng = random.Random(seed)
    chunks = list(chunks)
    queries = heading_queries(chunks) + cloze_queries(chunks, rng)
    keyword = keyword or KeywordIndex.build([passage_text(c) for c in chunks])
    queries = add_negatives(queries, chunks, keyword, rng)
    pages = sorted({q.path for q in queries})
    if len(pages) >= 5:
        root = os.path.commonpath(pages) if len(pages) > 1 else ""  # the split must not depend on where the files live
        train_pages, held_pages = split(pages, key=lambda p: os.path.relpath(p, root) if root else p,
                                        val_fraction=heldout_fraction)
        held = set(held_pages)
        train = [q for q in queries if q.path not in held]
        heldout = [q for q in queries if q.path in held]
    else:  # one or a few documents: split by section instead (still never the same section on both sides)
        train, heldout = split(queries, key=lambda q: f"{q.path}\0{chunks[q.positive].get('heading')}",
                               val_fraction=heldout_fraction)
    rng.shuffle(train)
    rng.shuffle(heldout)
    train, heldout = _balanced(train, max_train), _balanced(heldout, max_heldout)
    counts = {f"train_{k}": sum(q.kind == k for q in train) for k in KINDS}
    counts.update({f"heldout_{k}": sum(q.kind == k for q in heldout) for k in KINDS})
    counts.update(chunks=len(chunks), pages=len({c["path"] for c in chunks}), train=len(train), heldout=len(heldout),
                  heldout_pages=len({q.path for q in heldout}))
    return RankData(chunks, train, heldout, counts)


def _balanced(queries: list[RankQuery], cap: int) -> list[RankQuery]:
    """At most `cap` queries, at least two thirds headings and questions when there are that many (they read
    like users' questions; clozes are plentiful and fill the rest)."""
    heads = [q for q in queries if q.kind != "cloze"]
    clozes = [q for q in queries if q.kind == "cloze"]
    n_heads = min(len(heads), max(cap - len(clozes), cap * 2 // 3))
    return heads[:n_heads] + clozes[:cap - n_heads]
