"""The int8 embedding path: its neighbours match float32's, and an index never mixes the two.

Real parts: the bundled all-MiniLM-L6-v2, its int8 ONNX export (made once, in the shared model
cache), real FAISS, the product's own user guide as the page set.
"""
from __future__ import annotations

import numpy as np
import pytest

from index.document_index import DocumentIndex, EmbeddingPathMismatchError
from index.embedding import Embedder, append_compatible, search_compatible
from index.ingest import embed_text

pytest.importorskip("onnxruntime", reason="the int8 path needs onnxruntime (a project dependency)")


@pytest.fixture(scope="module")
def int8_index(tmp_path_factory, sample_docs):
    idx = DocumentIndex.open(tmp_path_factory.mktemp("int8") / "index", embed_backend="onnx-int8", device="cpu")
    report = idx.ingest([sample_docs], progress=False)
    assert not report.failed and report.chunks_added > 40
    return idx


def chunk_texts(idx: DocumentIndex) -> list[str]:
    state = idx._current()
    titles = {p: d.title for p, d in state.documents.items()}
    return [embed_text(titles[c["path"]], c["heading"], c["text"]) for c in state.chunks]


def top5(vectors: np.ndarray) -> np.ndarray:
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    return np.argsort(-sims, axis=1)[:, :5]


def test_int8_neighbours_match_float32_on_real_pages(int8_index):
    int8 = np.asarray(int8_index._current().vectors)
    float32 = Embedder("all-MiniLM-L6-v2", int8_index.embedder_path, "cpu", backend="torch").encode(chunk_texts(int8_index))
    cosine = np.sum(int8 * float32, axis=1)
    overlap = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(top5(int8), top5(float32))])
    assert cosine.mean() > 0.99 and cosine.min() > 0.95, (cosine.mean(), cosine.min())
    assert overlap >= 0.9, overlap


def test_the_export_runs_every_matmul_int8_behind_smoothing(int8_index):
    """Recipe 2: no MatMul left float32, the smoothed inputs recorded, the export's own check passed."""
    import json

    from index.onnx_embedding import META_FILE, MIN_CALIBRATION_COSINE, RECIPE_VERSION, ensure_int8_export

    meta = json.loads((ensure_int8_export(int8_index.embedder_path) / META_FILE).read_text())
    assert meta["recipe"] == RECIPE_VERSION and meta["float32_kept"] == 0
    assert meta["smoothed_inputs"] == 24  # per layer of six: Q/K/V's shared input, attention output, FFN up, FFN down
    assert meta["calibration_cosine"] >= MIN_CALIBRATION_COSINE


def test_another_architecture_exports_and_matches_float32(tmp_path):
    """A DistilBERT (no token type ids, other node names), built here with random weights and the
    bundled tokenizer: the export traces, smooths and quantises it, and its vectors match float32's."""
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import AutoTokenizer, DistilBertConfig, DistilBertModel

    from foundation.model_paths import resolve_embedder
    from index.onnx_embedding import OnnxInt8Encoder, _export

    tokenizer = AutoTokenizer.from_pretrained(resolve_embedder("all-MiniLM-L6-v2"))
    torch.manual_seed(0)
    config = DistilBertConfig(vocab_size=tokenizer.vocab_size, dim=64, n_layers=2, n_heads=4, hidden_dim=256)
    DistilBertModel(config).save_pretrained(tmp_path / "hf")
    tokenizer.save_pretrained(tmp_path / "hf")
    transformer = models.Transformer(str(tmp_path / "hf"), max_seq_length=64)
    st = SentenceTransformer(modules=[transformer, models.Pooling(64), models.Normalize()], device="cpu")
    st.save(str(tmp_path / "st"))
    (tmp_path / "int8").mkdir()
    _export(str(tmp_path / "st"), tmp_path / "int8")
    encoder = OnnxInt8Encoder(tmp_path / "int8")
    assert encoder.meta["inputs"] == ["input_ids", "attention_mask"] and encoder.meta["smoothed_inputs"] > 0
    texts = ["Rotate the signing keys every ninety days.", "x", "How do I import documents? " * 6]
    cosine = np.sum(encoder.encode(texts) * st.encode(texts, normalize_embeddings=True), axis=1)
    assert cosine.min() > 0.99, cosine


def test_int8_tokeniser_gives_transformers_ids_without_importing_it(int8_index):
    """The int8 encoder tokenises with `tokenizers` directly (a cold command skips transformers):
    the ids, masks and type ids equal transformers' padded, truncated batch."""
    from transformers import AutoTokenizer

    from index.onnx_embedding import OnnxInt8Encoder, ensure_int8_export

    folder = ensure_int8_export(int8_index.embedder_path)
    encoder = OnnxInt8Encoder(folder)
    reference = AutoTokenizer.from_pretrained(str(folder))
    texts = chunk_texts(int8_index)[:24] + ["如何导入文档？", "x", " tabs\tand  spaces ", "Ünïcödé ﬁ", "word " * 400]
    for start in range(0, len(texts), 8):
        batch = texts[start:start + 8]
        got = encoder.tokenizer.encode_batch(batch)
        want = reference(batch, padding=True, truncation=True, max_length=encoder.max_seq_length, return_tensors="np")
        assert np.array_equal([e.ids for e in got], want["input_ids"])
        assert np.array_equal([e.attention_mask for e in got], want["attention_mask"])
        assert np.array_equal([e.type_ids for e in got], want["token_type_ids"])
    assert max(len(e.ids) for e in encoder.tokenizer.encode_batch(texts[-1:])) == encoder.max_seq_length


def test_index_records_its_embedding_path_and_refuses_mixed_vectors(int8_index, tmp_path):
    assert int8_index.manifest["embedding"] == {"model": "all-MiniLM-L6-v2", "backend": "onnx-int8", "precision": "int8"}
    # "auto" reopens with the backend that built the index, so nothing mixes by default
    assert DocumentIndex.open(int8_index.directory, device="cpu")._embedder.backend == "onnx-int8"
    # a float32 query may search it (declared compatible: top-5 overlap >= 0.9, test above) ...
    as_float = DocumentIndex.open(int8_index.directory, embed_backend="torch", device="cpu")
    hits = as_float.search("How do I use PostgreSQL for the log?", k=3, mode="dense")
    assert hits and hits[0].path == int8_index.search("How do I use PostgreSQL for the log?", k=3, mode="dense")[0].path
    # ... but float32 vectors are never stored beside int8 ones
    (tmp_path / "new.md").write_text("# Key rotation\n\nRotate the signing keys every ninety days.\n")
    before = int8_index.count
    with pytest.raises(EmbeddingPathMismatchError, match=r"'onnx-int8' \(int8\).*'torch' \(float32\)"):
        as_float.ingest([tmp_path], progress=False)
    assert DocumentIndex.open(int8_index.directory, device="cpu").count == before


def test_the_compatibility_rule():
    int8 = {"model": "m", "backend": "onnx-int8", "precision": "int8"}
    f32 = {"model": "m", "backend": "torch", "precision": "float32"}
    f16 = {"model": "m", "backend": "torch", "precision": "float16"}
    assert search_compatible(int8, f32) and not append_compatible(int8, f32)
    assert append_compatible(f32, f16)  # fp16 on a GPU and fp32 on a CPU agree to ~1e-3
    assert not search_compatible(f32, {**f32, "model": "other"})


def test_legacy_index_without_a_record_is_extended_with_torch(tmp_path, sample_docs):
    """An index built before paths were recorded was float32 torch; "auto" keeps it that way.
    (Built here with int8 and its record removed, so the test can tell the two apart.)"""
    import json

    from index.store import current_generation

    idx = DocumentIndex.open(tmp_path / "index", embed_backend="onnx-int8", device="cpu")
    one = sorted(p for p in sample_docs.iterdir() if p.suffix == ".md")[0]
    idx.ingest([one], progress=False)
    manifest_file = tmp_path / "index" / current_generation(tmp_path / "index") / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    assert manifest.pop("embedding")["backend"] == "onnx-int8"
    manifest_file.write_text(json.dumps(manifest))
    assert DocumentIndex.open(tmp_path / "index", device="cpu")._embedder.backend == "torch"


def test_the_int8_path_is_checked_on_the_cpu_that_uses_it(int8_index, tmp_path, monkeypatch):
    """The export keeps float32 vectors of fixed texts; each machine (fingerprint) compares its own int8 output
    with them once. A copy whose reference disagrees, as int8 kernels on another CPU could, is refused under
    "auto" (float32 answers instead, saying why) and used with a warning when onnx-int8 is forced."""
    import shutil

    from index import embedding, int8_check
    from index.onnx_embedding import OnnxInt8Encoder, ensure_int8_export

    status = int8_index.embedder_status(load=True)
    assert status["backend"] == "onnx-int8" and status["check"]["agrees"], status
    assert status["check"]["mean_cosine"] >= int8_check.MIN_COSINE
    folder = ensure_int8_export(int8_index.embedder_path)
    assert (folder / int8_check.REFERENCE_FILE).exists() and list((folder / int8_check.CHECKS_DIR).glob("*.json"))

    copy = tmp_path / "copied-export"
    shutil.copytree(folder, copy)
    shutil.rmtree(copy / int8_check.CHECKS_DIR)
    texts, vectors = int8_check.read_reference(copy)
    rng = np.random.default_rng(1)
    int8_check.write_reference(copy, texts, vectors + rng.normal(0, 0.05, vectors.shape).astype(np.float32))
    verdict = int8_check.machine_verdict(copy, int8_index.embedder_path, OnnxInt8Encoder(copy))
    assert not verdict["agrees"] and verdict["mean_cosine"] < int8_check.MIN_COSINE
    assert int8_check.machine_verdict(copy, int8_index.embedder_path, None) == verdict  # cached: not encoded again

    monkeypatch.setattr(embedding, "ensure_int8_export", lambda path: copy)
    monkeypatch.setattr(embedding, "_MODELS", {})
    auto = Embedder("all-MiniLM-L6-v2", int8_index.embedder_path, "cpu")
    auto.encode(["a query"])
    assert auto.backend == "torch" and "disagrees with float32 on this CPU" in auto.fallback_reason
    forced = Embedder("all-MiniLM-L6-v2", int8_index.embedder_path, "cpu", backend="onnx-int8")
    assert forced.encode(["a query"]).shape == (1, 384) and forced.backend == "onnx-int8"
    assert not forced.check["agrees"]
