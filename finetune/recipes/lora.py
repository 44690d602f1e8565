"""LoRA: the base stays frozen (bf16 on a GPU) and small low-rank adapters learn; ~1% of the weights train.

Saves the adapter (a few MB, re-mergeable onto another copy of the base) and a merged model that
serves without peft.
"""
from __future__ import annotations

import torch

from finetune import export, stages
from finetune.config import TrainConfig, TrainResult
from finetune.loop import train_loop
from finetune.modeling import add_lora, load_base
from finetune.runtime import Runtime


def build(config: TrainConfig, base_path: str, rt: Runtime):
    """The frozen base with a fresh adapter; the base may sit in bf16 since it gets no updates."""
    dtype = torch.bfloat16 if rt.autocast_dtype == torch.bfloat16 else torch.float32
    return add_lora(load_base(config, base_path, dtype), rank=config.lora_rank, alpha=config.lora_alpha,
                    dropout=config.lora_dropout, targets=config.lora_targets)


def recipe(config: TrainConfig, rt: Runtime) -> TrainResult:
    run = stages.prepare(config, rt)  # name, folder, tokenizer, data: bad data fails before the model loads
    session, state = stages.setup(config, rt, run, build(config, run.base_path, rt))  # load checkpoint when resuming
    stop = train_loop(session, state)
    result, model = stages.finish(session, run, state, stop, rebuild=lambda: build(config, run.base_path, rt))
    if model is not None:  # save (rank 0, and not after an early stop)
        result.adapter_path = export.save_adapter(model, run.out_dir / "adapter")  # before merging folds it in
        export.save_merged(model, run.tokenizer, run.out_dir / "model", is_peft=True)
        stages.publish(result, run, state, config)
    stages.cleanup(session, stop)
    return result
