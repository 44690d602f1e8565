"""Re-ingest is incremental; bad files are reported and skipped; big collections get an approximate index."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

from index import DocumentIndex
from index.ingest import embed_text
from index.keyword import KeywordIndex
from index.vectors import VectorIndex

FIXTURES = Path(__file__).parent / "fixtures" / "index"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def docs(tmp_path) -> Path:
    root = tmp_path / "docs"
    write(root / "alpha.md", "# Alpha\n\n## Setup\n\nAlpha uses the blue widget for calibration.\n")
    write(root / "beta.txt", "Beta requires a green lever to be pulled twice every morning.\n")
    write(root / "sub" / "gamma.md", "# Gamma\n\nGamma stores its archives on the orange tape drive.\n")
    write(root / ".hidden" / "secret.md", "# Hidden\n\nnever indexed\n")
    write(root / "node_modules" / "lib.js", "function hiddenDependency() { return 1; }\n")
    return root


def paths_of(hits) -> set[str]:
    return {Path(h.path).name for h in hits}


def test_reingest_skips_unchanged_replaces_changed_and_prunes(tmp_path, docs):
    idx = DocumentIndex.open(tmp_path / "index")
    first = idx.ingest([docs], progress=False)
    assert sorted(Path(p).name for p in first.added) == ["alpha.md", "beta.txt", "gamma.md"]
    assert idx.count == 3 and first.chunks_added == 3
    gen1 = idx.manifest["generation"]

    again = idx.ingest([docs], progress=False)
    assert len(again.skipped) == 3 and not again.added and not again.updated
    assert idx.manifest["generation"] == gen1  # nothing changed: no new generation written

    os.utime(docs / "beta.txt")  # touched but identical: the content hash says skip
    assert len(idx.ingest([docs], progress=False).skipped) == 3

    write(docs / "beta.txt", "Beta now requires a purple switch instead of the lever.\n")
    write(docs / "delta.md", "# Delta\n\nDelta speaks only on Thursdays.\n")
    (docs / "sub" / "gamma.md").unlink()
    report = idx.ingest([docs], progress=False)
    assert [Path(p).name for p in report.updated] == ["beta.txt"]
    assert [Path(p).name for p in report.added] == ["delta.md"]
    assert report.chunks_added == 2  # only the changed and new files were embedded
    assert not report.removed and idx.count == 4  # without prune the vanished file stays
    top = idx.search("what does Beta require?", k=1)[0]
    assert "purple switch" in top.text
    # BM25 was rebuilt from stored token lists plus the new chunks: same as building it from scratch.
    assert (tmp_path / "index" / idx.manifest["generation"] / "bm25" / "tokens.jsonl").exists()
    chunks = list(idx.iter_chunks())
    assert sorted(Path(c.path).name for c in chunks) == ["alpha.md", "beta.txt", "delta.md", "gamma.md"]
    scratch = KeywordIndex.build([embed_text(c.title, c.heading, c.text) for c in chunks])
    for q in ("purple switch", "Delta Thursdays", "blue widget calibration"):
        expected = [chunks[row].chunk_id for row, _ in scratch.search(q, 4)]
        assert expected and [h.chunk_id for h in idx.search(q, k=4, mode="keyword")] == expected, q
    assert not any("green lever" in h.text for h in idx.search("green lever", k=4))

    pruned = idx.ingest([docs], prune=True, progress=False)
    assert [Path(p).name for p in pruned.removed] == ["gamma.md"]
    assert idx.count == 3 and "gamma.md" not in {Path(d.path).name for d in idx.documents()}
    assert "orange tape" not in " ".join(h.text for h in idx.search("orange tape drive archives", k=3))

    # prune only touches the roots given: ingesting one file does not prune the others
    other = write(tmp_path / "elsewhere" / "note.txt", "An unrelated note about zebras.\n")
    r = idx.ingest([other], prune=True, progress=False)
    assert len(r.added) == 1 and not r.removed and idx.count == 4

    reopened = DocumentIndex.open(tmp_path / "index")
    assert reopened.count == 4 and len(reopened.documents()) == 4


def _build_module():
    spec = importlib.util.spec_from_file_location("index_fixture_build", FIXTURES / "build.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_bad_files_are_reported_and_the_rest_indexed(tmp_path, docs):
    bad = docs / "bad"
    write(bad / "empty.md", "")
    (bad / "binary.txt").write_bytes(b"\x00\x01\x02\x03 not text \x00")
    write(bad / "huge.txt", "big file " * 20_000)  # 180 KB, over the limit set below
    _build_module().make_pdf(bad / "locked.pdf", password="pw")
    (bad / "broken.pdf").write_bytes(b"%PDF-1.4 garbage")
    (bad / "broken.docx").write_bytes(b"PK\x03\x04 not a zip")
    os.symlink(bad / "does-not-exist.md", bad / "dangling.md")
    write(bad / "image.png", "ignored: not a document type")

    idx = DocumentIndex.open(tmp_path / "index", max_file_bytes=100_000)
    report = idx.ingest([docs, tmp_path / "missing-folder"], progress=False)
    reasons = {Path(f.path).name: f.reason for f in report.failed}
    assert set(reasons) == {"empty.md", "binary.txt", "huge.txt", "locked.pdf", "broken.pdf", "broken.docx",
                            "dangling.md", "missing-folder"}
    assert "empty" in reasons["empty.md"]
    assert "binary" in reasons["binary.txt"]
    assert "too large" in reasons["huge.txt"] and "max_file_bytes" in reasons["huge.txt"]
    assert "encrypted" in reasons["locked.pdf"]
    assert "PDF" in reasons["broken.pdf"] and "DOCX" in reasons["broken.docx"]
    assert "unreadable" in reasons["dangling.md"] and "no such file" in reasons["missing-folder"]
    assert len(report.added) == 3 and idx.count == 3  # the good files are all indexed

    # A file that was fine and then breaks keeps its previous chunks (bad input loses nothing).
    (docs / "beta.txt").write_bytes(b"\x00\x00 corrupted \x00")
    report = idx.ingest([docs], prune=True, progress=False)
    assert "beta.txt" in {Path(f.path).name for f in report.failed} and not report.removed
    assert "green lever" in idx.search("green lever", k=1)[0].text


def test_approximate_index_past_threshold_keeps_recall(tmp_path):
    rng = np.random.default_rng(7)
    topics = ["river", "mountain", "violin", "compiler", "harvest", "satellite", "bakery", "glacier",
              "tax", "opera", "volcano", "robot", "garden", "railway", "ocean", "chess"]
    lines = ["# Facts", ""]
    for i in range(420):
        a, b = rng.choice(topics, 2, replace=False)
        lines += [f"## Fact {i}", "", f"Fact {i}: the {a} near the {b} was measured at {rng.integers(1, 999)} units.", ""]
    write(tmp_path / "docs" / "facts.md", "\n".join(lines))
    idx = DocumentIndex.open(tmp_path / "index", approx_threshold=200)
    idx.ingest([tmp_path / "docs"], progress=False)
    info = idx.manifest["index"]
    assert idx.count == 420 and info["kind"] == "ivf"
    assert info["params"]["nlist"] >= 2 and info["params"]["nprobe"] >= 1  # recorded for reproducibility

    state = idx._current()  # raw vectors and the FAISS index have no public interface: they are what this tests
    vectors = np.asarray(state.vectors)
    queries = idx.embed([f"the {t} measurement" for t in topics])
    exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
    _, approx = state.vector_index.search(queries, 10)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact)])
    assert recall >= 0.9, recall

    hnsw = VectorIndex.build(vectors, vectors.shape[1], kind="hnsw")
    _, got = hnsw.search(queries, 10)
    assert np.mean([len(set(a) & set(e)) / 10 for a, e in zip(got, exact)]) >= 0.9
    assert hnsw.params["M"] == 32 and hnsw.params["efSearch"] >= 10

    # Appending to an approximate index keeps its kind and stays searchable.
    write(tmp_path / "docs" / "extra.md", "# Extra\n\nThe zeppelin hangar is painted teal.\n")
    idx.ingest([tmp_path / "docs"], progress=False)
    assert idx.manifest["index"]["kind"] == "ivf" and idx.count == 421
    assert "zeppelin" in idx.search("zeppelin hangar colour", k=1, mode="dense")[0].text

    # Replacing a file drops rows: the IVF keeps its trained centroids and is refilled, not retrained.
    def centroids():
        ivf = idx._current().vector_index.cpu  # the trained centroids themselves are under test
        return ivf.quantizer.reconstruct_n(0, ivf.nlist)

    before = centroids()
    write(tmp_path / "docs" / "extra.md", "# Extra\n\nThe zeppelin hangar is now painted crimson.\n")
    idx.ingest([tmp_path / "docs"], progress=False)
    assert idx.manifest["index"] == info and idx.count == 421
    assert np.array_equal(before, centroids())
    assert "crimson" in idx.search("zeppelin hangar colour", k=1, mode="dense")[0].text
    assert not any("teal" in h.text for h in idx.search("zeppelin hangar teal", k=3, mode="dense"))


def test_gpu_request_falls_back_to_cpu_when_there_is_none():
    import faiss

    vectors = np.eye(8, 16, dtype=np.float32)
    index = VectorIndex.build(vectors, 16, kind="flat", use_gpu=True)
    scores, ids = index.search(vectors[3], 2)
    assert ids[0][0] == 3 and scores[0][0] == pytest.approx(1.0)
    assert index.on_gpu == (faiss.get_num_gpus() > 0)
    assert index.describe()["gpu"] == index.on_gpu


def test_changing_chunk_size_rechunks_unchanged_files(tmp_path, docs):
    DocumentIndex.open(tmp_path / "index").ingest([docs], progress=False)
    smaller = DocumentIndex.open(tmp_path / "index", chunk_tokens=64, chunk_overlap=8)
    report = smaller.ingest([docs], progress=False)
    assert len(report.updated) == 3 and not report.skipped
    assert {(d.chunk_tokens, d.chunk_overlap) for d in smaller.documents()} == {(64, 8)}
    assert len(smaller.ingest([docs], progress=False).skipped) == 3
