"""A question that spells out a page's whole name ("git tag") gets that page first.

Both words of such a name are common across a manual (every page says "git", many say "tag"), so
neither the embedder nor BM25 singles the page out; the user has, by naming it. A real index.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from index import DocumentIndex, doc_ranking

QUESTION = "Which option of orbit tag makes a signed tag?"


def tutorial(n: int) -> str:
    """A long page that talks about orbit and tags everywhere, and about signing, but is not orbit-tag."""
    parts = [f"# Orbit tutorial, part {n}", ""]
    for s in range(1, 13):
        parts += [f"## Step {s}", "", f"In step {s} of orbit, you make a tag for release {s}: orbit keeps each tag "
                  f"with its commit, and a signed tag carries a signature that orbit checks. Tags made in step {s} "
                  f"are listed by orbit and shared with the team when you push.", ""]
    return "\n".join(parts)


TAG_PAGE = """# orbit-tag(1)

## NAME

orbit-tag - create, list, delete or verify a tag object

## OPTIONS

-a, --annotate
    Make an unsigned, annotated tag object.

-s, --sign
    Make a cryptographically signed tag, using the default e-mail address's key.

-d, --delete
    Delete existing tags with the given names.
"""


@pytest.fixture(scope="module")
def idx(tmp_path_factory) -> DocumentIndex:
    root = tmp_path_factory.mktemp("named")
    docs = root / "docs"
    docs.mkdir()
    (docs / "orbit-tag.md").write_text(TAG_PAGE)
    for n in range(1, 5):
        (docs / f"tutorial-{n}.md").write_text(tutorial(n))
    index = DocumentIndex.open(root / "index", device="cpu")
    index.ingest([docs], progress=False)
    return index


def _first(idx: DocumentIndex, question: str) -> str:
    idx.clear_query_cache()
    return Path(idx.search(question, k=4)[0].path).name


def test_the_page_a_question_names_comes_first(idx):
    assert doc_ranking.named_documents(idx._current(), QUESTION)  # "orbit tag" names orbit-tag(1)
    assert _first(idx, QUESTION) == "orbit-tag.md"


def test_without_the_name_bonus_the_tutorials_win(idx, monkeypatch):
    """The test above can fail: the same search with the bonus off ranks a tutorial first."""
    off = dataclasses.replace(doc_ranking.DEFAULT, named_bonus=0.0)
    monkeypatch.setattr(doc_ranking.fuse, "__defaults__", (off, frozenset()))
    assert _first(idx, QUESTION) != "orbit-tag.md"


def test_a_name_needs_all_its_words_in_order(idx):
    state = idx._current()
    assert not doc_ranking.named_documents(state, "Which tag does orbit make first?")
    assert not doc_ranking.named_documents(state, "How do I tag a release?")


def test_the_answer_reads_the_named_page_first(idx):
    """The QA task re-ranks the hits for the question by their text; the named page keeps the lead
    search gave it (without that, a tutorial that repeats the question's words overtakes it)."""
    from assistant.tasks import budget
    from doubles import MemoryContext, default_models

    hits = idx.search(QUESTION, k=4)
    ctx = MemoryContext(hits, None, default_models()[1])
    first = lambda: Path(hits[budget.rank_passages(ctx, QUESTION, hits)[0][0]].path).name  # noqa: E731
    assert first() == "orbit-tag.md"
    ctx.config = ctx.config.replace(rules_off="named-page-lead")  # the rule off (assistant/tasks/rules.py)
    assert first() != "orbit-tag.md"


def test_a_one_word_name_counts_in_a_chinese_question_only():
    """In a Chinese question a word in Latin letters is a name ("sort 按数值大小排序要加哪个选项？"
    names sort(1), saved as sort.1); in an English one "sort" is what the question asks to do."""
    names = doc_ranking.name_words("sort.1", "zh/man1/sort.1.txt")
    assert names == {("sort",)}
    assert doc_ranking.spelled_out("sort 按数值大小排序要加哪个选项？", names) == {("sort",)}
    assert doc_ranking.spelled_out("How do I sort lines by number?", names) == set()
    assert doc_ranking.bare_title("shutdown.8") == "shutdown" and doc_ranking.bare_title("Python 3.1") == "Python 3.1"
