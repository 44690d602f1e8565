"""The public entry point: `train(TrainConfig) -> TrainResult`, dispatching to the method's recipe.

    from finetune.train import TrainConfig, train
    result = train(TrainConfig(method="lora", qa=[Path("qa.jsonl")], workspace=Path("workspace")))

Each method is one readable recipe (`finetune.recipes.lora`, `finetune.recipes.full`) over the
same shared stages; this module checks the config, sets up the processes (torchrun: DDP/FSDP)
and turns an out-of-memory error into advice on which knobs lower memory.
"""
from __future__ import annotations

import torch

from finetune.config import METHODS, OutOfMemory, StepInfo, TrainConfig, TrainingError, TrainResult
from finetune.recipes import full, lora
from finetune.runtime import setup_runtime, teardown

__all__ = ["OutOfMemory", "StepInfo", "TrainConfig", "TrainResult", "TrainingError", "oom_advice", "train"]

RECIPES = {"lora": lora.recipe, "full": full.recipe}


def train(config: TrainConfig) -> TrainResult:
    """Run one fine-tuning job; out-of-memory becomes an `OutOfMemory` with advice."""
    if config.method not in METHODS:
        raise TrainingError(f"method must be 'lora' or 'full', got {config.method!r}")
    if config.batch_size < 1 or config.grad_accum < 1 or config.max_length < 8:
        raise TrainingError("batch_size and grad_accum must be >= 1 and max_length >= 8")
    rt = setup_runtime(config.device, config.precision)
    try:
        return RECIPES[config.method](config, rt)
    except torch.OutOfMemoryError as exc:
        raise OutOfMemory(oom_advice(config, exc)) from exc
    except RuntimeError as exc:
        if "out of memory" in str(exc).lower():
            raise OutOfMemory(oom_advice(config, exc)) from exc
        raise
    finally:
        teardown(rt)


def oom_advice(config: TrainConfig, exc: BaseException) -> str:
    """The knobs that lower memory, with values to try, for the message of `OutOfMemory`."""
    tips = []
    if config.batch_size > 1:
        tips.append(f"--batch-size {max(1, config.batch_size // 2)} --grad-accum {config.grad_accum * 2} (same effective batch)")
    if not config.grad_checkpointing:
        tips.append("--grad-checkpointing (recompute activations: ~30% slower, much less memory)")
    if config.method == "full":
        tips.append("--method lora (trains ~1% of the weights; no optimizer state for the rest)")
    tips.append(f"--max-length {max(64, config.max_length // 2)} (shorter sequences)")
    return "Out of memory while training: " + str(exc).splitlines()[0] + "\nTry: " + "; ".join(tips)
