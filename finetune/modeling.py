"""The model a recipe trains: tokenizer and base weights, a LoRA adapter, DDP/FSDP wrapping, gathering.

Shared by the LoRA and full recipes (and DPO's adapter); each recipe picks the pieces it needs,
so no function here asks which method is running.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from finetune.config import TrainConfig, TrainingError
from finetune.runtime import Runtime
from foundation.model_paths import resolve_generator

# transformers 5 warns about its own deprecated helper whenever peft checks for gradient
# checkpointing; the user can do nothing about it, so it is not shown.
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)

PEFT_HINT = "LoRA needs peft: pip install 'domain-assistant[finetune]'"


def load_tokenizer(config: TrainConfig) -> tuple[str, Any]:
    """Resolve the base model's location and load its tokenizer (cheap: data is checked before the model loads)."""
    from transformers import AutoTokenizer

    path = resolve_generator(config.base, Path(config.workspace) if config.workspace else None)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except OSError as exc:
        raise TrainingError(f"cannot load base model {config.base!r} ({path}): {exc}") from exc
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return path, tokenizer


def load_base(config: TrainConfig, path: str, dtype: torch.dtype):
    """The base model from `path` (SDPA attention, no KV cache), with activation recomputation if asked."""
    from transformers import AutoModelForCausalLM

    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, attn_implementation="sdpa")
    except OSError as exc:
        raise TrainingError(f"cannot load base model {config.base!r} ({path}): {exc}") from exc
    model.config.use_cache = False
    if config.grad_checkpointing:
        kwargs = {"use_reentrant": False}  # non-reentrant: works with frozen inputs (LoRA) and DDP
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x name
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    return model


def add_lora(model, *, rank: int, alpha: int | None, dropout: float, targets: str | list[str]):
    """Freeze `model` and give it a fresh low-rank adapter (zero-initialised: the model is unchanged at first)."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as exc:
        raise TrainingError(PEFT_HINT) from exc
    lora = LoraConfig(r=rank, lora_alpha=alpha or 2 * rank, lora_dropout=dropout, target_modules=targets, task_type="CAUSAL_LM")
    return get_peft_model(model, lora)


def wrap_distributed(model, config: TrainConfig, rt: Runtime):
    """DDP (replicate) or FSDP (shard each decoder layer, then the rest) under torchrun; the model itself otherwise."""
    if not rt.distributed:
        return model
    if config.strategy == "ddp":
        from torch.nn.parallel import DistributedDataParallel as DDP

        return DDP(model, device_ids=[rt.device.index] if rt.device.type == "cuda" else None)
    if config.strategy == "fsdp":
        from torch.distributed.fsdp import fully_shard

        layers = getattr(getattr(unwrap_peft(model), "model", None), "layers", None)
        for layer in layers or []:
            fully_shard(layer)
        fully_shard(model)
        return model
    raise TrainingError(f"strategy must be ddp or fsdp, got {config.strategy!r}")


def is_sharded(config: TrainConfig, rt: Runtime) -> bool:
    """FSDP under torchrun: every rank must join each forward pass, checkpoint and gather."""
    return rt.distributed and config.strategy == "fsdp"


def gather_unsharded(model, rt: Runtime, build_plain: Callable[[], Any]):
    """FSDP: collect the full weights (a collective: every rank calls it) into a plain CPU model on rank 0.

    `build_plain` makes an unsharded model of the same shape (the recipe's own builder).
    """
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if not rt.is_main:
        return None
    plain = build_plain()
    missing, unexpected = plain.load_state_dict(state, strict=False)
    tied = {k for k in missing if "lm_head" in k}  # tied to the embeddings, restored by tie_weights
    if set(missing) - tied or unexpected:
        raise TrainingError(f"FSDP gather did not match the model: missing {sorted(set(missing) - tied)[:3]}, unexpected {unexpected[:3]}")
    if hasattr(plain, "tie_weights"):
        plain.tie_weights()
    return plain


def unwrap_peft(model):
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def unwrap_ddp(model):
    return getattr(model, "module", model)


def sizes(model) -> tuple[int, int, int, int]:
    """(total params, trainable params, layers, hidden size): what the FLOP estimate needs."""
    n_total = sum(p.numel() for p in model.parameters())
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    cfg = unwrap_peft(model).config
    return n_total, n_trainable, getattr(cfg, "num_hidden_layers", 0), getattr(cfg, "hidden_size", 0)
