"""Does the int8 embedder agree with float32 on *this* CPU? Checked once per machine, not once per export.

The export measures its cosine against float32 on the machine that exports it. But onnxruntime picks
its int8 kernels by the CPU it runs on (VNNI dot products, AVX2's saturating u8s8 multiply-add,
AVX-512, Arm dot products), so a model cache or workspace copied to another machine may give other
vectors there. The export therefore keeps float32 embeddings of fixed texts (`reference.npz`),
and the first load under each machine fingerprint (`foundation.machine`) encodes those texts with
the int8 model and compares; the verdict is stored beside the export (`checks/<fingerprint>.json`).
Below `MIN_COSINE` the int8 path is refused on that machine and the embedder falls back to float32.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Callable

import numpy as np

from foundation.machine import describe, fingerprint, fingerprint_key
from foundation.workspace import atomic_write_bytes, atomic_write_json

log = logging.getLogger(__name__)

REFERENCE_FILE = "reference.npz"
CHECKS_DIR = "checks"
MIN_COSINE = 0.99  # mean cosine against float32 on the check texts; the export itself measures 0.997-0.998
LIBRARIES = ("onnxruntime", "numpy", "tokenizers")


def write_reference(folder: Path, texts: list[str], vectors: np.ndarray) -> None:
    """Store the float32 embeddings of `texts` beside the export, for checks on other machines."""
    import io

    buffer = io.BytesIO()
    np.savez(buffer, vectors=np.asarray(vectors, dtype=np.float32), texts=np.asarray(texts, dtype=object))
    atomic_write_bytes(folder / REFERENCE_FILE, buffer.getvalue())


def read_reference(folder: Path) -> tuple[list[str], np.ndarray] | None:
    try:
        with np.load(folder / REFERENCE_FILE, allow_pickle=True) as data:
            return [str(t) for t in data["texts"]], np.asarray(data["vectors"], dtype=np.float32)
    except (OSError, KeyError, ValueError):
        return None


def machine_verdict(folder: Path, model_path: str, encoder, texts: Callable[[], list[str]] = list) -> dict:
    """The cached verdict for this machine, or a new one: encode the reference texts with `encoder` (the int8
    model) and compare with the stored float32 vectors. An older export lacks them: they are then made
    with torch in float32 for `texts()` (the texts a newer export stores) and kept."""
    machine = fingerprint(LIBRARIES)
    file = folder / CHECKS_DIR / f"{fingerprint_key(machine)}.json"
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pass
    start = time.perf_counter()
    reference = read_reference(folder)
    if reference is None:  # an export made before references were kept
        chosen = texts()
        reference = chosen, _torch_float32(model_path, chosen)
        write_reference(folder, *reference)
    checked, want = reference
    got = encoder.encode(checked, normalize_embeddings=True)
    want = want / np.maximum(np.linalg.norm(want, axis=1, keepdims=True), 1e-12)
    cosines = np.sum(got * want, axis=1)
    verdict = {
        "agrees": bool(np.mean(cosines) >= MIN_COSINE), "mean_cosine": round(float(np.mean(cosines)), 5),
        "min_cosine": round(float(np.min(cosines)), 5), "texts": len(checked), "threshold": MIN_COSINE,
        "machine": machine, "seconds": round(time.perf_counter() - start, 2), "checked_at": time.time(),
    }
    atomic_write_json(file, verdict)
    log.info("int8 embedder on %s: mean cosine %.4f against float32 (%s)", describe(machine),
             verdict["mean_cosine"], "agrees" if verdict["agrees"] else "disagrees: float32 is used")
    return verdict


def _torch_float32(model_path: str, texts: list[str]) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(model_path, device="cpu")
    return np.asarray(model.encode(texts, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False),
                      dtype=np.float32)
