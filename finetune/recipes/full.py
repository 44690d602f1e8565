"""Full fine-tuning: every weight trains, in fp32 master weights (bf16 autocast on a GPU).

More capacity than LoRA for a domain far from the base, at ~4x the memory (AdamW keeps two
moments per weight); under torchrun, FSDP shards weights, gradients and optimizer state.
"""
from __future__ import annotations

import torch

from finetune import export, stages
from finetune.config import TrainConfig, TrainResult
from finetune.loop import train_loop
from finetune.modeling import load_base
from finetune.runtime import Runtime


def build(config: TrainConfig, base_path: str, rt: Runtime):
    """The base in fp32: updates smaller than bf16's precision would otherwise be lost."""
    return load_base(config, base_path, torch.float32)


def recipe(config: TrainConfig, rt: Runtime) -> TrainResult:
    run = stages.prepare(config, rt)  # name, folder, tokenizer, data: bad data fails before the model loads
    session, state = stages.setup(config, rt, run, build(config, run.base_path, rt))  # load checkpoint when resuming
    stop = train_loop(session, state)
    result, model = stages.finish(session, run, state, stop, rebuild=lambda: build(config, run.base_path, rt))
    if model is not None:  # save (rank 0, and not after an early stop)
        export.save_merged(model, run.tokenizer, run.out_dir / "model", is_peft=False)
        stages.publish(result, run, state, config)
    stages.cleanup(session, stop)
    return result
