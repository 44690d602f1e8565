"""The workspace ranker on a small real manual: pairs from its own text, training, the held-out
decision, the registry entry, and search reranking with the served ranker.

The manual is 24 of git's manual pages (HTML as git-doc ships them, 233 chunks), ingested with the
real embedder; the ranker trains on 20 pages and is judged on the 4 it never saw.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

from finetune.cli import add_parsers
from finetune.ranker_data import BLANK, build_rank_data, heading_leaf, load_index, passage_text
from finetune.recipes.ranker import RankerConfig, decide, train_ranker
from finetune.registry import Registry
from index import DocumentIndex
from index.reranking import fuse_with_order, served_ranker_path

MANUAL = Path(__file__).parent / "fixtures" / "ranker" / "git"
# Measured once (30 steps of 16 queries, 2 shared CPU cores, 142 s): held-out list MRR untrained 0.479 -> trained
# 0.583 (+0.104; headings 0.409 -> 0.612, clozes 0.541 -> 0.558), corpus MRR 0.348 -> 0.459. The test asks for half
# of the list gain. Training is bounded by steps, not seconds, so a busy machine only runs slower.
MIN_GAIN = 0.05


@pytest.fixture(scope="module")
def manual_ws(tmp_path_factory) -> Path:
    ws = tmp_path_factory.mktemp("ranker") / "workspace"
    report = DocumentIndex.open(ws / "index", device="cpu").ingest([MANUAL], progress=False)
    assert not report.failed and len(report.added) == 24
    return ws


def test_pairs_hide_the_answer_and_split_by_page(manual_ws):
    chunks, vectors, keyword = load_index(manual_ws / "index")
    data = build_rank_data(chunks, keyword=keyword)
    assert vectors.shape == (len(chunks), 384)
    assert data.counts["train_heading"] > 50 and data.counts["train_cloze"] > 50 and data.counts["heldout"] > 40
    assert not {q.path for q in data.train} & {q.path for q in data.heldout}  # held-out pages never trained on
    for q in data.train + data.heldout:
        pos = chunks[q.positive]
        if q.kind == "cloze":
            assert BLANK in q.query
            # the sentence (the query with its term) was cut out of the positive
            assert len(passage_text(pos)) - len(q.positive_text) >= len(q.query) - len(BLANK)
        else:
            assert heading_leaf(pos["heading"]) not in q.positive_text.split("\n", 1)[0]
        assert q.negatives and q.positive not in q.negatives
        assert all((chunks[r]["path"], chunks[r]["heading"]) != (pos["path"], pos["heading"]) for r in q.negatives)


def test_a_trained_ranker_beats_the_untrained_order_and_serves(manual_ws):
    result = train_ranker(RankerConfig(workspace=manual_ws, name="git-ranker", batch_size=16, max_steps=30,
                                       max_seconds=3600, serve=True, progress=False))
    before, after = result.metrics["untrained"], result.metrics["trained"]
    assert after["lists"]["queries"] == before["lists"]["queries"] > 40
    assert after["lists"]["mrr"] >= before["lists"]["mrr"] + MIN_GAIN
    assert result.metrics["training"]["steps"] == 30
    reg = Registry(manual_ws)
    assert reg.rankers()["git-ranker"]["method"] == "ranker" and "git-ranker" not in reg.list()  # never a generator
    assert result.served and reg.current_ranker == "git-ranker"
    assert served_ranker_path(manual_ws) == manual_ws / "models" / "git-ranker" / "model"

    plain = DocumentIndex.open(manual_ws / "index", device="cpu")
    ranked = DocumentIndex.open(manual_ws / "index", device="cpu", reranker="auto")
    query = "How do I remove untracked files from the working tree?"
    hits, base = ranked.search(query, k=5), plain.search(query, k=5)
    assert len(hits) == 5 and ranked._reranker is not None  # the served ranker re-scored the fused top
    assert {h.chunk_id for h in hits} <= {h.chunk_id for h in plain.search(query, k=40)}
    reg.use("no-ranker")
    assert [h.chunk_id for h in ranked.search(query, k=5)] == [h.chunk_id for h in base]


def test_a_ranker_that_loses_is_not_served():
    before = {"lists": {"mrr": 0.50}, "corpus": {"mrr": 0.40}}
    assert decide(before, {"lists": {"mrr": 0.505}, "corpus": {"mrr": 0.45}}, 0.01)[0] is False  # gain too small
    assert decide(before, {"lists": {"mrr": 0.60}, "corpus": {"mrr": 0.39}}, 0.01)[0] is False  # corpus got worse
    assert decide(before, {"lists": {"mrr": 0.60}, "corpus": {"mrr": 0.40}}, 0.01)[0] is True


def test_fusion_moves_passages_within_the_hybrid_order():
    # the ranker's favourite (last in hybrid order) moves up but does not jump over a passage both like
    scores = fuse_with_order([0.9, 0.1, 0.2, 0.95])
    assert np.argmax(scores) == 0 and scores[3] > scores[1]


def test_cli_has_the_ranker_recipe():
    parser = argparse.ArgumentParser()
    add_parsers(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["finetune", "--recipe", "ranker", "--max-seconds", "30"])
    assert args.recipe == "ranker" and args.max_seconds == 30
