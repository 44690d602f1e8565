"""The served passage ranker trained on a workspace: a query encoder adapted to its documents.

`finetune.recipes.ranker` fine-tunes the query side of the bundled embedder on questions made from
the workspace's own headings and sentences, against the passage vectors the index already holds
(an asymmetric dual encoder: the index is never re-embedded). At search time it re-scores the
fused top hits: each passage's rank by the adapted query's cosine is fused with its rank in the
hybrid order (reciprocal rank fusion, k = 60), so the ranker moves passages within what keyword and
dense search found rather than throwing their agreement away. A query costs one MiniLM forward pass
on the query alone (~10 ms), not one per passage as a cross-encoder would.

A ranker folder holds the encoder (a Hugging Face BERT folder) and `ranker.json`: its kind, the
fusion, and whether int8 (torch dynamic quantisation of the Linear layers) agreed with float32 on
the held-out pairs; int8 serves only then. `reranker = "auto"` (the default) means "the ranker the
workspace's registry serves, if any", so an index with no trained ranker pays nothing.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from foundation.model_paths import read_registry

AUTO = "auto"
RANKER_META = "ranker.json"
QUERY_ENCODER = "query-encoder"  # the kind of ranker this module serves
RRF_K = 60
QUERY_TOKENS = 64  # questions are short; longer ones are cut


def served_ranker_path(workspace: Path) -> Path | None:
    """The folder of the ranker the workspace's registry serves (`current_ranker`), or None."""
    try:
        data = read_registry(workspace)
    except ValueError:  # a broken registry is reported by the commands that manage it; search goes on
        return None
    name = data.get("current_ranker")
    entry = data.get("rankers", {}).get(name) if name else None
    if not entry:
        return None
    path = Path(entry["path"])
    path = path if path.is_absolute() else Path(workspace) / "models" / path
    return path if (path / RANKER_META).exists() else None


def ranker_setting(setting: str, index_dir: Path) -> str:
    """A `reranker` setting made concrete: "auto" -> the served ranker's folder or "" (none)."""
    if setting.strip().lower() != AUTO:
        return setting
    found = served_ranker_path(Path(index_dir).parent)  # the index lives in WORKSPACE/index
    return str(found) if found else ""


def read_meta(folder: Path) -> dict:
    """`ranker.json` beside a trained ranker's weights ({} for anything else, e.g. a cross-encoder id)."""
    file = Path(folder) / RANKER_META
    try:
        return json.loads(file.read_text(encoding="utf-8")) if file.exists() else {}
    except (OSError, json.JSONDecodeError):
        return {}


class QueryEncoder:
    """MiniLM's mean-pooled, normalised sentence vector, as a torch module that can be trained or served."""

    def __init__(self, path: str | os.PathLike[str], *, device: str = "cpu", int8: bool = False):
        import torch  # the ranker is optional: torch loads only when one is trained or served
        from transformers import AutoModel, AutoTokenizer

        self.path = str(path)
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        model = AutoModel.from_pretrained(self.path)
        if int8:
            model = torch.ao.quantization.quantize_dynamic(model.eval(), {torch.nn.Linear}, dtype=torch.qint8)
        self.model = model.to(device)
        self.device = device
        self.int8 = int8

    def forward(self, queries: Sequence[str]):
        """(B, d) unit vectors, with gradients when the model is in training mode."""
        import torch.nn.functional as F  # noqa: N812 - torch is loaded by __init__

        enc = self.tokenizer(list(queries), truncation=True, max_length=QUERY_TOKENS, padding=True,
                             return_tensors="pt").to(self.device)
        hidden = self.model(**enc).last_hidden_state  # (B, T, d)
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return F.normalize(pooled, dim=-1)

    def encode(self, queries: Sequence[str]) -> np.ndarray:
        import torch  # loaded by __init__

        with torch.inference_mode():
            return self.forward(queries).float().cpu().numpy()

    def save(self, folder: Path) -> None:
        self.model.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)


def fuse_with_order(scores: Sequence[float]) -> list[float]:
    """Reciprocal rank fusion of the given order (position i = the hybrid rank) with the order by `scores`."""
    by_score = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    rank = np.empty(len(by_score), dtype=np.int64)
    rank[by_score] = np.arange(1, len(by_score) + 1)
    return [1.0 / (RRF_K + i + 1) + 1.0 / (RRF_K + int(rank[i])) for i in range(len(rank))]


class WorkspaceRanker:
    """Loads a trained ranker folder and re-scores candidates given their stored passage vectors."""

    def __init__(self, folder: str | os.PathLike[str], *, device: str = "cpu"):
        self.folder = Path(folder)
        self.meta = read_meta(self.folder)
        if self.meta.get("kind") != QUERY_ENCODER:
            raise ValueError(f"{self.folder}: not a workspace ranker (ranker.json kind {self.meta.get('kind')!r})")
        self.encoder = QueryEncoder(self.folder, device=device, int8=bool(self.meta.get("int8_agrees")) and device == "cpu")

    def scores(self, query: str, vectors: np.ndarray) -> list[float]:
        """Fused scores for candidates in hybrid order (rows of `vectors`, unit passage vectors)."""
        sims = np.asarray(vectors, dtype=np.float32) @ self.encoder.encode([query])[0]
        return fuse_with_order(sims.tolist())
