"""Turning text into normalised vectors with a sentence-transformers model, loaded on first use.

The model is loaded lazily so that opening an index, listing documents or keyword search never
pays the model's load time. On a GPU the weights run in float16 (half the memory, about twice the
throughput, cosine scores equal to ~1e-3). On a CPU, backend "auto" takes the int8 ONNX path
(`index.onnx_embedding`: a whole ingest runs at 3.1x plain float32 `encode`) when onnxruntime is installed, else float32 torch.

The embedding path (model + backend + precision) is recorded in the index's manifest. The rule
(`search_compatible`, `append_compatible`): vectors of one model from torch (float32 or float16)
and from int8 ONNX have top-5 neighbour overlap >= 0.9 (tests/test_embedding_int8.py), so a query
embedded by either path may search an index built by the other; but the vectors *stored* in one
index all come from one backend, so an ingest with another backend is refused.
"""
from __future__ import annotations

import logging
import threading
from typing import Callable

import numpy as np

from foundation.devices import pick_device
from index.int8_check import machine_verdict
from index.onnx_embedding import (Int8Unavailable, OnnxInt8Encoder, check_texts, ensure_int8_export, export_cached,
                                  int8_available, require_int8)

log = logging.getLogger(__name__)

DEFAULT_BATCH = 64
BACKENDS = ("auto", "torch", "onnx-int8")
# Loaded models shared by every index in the process (the UI, the CLI and tests open several).
_MODELS: dict[tuple[str, str], object] = {}
_MODELS_LOCK = threading.Lock()


class Embedder:
    """A lazily loaded SentenceTransformer (or its int8 ONNX export) that returns float32 unit vectors."""

    def __init__(self, name: str, model_path: str, device: str = "auto", batch_size: int = DEFAULT_BATCH,
                 backend: str = "auto", forced: bool | None = None):
        """`forced`: the user asked for this backend (the default when `backend` is not "auto"); an index
        reopened with the backend that built it is not forced, so it may still fall back to float32."""
        if backend not in BACKENDS:
            raise ValueError(f"embed_backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
        self.name = name
        self.model_path = model_path
        self.requested_device = device
        self.requested_backend = backend
        self.forced = backend != "auto" if forced is None else forced
        self.batch_size = batch_size
        self._model = None
        self._backend: str | None = None  # resolved on first use; may fall back from onnx-int8 to torch
        self.fallback_reason = ""  # why the int8 path was not used, when it was asked for and is not
        self._lock = threading.Lock()

    @property
    def backend(self) -> str:
        """The backend that runs (or will run): "torch" or "onnx-int8"."""
        if self._backend is None:
            self._backend = choose_backend(self.requested_backend, pick_device(self.requested_device))
        return self._backend

    def path_record(self) -> dict:
        """What the index manifest stores about how its vectors were made."""
        if self.backend == "onnx-int8" and not self.loaded and not export_cached(self.model_path):
            self.model  # exports now, or falls back to torch: the record must say what will really run
        backend = self.backend
        if backend == "onnx-int8":
            precision = "int8"
        else:
            precision = "float16" if pick_device(self.requested_device).startswith("cuda") else "float32"
        return {"model": self.name, "backend": backend, "precision": precision}

    @property
    def check(self) -> dict | None:
        """The int8 path's agreement with float32 on this machine (None before it is loaded, or on torch)."""
        return getattr(self._model, "machine_check", None)

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def model(self):
        with self._lock:
            if self._model is None:
                self._model = self._load()
        return self._model

    def _load(self):
        device = pick_device(self.requested_device)
        if self.backend == "onnx-int8":
            try:
                return self._shared(("onnx-int8", self.model_path, "cpu"), self._load_int8)
            except Int8Unavailable as exc:
                if self.forced:
                    raise
                log.warning("int8 embedding path unavailable, using float32 torch: %s", exc)
                self._backend = "torch"
                self.fallback_reason = str(exc)
        return self._shared((self.model_path, device), lambda: self._load_on(device))

    @staticmethod
    def _shared(key: tuple[str, ...], load: Callable[[], object]):
        with _MODELS_LOCK:
            if key not in _MODELS:
                _MODELS[key] = load()
            return _MODELS[key]

    def _load_int8(self):
        """The int8 export, once its agreement with float32 holds on this CPU (`index.int8_check`)."""
        folder = ensure_int8_export(self.model_path)
        encoder = OnnxInt8Encoder(folder)
        verdict = encoder.machine_check = machine_verdict(folder, self.model_path, encoder, check_texts)
        if not verdict["agrees"]:
            problem = (f"the int8 export of {self.name} disagrees with float32 on this CPU (mean cosine "
                       f"{verdict['mean_cosine']:.4f} < {verdict['threshold']})")
            if not self.forced:
                raise Int8Unavailable(problem)
            log.warning("%s; using it because embed_backend = onnx-int8 forces it", problem)
        log.info("Loaded embedder %s as int8 ONNX from %s (mean cosine %.4f against float32 on this CPU)",
                 self.name, folder, verdict["mean_cosine"])
        return encoder

    def _load_on(self, device: str):
        from sentence_transformers import SentenceTransformer

        try:
            model = SentenceTransformer(self.model_path, device=device)
        except OSError as exc:
            raise RuntimeError(
                f"Could not load the embedder {self.name!r} from {self.model_path!r}: {exc}. "
                "Without network access it must be a local folder or already in the Hugging Face cache."
            ) from exc
        if device.startswith("cuda"):
            model.half()  # fp16 inference: 2x throughput, scores unchanged to ~1e-3
        log.info("Loaded embedder %s on %s", self.name, device)
        return model

    @property
    def dimension(self) -> int:
        get = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        return int(get())

    @property
    def max_seq_length(self) -> int:
        return int(getattr(self.model, "max_seq_length", 512) or 512)

    def encode(self, texts: list[str], *, progress: bool | Callable[[int, int], None] = False) -> np.ndarray:
        """Unit-norm float32 rows, one per text, in input order.

        Texts are encoded in slices of a few batches so a callback can report progress; each
        slice is sorted by length inside `encode`, which keeps padding low.
        """
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        model = self.model
        show_bar = progress is True and len(texts) > self.batch_size * 4
        if not callable(progress):
            vecs = model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                convert_to_numpy=True, show_progress_bar=show_bar)
            return np.ascontiguousarray(vecs, dtype=np.float32)
        # Sort all texts by length once (longest first, so memory peaks early), encode in slices for
        # progress, then restore the input order: batches hold similar lengths and little padding.
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        step = self.batch_size * 8
        for start in range(0, len(texts), step):
            rows = order[start:start + step]
            out[rows] = model.encode([texts[i] for i in rows], batch_size=self.batch_size,
                                     normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
            progress(min(start + step, len(texts)), len(texts))
        return out


def choose_backend(requested: str, device: str) -> str:
    """"auto" is int8 ONNX on a CPU when onnxruntime is installed, else torch (GPUs use float16 torch)."""
    if requested == "onnx-int8":
        require_int8()
        return "onnx-int8"
    if requested == "torch":
        return "torch"
    return "onnx-int8" if device == "cpu" and int8_available() else "torch"


def follow_backend(recorded: str) -> str:
    """The backend to reopen an index with under "auto": the one that built it, or torch (search-compatible,
    see above) when the int8 runtime is missing here; an ingest then says what to install."""
    return recorded if recorded != "onnx-int8" or int8_available() else "torch"


def search_compatible(built: dict, query: dict) -> bool:
    """May vectors made by path `query` search an index built by path `built`? Same model is enough."""
    return built.get("model") == query.get("model")


def append_compatible(built: dict, new: dict) -> bool:
    """May vectors made by path `new` be stored beside those of `built`? Same model and backend."""
    return search_compatible(built, new) and built.get("backend", "torch") == new.get("backend")
