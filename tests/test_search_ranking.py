"""The page that answers comes first: hybrid search scores documents as well as passages.

A real index (real embedder, FAISS, BM25) over a short FAQ answer among long reference pages that
repeat the question's words in every section, the trap that passage-level fusion falls into.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from index import DocumentIndex
from index import doc_ranking
from index import search as searching

FIXTURES = Path(__file__).parent / "fixtures" / "index"
QUESTION = "How do I rotate the signing keys?"

FAQ = """How do I rotate the signing keys?

Run `orbit keys rotate` on the primary node. The previous key keeps verifying tokens for
24 hours, so every client has a day to pick up the new one before the old key is retired.
"""


def keystore_reference(sections: int = 30) -> str:
    """A long reference page: every section mentions rotating signing keys, none says how to."""
    parts = ["# Key store reference", "", "Every setting of the key store, one section per slot.", ""]
    for n in range(1, sections + 1):
        parts += [f"## Slot {n}", "",
                  f"Slot {n} holds signing keys. The signing keys of slot {n} rotate with the key store: "
                  f"rotating signing keys in slot {n} follows the rotation schedule of the store, and "
                  f"rotated signing keys of slot {n} are kept as signing keys of the archive. "
                  f"Slot {n} has capacity {n * 7} keys and audit code KS-{n:03d}.", ""]
    return "\n".join(parts)


def cli_reference(sections: int = 12) -> str:
    parts = ["# Command reference", ""]
    for n in range(1, sections + 1):
        parts += [f"## orbit command {n}", "",
                  f"Command {n} lists keys, rotates logs and signs release {n}. Keys and signatures "
                  f"of release {n} are checked when the command rotates its log files.", ""]
    return "\n".join(parts)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ranking") / "docs"
    (root / "faq").mkdir(parents=True)
    (root / "reference").mkdir()
    (root / "faq" / "rotate-signing-keys.txt").write_text(FAQ)
    (root / "reference" / "keystore.md").write_text(keystore_reference())
    (root / "reference" / "commands.md").write_text(cli_reference())
    for name in ("guide.md", "api.rst", "notes.txt", "faq.html"):  # ordinary pages about other things
        shutil.copy(FIXTURES / "corpus" / name, root / "reference" / name)
    return root.resolve()


@pytest.fixture(scope="module")
def idx(tmp_path_factory, corpus) -> DocumentIndex:
    index = DocumentIndex.open(tmp_path_factory.mktemp("ranking_index"))
    report = index.ingest([corpus], progress=False)
    assert not report.failed, report.failed
    keystore = next(d for d in index.documents() if d.path.endswith("keystore.md"))
    assert keystore.n_chunks >= 20  # long: many passages that mention the question's words
    return index


def _passage_level_rrf(idx: DocumentIndex, query: str, k: int) -> list[str]:
    """The hybrid ranking before documents were scored: RRF of passage ranks only."""
    state = idx._current()
    qvec = idx.embed([query])[0]
    rows = searching.rrf([searching.dense_candidates(state, qvec, 50, None), state.keyword.search(query, 50, None)])
    return [state.chunks[r]["path"] for r, _ in rows[:k]]


def test_short_page_that_answers_beats_long_page_that_repeats_the_words(idx, corpus):
    faq = str(corpus / "faq" / "rotate-signing-keys.txt")
    keyword = idx.search(QUESTION, k=3, mode="keyword")
    assert all(h.path.endswith("keystore.md") for h in keyword)  # the trap: BM25 loves the repetitions
    assert faq not in _passage_level_rrf(idx, QUESTION, 5)  # before: the long page filled the whole top 5
    hits = idx.search(QUESTION, k=5)
    assert hits[0].path == faq and "orbit keys rotate" in hits[0].text
    assert [h.rank for h in hits] == [1, 2, 3, 4, 5]
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_a_files_repeated_passages_are_demoted(idx):
    hits = idx.search(QUESTION, k=10)
    paths = [Path(h.path).name for h in hits]
    assert paths[0] == "rotate-signing-keys.txt" and paths[1:4] == ["keystore.md"] * 3  # demoted, not dropped
    assert "commands.md" in paths  # a third file reaches the top 10 past the long page's later passages
    scores = [h.score for h in hits if h.path.endswith("keystore.md")]
    assert all(a - b >= 0.02 for a, b in zip(scores, scores[1:]))  # each repeat pays the penalty
    state = idx._current()
    qvec = idx.embed([QUESTION])[0]
    plain = doc_ranking.fuse(state, QUESTION, searching.dense_candidates(state, qvec, 100, None),
                             state.keyword.search(QUESTION, 100, None), doc_ranking.Fusion(repeat_penalty=0.0))
    assert len({state.chunks[r]["path"] for r, _ in plain[:10]}) == 2  # without it: the long page fills the rest


def test_a_long_page_still_answers_what_only_it_says(idx):
    hit = idx.search("Which slot has audit code KS-017?", k=3)[0]
    assert hit.path.endswith("keystore.md") and "KS-017" in hit.text


def test_questions_about_other_pages_are_unchanged(idx):
    assert "port 7420" in idx.search("Which port does the Orbit service listen on?", k=1)[0].text
    assert "twelve hours" in idx.search("How long are API tokens valid?", k=1)[0].text


def test_filters_still_apply_to_hybrid(idx, corpus):
    hits = idx.search(QUESTION, k=5, path_prefix=str(corpus / "reference"))
    assert hits and all("/reference/" in h.path for h in hits)
    hits = idx.search(QUESTION, k=5, file_types=["text"])
    assert hits and all(Path(h.path).suffix == ".txt" for h in hits)
