"""Searching a real index of every supported format, with the real embedder, FAISS and BM25."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from index import DocumentIndex, EmbedderMismatchError
from index.evaluation import evaluate, format_table, read_qa

FIXTURES = Path(__file__).parent / "fixtures" / "index"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("corpus") / "docs"
    shutil.copytree(FIXTURES / "corpus", target)
    return target.resolve()


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("index")


@pytest.fixture(scope="module")
def idx(index_dir, corpus) -> DocumentIndex:
    index = DocumentIndex.open(index_dir)
    seen = []
    report = index.ingest([corpus], progress=lambda msg, done, total: seen.append((msg, done, total)))
    assert not report.failed, report.failed
    assert len(report.added) == 12 and report.chunks_added == index.count
    assert ("Embedding chunks", index.count, index.count) in seen  # the UI's progress callback got the end
    return index


def test_manifest_and_documents(idx, index_dir, corpus):
    manifest = idx.manifest
    assert manifest["embedder"] == "all-MiniLM-L6-v2" and manifest["dimension"] == 384 == idx.dimension
    assert manifest["index"]["kind"] == "flat"
    assert manifest["counts"] == {"documents": 12, "chunks": idx.count}
    assert {"faiss-cpu", "sentence-transformers", "bm25s"} <= set(manifest["versions"])
    assert (index_dir / "CURRENT").read_text().strip() == manifest["generation"]
    docs = {Path(d.path).name: d for d in idx.documents()}
    assert docs["handbook.pdf"].file_type == "pdf" and docs["handbook.pdf"].title == "Incident Response Handbook"
    assert docs["server.py"].n_chunks == 4 and len(docs["server.py"].sha256) == 64
    assert docs["guide.md"].path == str(corpus / "guide.md")  # absolute resolved path


def test_hybrid_hit_has_full_provenance(idx, corpus):
    hits = idx.search("Which port does the Orbit service listen on?", k=3)
    top = hits[0]
    assert top.path == str(corpus / "guide.md") and top.title == "Deployment Guide"
    assert top.locator == "Install > Linux" and top.heading == "Install > Linux"
    assert "port 7420" in top.text and not top.text.startswith("Deployment Guide")  # heading path not in text
    assert top.start_line == 9 and top.end_line == 10
    assert [h.rank for h in hits] == [1, 2, 3]
    assert hits[0].score >= hits[1].score >= hits[2].score


@pytest.mark.parametrize("mode", ["dense", "keyword", "hybrid"])
def test_every_hit_has_its_cosine_similarity(idx, mode):
    query = "How long are API tokens valid?"
    hits = idx.search(query, k=4, mode=mode)
    assert hits and "twelve hours" in hits[0].text
    q = idx.embed([query])[0]
    # The stored vectors have no public interface; re-embedding a chunk alone is no substitute (int8
    # ONNX quantises activations per batch, so a text's vector depends on its batch by ~1e-2).
    state = idx._current()
    for h in hits:
        row = next(i for i, c in enumerate(state.chunks) if c["id"] == h.chunk_id)
        assert h.dense_score == pytest.approx(float(np.asarray(state.vectors[row]) @ q), abs=1e-5)
    if mode == "dense":
        assert hits[0].score == pytest.approx(hits[0].dense_score)
    unrelated = idx.search("recipe for chocolate cake with strawberries", k=1, mode="dense")[0]
    assert unrelated.dense_score < hits[0].dense_score - 0.2  # low relevance lets the assistant decline


def test_pdf_docx_and_code_locators(idx):
    pdf = idx.search("escalate to the duty manager", k=1)[0]
    assert pdf.locator == "page 2" and pdf.page == 2
    docx = idx.search("hotel nightly cap in Paris", k=1)[0]
    assert docx.title == "Travel Policy" and docx.locator == "Booking > Hotels"
    code = idx.search("checksum of bytes modulo", k=1, file_types=["code"])[0]
    assert code.locator == "def compute_checksum, lines 25-27"


def test_chinese_query_finds_chinese_document(idx):
    for mode in ("dense", "keyword", "hybrid"):
        hits = idx.search("数据库备份什么时候运行？", k=3, mode=mode)
        assert any("凌晨两点" in h.text for h in hits), mode
    assert "凌晨两点" in idx.search("备份在几点运行", k=1)[0].text


def test_filters_by_path_prefix_and_file_type(idx, corpus):
    hits = idx.search("orbit", k=10, file_types=["pdf", ".docx"])
    assert hits and {Path(h.path).suffix for h in hits} <= {".pdf", ".docx"}
    hits = idx.search("orbit", k=10, path_prefix=str(corpus / "api"))
    assert hits and all(h.path.endswith("api.rst") for h in hits)
    hits = idx.search("function", k=10, file_types=["python"])
    assert hits and all(h.path.endswith(".py") for h in hits)
    assert idx.search("orbit", k=5, path_prefix="/nowhere/at/all") == []


def test_document_chunks_by_suffix_title_and_errors(idx):
    by_suffix = idx.document_chunks("docs/api.rst")
    assert [c.heading for c in by_suffix] == ["", "Authentication", "Rate limits", "Rate limits > Pagination"]
    assert idx.document_chunks("orbit api")[0].path == by_suffix[0].path  # title, case-insensitive
    with pytest.raises(KeyError, match="guide.md"):
        idx.document_chunks("gide.md")  # close match suggested


def test_iter_chunks_reads_what_was_committed(idx, corpus):
    chunks = list(idx.iter_chunks())
    assert len(chunks) == idx.count and len({c.chunk_id for c in chunks}) == idx.count
    assert all(c.text and c.score == 0.0 and c.title for c in chunks)
    assert [c.path for c in chunks] == sorted(c.path for c in chunks)  # document by document
    api = list(idx.iter_chunks(path_prefix=str(corpus / "api.rst")))
    assert [(c.chunk_id, c.locator) for c in api] == [(c.chunk_id, c.locator) for c in idx.document_chunks("api.rst")]
    assert list(idx.iter_chunks(path_prefix="/nowhere/at/all")) == []


def test_bad_queries_are_rejected_clearly(idx):
    with pytest.raises(ValueError, match="mode"):
        idx.search("x", mode="fuzzy")
    with pytest.raises(ValueError, match="k must"):
        idx.search("x", k=0)
    assert idx.search("   ") == []


def test_reopen_from_disk_gives_same_results(idx, index_dir):
    again = DocumentIndex.open(index_dir)
    assert again.count == idx.count
    q = "support desk opening hours"
    assert [h.chunk_id for h in again.search(q, k=5)] == [h.chunk_id for h in idx.search(q, k=5)]


def test_wrong_embedder_is_refused(idx, index_dir):
    with pytest.raises(EmbedderMismatchError, match="all-MiniLM-L6-v2"):
        DocumentIndex.open(index_dir, embedder="sentence-transformers/paraphrase-MiniLM-L3-v2")
    assert DocumentIndex.open(index_dir, embedder="default").count == idx.count  # an alias of the same model is fine


def test_evaluate_reports_all_modes(idx):
    result = evaluate(idx, FIXTURES / "qa.jsonl")
    assert result["n_questions"] == len(read_qa(FIXTURES / "qa.jsonl")) == 12
    for mode in ("dense", "keyword", "hybrid"):
        m = result["modes"][mode]
        assert 0.0 <= m["recall@1"] <= m["recall@5"] <= m["recall@10"] <= 1.0
        assert m["mrr"] <= m["recall@10"] + 1e-9
    assert result["modes"]["hybrid"]["recall@5"] >= 0.9
    table = format_table(result)
    assert "| recall@5 |" in table and "hybrid" in table


def test_evaluate_rejects_malformed_qa(idx, tmp_path):
    bad = tmp_path / "qa.jsonl"
    bad.write_text('{"question": "ok?", "path": "a.md"}\n{not json}\n')
    with pytest.raises(ValueError, match=":2:"):
        evaluate(idx, bad)


def test_reranker_rescores_the_fused_candidates(index_dir, idx):
    from foundation.model_paths import resolve_embedder

    # No cross-encoder ships offline; the MiniLM weights with a fresh (untrained) classification head
    # exercise the real CrossEncoder path. Scores are meaningless, so only the plumbing is checked.
    reranked = DocumentIndex.open(index_dir, reranker=resolve_embedder("all-MiniLM-L6-v2"))
    hits = reranked.search("Which port does the Orbit service listen on?", k=4)
    fused = idx.search("Which port does the Orbit service listen on?", k=4)
    assert len(hits) == 4 and [h.score for h in hits] != [h.score for h in fused]  # cross-encoder scores, not RRF
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert all(h.dense_score is not None for h in hits)
