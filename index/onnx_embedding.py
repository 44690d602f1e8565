"""The int8 embedding path: a sentence-transformers model exported once to ONNX, quantised, run by onnxruntime.

Why not sentence-transformers' own `backend="onnx"`: it needs `optimum-onnx`, whose releases pin
transformers < 4.58, and this project runs on transformers 5. The export here is the same idea
with fewer parts: trace the whole SentenceTransformer (transformer + pooling + normalize) into one
ONNX graph with torch, dynamically quantise its weight MatMuls to int8 with
`onnxruntime.quantization.quantize_dynamic`, cache the file, and at run time only tokenise and call
onnxruntime. On a 2-core CPU a whole ingest runs at 1.52x plain float32 `SentenceTransformer.encode`
(benchmarks/bench_embed.py, 3,273 man-page and git-manual chunks; 1.39x before batches ran side by side).

Quantisation choices (measured on 300 Python-docs chunks, MiniLM-L6, against float32):
  * per-channel int8 weights: per-tensor scales gave mean cosine 0.94 and top-5 overlap 0.81;
    per-channel 0.993 / 0.92;
  * the FFN down-projections (`layer.N/output/dense`) stay float32: their GELU inputs have outliers
    that per-tensor activation scales clip; keeping them lifts cosine to 0.997 and top-5 to 0.94
    for ~10 % of the speed-up.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from foundation.workspace import atomic_folder, atomic_write_json, cache_dir

log = logging.getLogger(__name__)

# Bump when the export or quantisation recipe changes: cached files of an older recipe are not reused.
RECIPE_VERSION = 1
MODEL_FILE = "model_int8.onnx"
META_FILE = "embedder.json"
BATCH = 8
MAX_WORKERS = 8  # batches encoded at once; each gets cpu_count // MAX_WORKERS threads or more


class Int8Unavailable(RuntimeError):
    """The int8 path cannot run here (missing packages or a model that does not export)."""


def int8_available() -> bool:
    """True when onnxruntime and onnx (the quantiser needs it) are installed; imports neither."""
    return all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "onnx"))


def require_int8() -> None:
    if not int8_available():
        raise Int8Unavailable(
            "The int8 embedding path needs onnxruntime and onnx: `pip install onnxruntime onnx` "
            "(or set embed_backend = \"torch\" / ASSISTANT_EMBED_BACKEND=torch for float32)."
        )


def cache_folder(model_path: str) -> Path:
    """Where the quantised export of `model_path` lives: keyed by the path, its weights and the recipe."""
    root = Path(model_path)
    stamp = [model_path, str(RECIPE_VERSION)]
    if root.is_dir():
        for f in sorted(root.glob("*.safetensors")) + sorted(root.glob("*.bin")):
            st = f.stat()
            stamp.append(f"{f.name}:{st.st_size}:{st.st_mtime_ns}")
    digest = hashlib.sha256("\n".join(stamp).encode()).hexdigest()[:16]
    return cache_dir() / "embedders" / f"{root.name or 'model'}-int8-{digest}"


def export_cached(model_path: str) -> bool:
    target = cache_folder(model_path)
    return (target / MODEL_FILE).exists() and (target / META_FILE).exists()


def ensure_int8_export(model_path: str) -> Path:
    """The cached int8 ONNX folder for `model_path`, exporting it once (atomically) if missing."""
    require_int8()
    target = cache_folder(model_path)
    if export_cached(model_path):
        return target
    log.warning("Exporting the embedder %s to int8 ONNX once into %s (later loads reuse it)", model_path, target)
    try:
        with atomic_folder(target) as tmp:
            _export(model_path, tmp)
    except Exception as exc:
        raise Int8Unavailable(f"Could not export {model_path} to int8 ONNX: {exc}") from exc
    return target


def _export(model_path: str, out: Path) -> None:
    """Trace the whole SentenceTransformer into ONNX, then quantise its weight MatMuls to int8."""
    import onnx
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(model_path, device="cpu").eval()
    features = st.tokenize(["an example sentence", "a second, somewhat longer example sentence to pad"])
    names = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in features]

    class Whole(torch.nn.Module):  # positional inputs in, the pooled (and normalised) embedding out
        def __init__(self) -> None:
            super().__init__()
            self.st = st

        def forward(self, *tensors):
            return self.st(dict(zip(names, tensors)))["sentence_embedding"]

    axes = {n: {0: "batch", 1: "sequence"} for n in names} | {"sentence_embedding": {0: "batch"}}
    float_file = out / "model_float.onnx"
    with torch.no_grad():
        # The TorchScript exporter: the dynamo one needs onnxscript and gains nothing for a BERT.
        torch.onnx.export(Whole().eval(), tuple(features[n] for n in names), str(float_file), input_names=names,
                          output_names=["sentence_embedding"], dynamic_axes=axes, opset_version=17, dynamo=False)
    graph = onnx.load(str(float_file), load_external_data=False).graph
    ffn_down = [n.name for n in graph.node
                if n.op_type == "MatMul" and "/output/dense/" in n.name and "attention" not in n.name]
    quantize_dynamic(str(float_file), str(out / MODEL_FILE), weight_type=QuantType.QInt8, per_channel=True,
                     op_types_to_quantize=["MatMul"], nodes_to_exclude=ffn_down,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    float_file.unlink()
    st.tokenizer.save_pretrained(str(out))
    normalized = any(type(m).__name__ == "Normalize" for m in st)
    atomic_write_json(out / META_FILE, {
        "source": model_path, "recipe": RECIPE_VERSION, "inputs": names, "max_seq_length": int(st.max_seq_length),
        "dimension": int((getattr(st, "get_embedding_dimension", None) or st.get_sentence_embedding_dimension)()), "normalized": normalized,
        "float32_kept": len(ffn_down),
    })


class OnnxInt8Encoder:
    """The quantised export behind the slice of `SentenceTransformer`'s interface that `Embedder` uses."""

    def __init__(self, folder: Path, threads: int = 0):
        import onnxruntime as ort

        self.folder = folder
        self.meta = json.loads((folder / META_FILE).read_text())
        self.max_seq_length = int(self.meta["max_seq_length"])
        self.tokenizer = _fast_tokenizer(folder, self.max_seq_length)
        cpus = threads or max(1, os.cpu_count() or 1)
        # Batches run side by side (onnxruntime's Run is thread-safe and releases the GIL), each on
        # fewer threads: on 2 cores, 2 batches x 1 thread encode 1.19x as fast as 1 batch x 2 threads
        # (43.2 against 36.4 texts/s, 260 man-page chunks), small matrices split badly across threads.
        self.workers = min(cpus, MAX_WORKERS)
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, cpus // self.workers)
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(folder / MODEL_FILE), options, providers=["CPUExecutionProvider"])

    def get_sentence_embedding_dimension(self) -> int:
        return int(self.meta["dimension"])

    def encode(self, texts: list[str], *, batch_size: int = 32, normalize_embeddings: bool = True,
               convert_to_numpy: bool = True, show_progress_bar: bool = False) -> np.ndarray:
        """Rows in input order; batches are cut from the texts sorted by length, so padding stays low.

        Batches are at most `BATCH` texts whatever the caller asks: int8 kernels gain nothing from
        bigger ones on a CPU, while padding costs (measured: 8 texts 1.86x torch, 16 1.66x, 64 1.37x).
        """
        batch_size = min(batch_size, BATCH)
        out = np.empty((len(texts), self.get_sentence_embedding_dimension()), dtype=np.float32)
        order = np.argsort([-len(t) for t in texts], kind="stable")
        batches = [order[start:start + batch_size] for start in range(0, len(texts), batch_size)]

        def run(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            enc = self.tokenizer.encode_batch([texts[i] for i in rows])
            columns = {"input_ids": [e.ids for e in enc], "attention_mask": [e.attention_mask for e in enc],
                       "token_type_ids": [e.type_ids for e in enc]}
            feed = {n: np.asarray(columns[n], dtype=np.int64) for n in self.meta["inputs"]}
            return rows, self.session.run(None, feed)[0]

        if self.workers > 1 and len(batches) > 1:
            with ThreadPoolExecutor(self.workers) as pool:
                for rows, vectors in pool.map(run, batches):
                    out[rows] = vectors
        else:
            for rows in batches:
                out[rows] = run(rows)[1]
        if normalize_embeddings:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out


def _fast_tokenizer(folder: Path, max_length: int):
    """The export's tokenizer.json through `tokenizers` directly, set up as transformers' call with
    padding=True, truncation=True, max_length: the same ids, without importing transformers (~1 s
    of a cold command)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    pad = config.get("pad_token") or "[PAD]"
    pad = pad.get("content") if isinstance(pad, dict) else pad
    pad_id = tokenizer.token_to_id(pad)
    tokenizer.enable_truncation(max_length=max_length)
    tokenizer.enable_padding(pad_id=0 if pad_id is None else pad_id, pad_token=pad,
                             direction=config.get("padding_side", "right"))
    return tokenizer
