"""The int8 embedding path: a sentence-transformers model exported once to ONNX, quantised, run by onnxruntime.

Why not sentence-transformers' own `backend="onnx"`: it needs `optimum-onnx`, whose releases pin
transformers < 4.58, and this project runs on transformers 5. The export here is the same idea
with fewer parts: trace the whole SentenceTransformer (transformer + pooling + normalize) into one
ONNX graph with torch (eager attention), smooth the MatMul inputs on calibration text, dynamically
quantise every weight MatMul to int8 with `onnxruntime.quantization.quantize_dynamic`, cache the
file, and at run time only tokenise and call onnxruntime.

Measured (MiniLM-L6, 2-core AVX-512 VNNI CPU shared with other jobs, benchmarks/bench_embed.py):
  * whole ingest 3.07x plain float32 `SentenceTransformer.encode` (250 pages, 3,273 chunks: 30.0 s
    against 92.1 s, best of 2 each; 150 pages, 980 chunks: 3.22x). Recipe 1 (FFN down-projections
    kept float32, no smoothing, batches of 8): 1.52x; 1.39x before batches ran side by side;
  * onnxruntime alone on those 980 chunks, single-thread CPU time, texts per CPU-second: recipe 1
    41, this recipe 63-65 in batches of 8, 75 one text per call (`BATCH`);
  * against float32: mean cosine 0.9978 (recipe 1: 0.9972), top-5 neighbour overlap 0.954 (0.944);
    the dev set's retrieval questions, recall@10 / nDCG@10: dense 0.972 / 0.912 against float32's
    0.972 / 0.909, hybrid 0.986 / 0.905 against 0.986 / 0.910.

Quantisation choices:
  * per-channel int8 weights (symmetric, per output column), uint8 activations with one dynamic
    scale per tensor (the u8s8 VNNI kernels): per-tensor weight scales gave mean cosine 0.94;
  * SmoothQuant on every MatMul input (`_smooth`, alpha 0.8): onnxruntime's one activation scale per
    tensor is what outlier channels spoil, worst in the GELU outputs that feed the FFN
    down-projections (recipe 1 kept those six float32, 35 % of its run time; quantising them bare
    cost cosine 0.9972 -> 0.9939, top-5 0.944 -> 0.917). Smoothed, all 36 MatMuls run int8;
  * calibration text: 64 pieces of Python's reference topics (stdlib `pydoc_data`), so a model
    exports offline with nothing shipped; the export checks its own result (mean cosine against
    float32 on those texts >= 0.99) and falls back to recipe 1 for a model where it is not;
  * eager attention, not SDPA: the SDPA trace carries an IsNaN/Where guard per layer (~8 % of the run).
Tried and not kept (same measurements): onnxruntime.transformers' BERT optimizer before quantising
(fused Attention -> QAttention 56.5 texts per CPU-second, MultiHeadAttention 56.0, only the
LayerNorm/Gelu fusions 58.0, all slower than leaving fusion to onnxruntime at load: 63); quantising
the attention score MatMuls too (no faster, cosine 0.9966); calibrating on 24 one-line sentences
(cosine 0.9956: long inputs have wider ranges).
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from foundation.devices import usable_cpus
from foundation.workspace import atomic_folder, atomic_write_json, cache_dir
from index.int8_check import write_reference

log = logging.getLogger(__name__)

# Bump when the export or quantisation recipe changes: cached files of an older recipe are not reused.
RECIPE_VERSION = 2
SMOOTH_ALPHA = 0.8  # 0.7-0.9 measured within 0.001 cosine of each other; 0.5 and below worse than none
MIN_CALIBRATION_COSINE = 0.99  # below this the smoothed all-int8 export is replaced by the version-1 recipe
MODEL_FILE = "model_int8.onnx"
META_FILE = "embedder.json"
BATCH = 1  # texts per onnxruntime call; see OnnxInt8Encoder.encode
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
        with atomic_folder(target) as tmp, _quiet_export():
            _export(model_path, tmp)
    except Exception as exc:
        raise Int8Unavailable(f"Could not export {model_path} to int8 ONNX: {exc}") from exc
    return target


@contextlib.contextmanager
def _quiet_export() -> Iterator[None]:
    """Silence the third-party notices the one-time export prints (a wall of them on a first start):
    torch's TracerWarnings and ONNX-exporter UserWarnings, sentence-transformers' "`tokenize` is
    deprecated", transformers' weight-loading bar, and onnxruntime's "consider pre-processing"
    hint, which it logs on the root logger (installing a root handler as it does). Our own log
    lines keep their level: only these libraries' loggers, and the root's, are raised meanwhile."""
    import warnings

    from torch.jit import TracerWarning  # imported here: torch loads only when an export runs
    from transformers.utils import logging as hf_logging  # likewise

    root = logging.getLogger()
    loggers = [logging.getLogger(n) for n in ("sentence_transformers", "transformers", "torch.onnx", "onnxruntime")]
    levels = [(lg, lg.level) for lg in loggers]
    own = log.level
    log.setLevel(log.getEffectiveLevel())  # pinned, so raising the root's level below leaves ours alone
    root_level, bar = root.level, hf_logging.is_progress_bar_enabled()
    hush = logging.NullHandler()  # a root handler, so onnxruntime's logging.warning() adds no basicConfig one
    root.addHandler(hush)
    root.setLevel(logging.ERROR)
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=TracerWarning)
            warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.onnx")
            for category in (DeprecationWarning, FutureWarning):
                warnings.filterwarnings("ignore", category=category, module=r"sentence_transformers")
            yield
    finally:
        root.removeHandler(hush)
        root.setLevel(root_level)
        for lg, level in levels:
            lg.setLevel(level)
        log.setLevel(own)
        if bar:
            hf_logging.enable_progress_bar()


def _export(model_path: str, out: Path) -> None:
    """Trace the whole SentenceTransformer into ONNX, smooth the MatMul inputs, quantise every weight MatMul to int8."""
    import onnx
    import onnxruntime as ort
    import torch
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(model_path, device="cpu").eval()
    _eager_attention(st)
    features = st.tokenize(["an example sentence", "a second, somewhat longer example sentence to pad"])
    names = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in features]

    class Whole(torch.nn.Module):  # positional inputs in, the pooled (and normalised) embedding out
        def __init__(self) -> None:
            super().__init__()
            self.st = st

        def forward(self, *tensors):
            return self.st(dict(zip(names, tensors)))["sentence_embedding"]

    axes = {n: {0: "batch", 1: "sequence"} for n in names} | {"sentence_embedding": {0: "batch"}}
    float_file, smooth_file = out / "model_float.onnx", out / "model_smoothed.onnx"
    with torch.no_grad():
        # The TorchScript exporter: the dynamo one needs onnxscript and gains nothing for a BERT.
        torch.onnx.export(Whole().eval(), tuple(features[n] for n in names), str(float_file), input_names=names,
                          output_names=["sentence_embedding"], dynamic_axes=axes, opset_version=17, dynamo=False)
    model = onnx.load(str(float_file))
    names = [i.name for i in model.graph.input]  # the tracer drops inputs the model ignores (DistilBERT's token types)
    batches = [{n: t.numpy() for n, t in st.tokenize(chunk).items() if n in names}
               for chunk in _batched(_calibration_texts(), 8)]
    smoothed = _smooth(model, batches, SMOOTH_ALPHA)
    onnx.save(model, str(smooth_file))
    _quantize(smooth_file, out / MODEL_FILE)
    cosine = _agreement(float_file, out / MODEL_FILE, batches)
    if cosine < MIN_CALIBRATION_COSINE:  # a model whose outliers smoothing does not tame: the recipe of version 1
        log.warning("int8 export of %s: smoothed cosine %.4f on the calibration texts; keeping its down-projections "
                    "float32", model_path, cosine)
        graph = onnx.load(str(float_file), load_external_data=False).graph
        keep = [n.name for n in graph.node if n.op_type == "MatMul" and "/output/dense/" in n.name
                and "attention" not in n.name]
        _quantize(float_file, out / MODEL_FILE, exclude=keep)
        smoothed, cosine = 0, _agreement(float_file, out / MODEL_FILE, batches)
    else:
        keep = []
    texts = check_texts()
    reference = ort.InferenceSession(str(float_file), providers=["CPUExecutionProvider"])
    write_reference(out, texts, np.concatenate([reference.run(None, {n: t.numpy() for n, t in st.tokenize(chunk).items()
                                                                  if n in names})[0] for chunk in _batched(texts, 8)]))
    float_file.unlink()
    smooth_file.unlink()
    st.tokenizer.save_pretrained(str(out))
    normalized = any(type(m).__name__ == "Normalize" for m in st)
    atomic_write_json(out / META_FILE, {
        "source": model_path, "recipe": RECIPE_VERSION, "inputs": names, "max_seq_length": int(st.max_seq_length),
        "dimension": int((getattr(st, "get_embedding_dimension", None) or st.get_sentence_embedding_dimension)()), "normalized": normalized,
        "smoothed_inputs": smoothed, "float32_kept": len(keep), "calibration_cosine": round(cosine, 5),
    })


def _quantize(source: Path, target: Path, exclude: Sequence[str] = ()) -> None:
    """Every weight MatMul of `source` but those named in `exclude` to int8: per-channel weights,
    dynamic per-tensor uint8 activations (the u8s8 kernels)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True,
                     op_types_to_quantize=["MatMul"], nodes_to_exclude=list(exclude),
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})


def _eager_attention(st) -> None:
    """Trace the plain matmul-softmax attention, not torch's SDPA: SDPA exports with an IsNaN/Where guard
    per layer that costs ~8 % of the int8 run (measured) and computes the same numbers."""
    transformer = getattr(st[0], "auto_model", None) if len(st) else None
    try:
        transformer.set_attn_implementation("eager")
    except Exception:  # an older transformers, or a model without the switch: its default export still works
        pass


def _calibration_texts(count: int = 64, size: int = 600, between: bool = False) -> list[str]:
    """Real prose for the activation ranges: Python's own reference topics (stdlib `pydoc_data`, ~460 kB of
    technical English), cut into chunk-sized pieces spread over all topics. Short sentences are not
    enough: ranges of long inputs are wider (calibrating on 24 one-line sentences gave cosine 0.9956
    on man pages, 64 of these pieces 0.9974). `between` takes the pieces halfway between those
    (texts for the machine check in `index.int8_check` that the calibration never saw)."""
    try:
        from pydoc_data.topics import topics
    except ImportError:  # a Python built without it
        topics = {}
    pieces = [text[i:i + size] for _, text in sorted(topics.items()) for i in range(0, len(text), size)]
    if not pieces:
        pieces = [_FALLBACK_CALIBRATION * 4]
    step = max(1, len(pieces) // count)
    return pieces[step // 2 if between else 0::step][:count]


_FALLBACK_CALIBRATION = (
    "The configuration file is read once at start-up; changes take effect after a restart of the service. "
    "Returns the number of bytes written, or -1 on error, in which case errno is set appropriately. "
    "git rebase --onto main feature~3 feature moves the last three commits of feature onto main. "
)


def _batched(items: Sequence, size: int) -> list[Sequence]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def _smooth(model, batches: list[dict], alpha: float) -> int:
    """SmoothQuant (Xiao et al., 2023) on every MatMul with a constant 2-D weight, in place; returns how
    many activations were smoothed.

    onnxruntime's dynamic quantisation gives each activation one uint8 scale per tensor, so a few
    outlier channels (the GELU outputs into the FFN down-projections reach 25 where most channels stay
    under 2) leave little resolution for the rest. Each such input X gets a Mul by 1/s per channel and
    the weight rows are multiplied by s, with s = max|X_j|^alpha / max|W_j|^(1-alpha) over the
    calibration texts: the same product in float32, flatter activations, slightly wider weights (which
    are quantised per output channel). The Mul stays a node: these inputs also feed residual Adds, so
    it cannot be folded into the preceding LayerNorm."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    weights = {t.name: t for t in graph.initializer}
    inputs: dict[str, list] = {}
    for node in graph.node:
        if node.op_type == "MatMul" and node.input[1] in weights and len(weights[node.input[1]].dims) == 2:
            inputs.setdefault(node.input[0], []).append(node)
    if not inputs:
        return 0
    probe = type(model)()
    probe.CopyFrom(model)
    known = {o.name for o in probe.graph.output}
    probe.graph.output.extend(helper.make_tensor_value_info(x, TensorProto.FLOAT, None) for x in inputs if x not in known)
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    wanted = list(inputs)
    amax = {x: None for x in wanted}
    for feed in batches:
        for x, value in zip(wanted, session.run(wanted, feed)):
            m = np.abs(value.reshape(-1, value.shape[-1])).max(axis=0)
            amax[x] = m if amax[x] is None else np.maximum(amax[x], m)
    del session, probe
    position = {id(n): i for i, n in enumerate(graph.node)}
    uses: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    inserts = []
    for x, nodes in inputs.items():
        ws = [numpy_helper.to_array(weights[n.input[1]]) for n in nodes]
        shared = any(uses[n.input[1]] > 1 for n in nodes)  # a tied weight: scaling it would change its other use
        if shared or len({w.shape[0] for w in ws}) != 1 or amax[x] is None or amax[x].shape[0] != ws[0].shape[0]:
            continue
        wmax = np.max([np.abs(w).max(axis=1) for w in ws], axis=0)
        scale = (np.maximum(amax[x], 1e-5) ** alpha / np.maximum(wmax, 1e-5) ** (1 - alpha)).astype(np.float32)
        for node, w in zip(nodes, ws):
            weights[node.input[1]].CopyFrom(numpy_helper.from_array((w * scale[:, None]).astype(np.float32), node.input[1]))
        # (not "<x>_smooth_scale": the quantiser names its own tensors "<input>_scale", "<input>_zero_point")
        name, factor = f"{x}_smoothed", f"{x}_smoothing_factors"
        graph.initializer.append(numpy_helper.from_array((1.0 / scale).astype(np.float32), factor))
        inserts.append((min(position[id(n)] for n in nodes), helper.make_node("Mul", [x, factor], [name], name=name)))
        for node in nodes:
            node.input[0] = name
    for at, mul in sorted(inserts, key=lambda pair: -pair[0]):  # from the back, so earlier positions hold
        graph.node.insert(at, mul)
    return len(inserts)


def _agreement(float_file: Path, int8_file: Path, batches: list[dict]) -> float:
    """Mean cosine of the two models' embeddings over the calibration batches."""
    import onnxruntime as ort

    a = ort.InferenceSession(str(float_file), providers=["CPUExecutionProvider"])
    b = ort.InferenceSession(str(int8_file), providers=["CPUExecutionProvider"])
    cos = []
    for feed in batches:
        x, y = a.run(None, feed)[0], b.run(None, feed)[0]
        cos.extend(np.sum(x * y, axis=1) / np.maximum(np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1), 1e-12))
    return float(np.mean(cos))


class OnnxInt8Encoder:
    """The quantised export behind the slice of `SentenceTransformer`'s interface that `Embedder` uses."""

    def __init__(self, folder: Path, threads: int = 0):
        import onnxruntime as ort

        self.folder = folder
        self.meta = json.loads((folder / META_FILE).read_text())
        self.max_seq_length = int(self.meta["max_seq_length"])
        self.tokenizer = _fast_tokenizer(folder, self.max_seq_length)
        cpus = threads or usable_cpus()
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
        bigger ones on a CPU, while padding costs, in the attention's length-squared part most, and
        padded positions widen the per-tensor activation ranges. Measured on 980 real chunks, 2 runs
        side by side on 1 thread each, texts per 2 CPU-seconds: 1 text 138, 2 136, 4 128, 8 115
        (recipe 1 measured the same way: 8 texts 1.86x torch, 16 1.66x, 64 1.37x).
        """
        batch_size = min(batch_size, BATCH)
        out = np.empty((len(texts), self.get_sentence_embedding_dimension()), dtype=np.float32)
        order = np.argsort([-len(t) for t in texts], kind="stable")
        batches = _batched(order, batch_size)

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


def check_texts() -> list[str]:
    """The texts `index.int8_check` compares int8 with float32 on: the calibration's prose, other pieces."""
    return _calibration_texts(24, between=True)
