"""Resumable training checkpoints: trainable weights, optimizer, step, data position and RNG.

A checkpoint is a folder `step-000042/` written under a temporary name and renamed into place,
and `latest` (a one-line file, replaced atomically) names the newest one, so a crash mid-save
leaves the previous checkpoint usable. Only the trainable parameters are stored (the LoRA
adapter, or every weight for full fine-tuning); the frozen base is reloaded from its source.
Under FSDP the full (gathered) weights and optimizer state are stored instead, so a sharded run
can resume on another number of processes. Every rank stores its own RNG state so dropout draws
continue exactly where they stopped.
"""
from __future__ import annotations

import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from foundation.workspace import atomic_write_text

LATEST = "latest"


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(
    root: Path,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    trainer_state: dict[str, Any],
    *,
    rank: int = 0,
    world_size: int = 1,
    keep: int = 2,
    sharded: bool = False,
) -> Path:
    """Write checkpoint `step` (rank 0 writes weights + optimizer; every rank its RNG).

    `sharded` (FSDP): every rank joins in gathering full, unsharded weights and optimizer state,
    so the checkpoint can be resumed on any number of processes.
    """
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:06d}"
    tmp = root / f".step-{step:06d}.tmp"
    if sharded:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

        opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
        model_sd, optim_sd = get_state_dict(model, optimizer, options=opts)  # collective
        blob = {"model": model_sd, "optimizer": optim_sd, "trainer": trainer_state, "format": "full-state-dict"}
    elif rank == 0:
        blob = {"model": trainable_state(model), "optimizer": optimizer.state_dict(), "trainer": trainer_state}
    if rank == 0:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        torch.save(blob, tmp / "state.pt")
    if world_size > 1:
        torch.distributed.barrier()  # tmp exists before the other ranks write into it
    _atomic_torch_save(rng_state(), tmp / f"rng-rank{rank}.pt")
    if world_size > 1:
        torch.distributed.barrier()
    if rank == 0:
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        atomic_write_text(root / LATEST, final.name + "\n")
        for old in sorted(root.glob("step-*"))[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    if world_size > 1:
        torch.distributed.barrier()
    return final


def latest(root: Path) -> Path | None:
    marker = root / LATEST
    if not marker.exists():
        return None
    path = root / marker.read_text().strip()
    return path if (path / "state.pt").exists() else None


def load(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, *, rank: int = 0,
         sharded: bool = False) -> dict[str, Any]:
    """Restore weights, optimizer and this rank's RNG; return the trainer state (step, position, losses)."""
    blob = torch.load(path / "state.pt", map_location="cpu", weights_only=False)
    if sharded != (blob.get("format") == "full-state-dict"):
        raise ValueError(f"{path}: written by a {'FSDP' if not sharded else 'non-FSDP'} run; resume with the same --strategy")
    if sharded:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

        set_state_dict(model, optimizer, model_state_dict=blob["model"], optim_state_dict=blob["optimizer"],
                       options=StateDictOptions(full_state_dict=True))  # every rank keeps its own shard
        _restore_rng(path, rank)
        return blob["trainer"]
    params = dict(model.named_parameters())
    missing = [n for n in blob["model"] if n not in params]
    if missing:
        raise ValueError(f"{path}: checkpoint does not match this model (e.g. {missing[0]!r}); same --method/--base?")
    with torch.no_grad():
        for name, value in blob["model"].items():
            params[name].copy_(value.to(params[name].device, params[name].dtype))
    optimizer.load_state_dict(blob["optimizer"])
    _restore_rng(path, rank)
    return blob["trainer"]


def _restore_rng(path: Path, rank: int) -> None:
    rng_file = path / f"rng-rank{rank}.pt"
    if rng_file.exists():
        set_rng_state(torch.load(rng_file, weights_only=False))


def _atomic_torch_save(obj: Any, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
