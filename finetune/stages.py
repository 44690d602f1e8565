"""The stages every recipe shares: prepare the run, set it up, resume, evaluate, and publish or stop.

A recipe (`finetune.recipes.lora`, `finetune.recipes.full`) calls these in order and adds what is
its own: how the model is built and which weights are saved. Nothing here asks which method runs.
"""
from __future__ import annotations

import datetime as dt
import logging
import math
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from finetune import checkpoint, export
from finetune.config import LOG_HINT, TrainConfig, TrainingError, TrainResult
from finetune.data import Dataset, build_dataset, load_index_chunks
from finetune.evaluate import perplexity, qa_scores
from finetune.loop import LoopState, Session
from finetune.modeling import gather_unsharded, is_sharded, load_tokenizer, sizes, unwrap_ddp, wrap_distributed
from finetune.optim import make_optimizer
from finetune.registry import Registry, check_name
from finetune.runtime import Runtime, describe

log = logging.getLogger("finetune")


@dataclass
class Run:
    """A run's identity and inputs, settled before any model loads (so bad data fails fast)."""

    name: str
    out_dir: Path
    base_path: str
    tokenizer: Any
    data: Dataset
    metrics: dict[str, Any]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def prepare(config: TrainConfig, rt: Runtime) -> Run:
    """Seed, name the run, refuse a name clash, load the tokenizer and build the data set."""
    seed_everything(config.seed)
    name = check_name(config.name or f"{config.method}-{dt.datetime.now(dt.timezone.utc):%Y%m%d-%H%M%S}")
    out_dir = output_dir(config, name)
    if config.workspace and config.register and rt.is_main and not config.overwrite and not config.resume:
        if name in Registry(config.workspace).list():
            raise TrainingError(f"a model named {name!r} is already registered; pick another --name or pass --overwrite")
    base_path, tokenizer = load_tokenizer(config)
    return Run(name, out_dir, base_path, tokenizer, load_data(config, tokenizer), {})


def output_dir(config: TrainConfig, name: str) -> Path:
    if config.output:
        return Path(config.output)
    if config.workspace:
        return Path(config.workspace) / "models" / name
    raise TrainingError("give an output folder (--output) or a workspace to save the run in")


def load_data(config: TrainConfig, tokenizer) -> Dataset:
    """Every source the config names, the conversation log through the injected `log_reader`."""
    log_records = config.log_records
    if config.from_log:
        if not config.workspace:
            raise TrainingError("from_log needs a workspace whose conversation log to read")
        if config.log_reader is None:
            raise TrainingError(LOG_HINT)
        log_records = list(log_records or []) + list(config.log_reader(Path(config.workspace)))
    index_docs = []
    if config.from_index:
        if not config.workspace:
            raise TrainingError("from_index needs a workspace whose index to read")
        index_docs = load_index_chunks(Path(config.workspace))
    return build_dataset(
        tokenizer, docs=config.docs, qa=config.qa, logs=config.logs, log_records=log_records, documents=index_docs,
        max_length=config.max_length, val_fraction=config.val_fraction,
    )


def setup(config: TrainConfig, rt: Runtime, run: Run, model) -> tuple[Session, LoopState]:
    """Put the model on the device, score the base, wrap it for DDP/FSDP, make the optimizer and the schedule;
    then load the checkpoint when resuming."""
    model = model.to(rt.device)
    counts = sizes(model)
    run.metrics.update(world_size=rt.world_size, device=describe(rt), trainable_params=counts[1], total_params=counts[0])
    if rt.is_main:
        log.info("%s: %s on %s, %d/%d trainable params, %s", run.name, config.method, describe(rt), counts[1], counts[0],
                 run.data.stats)
        run.metrics["base"] = evaluate(model, run, config, rt)
    rt.barrier()
    trained = wrap_distributed(model, config, rt)
    params = [p for p in model.parameters() if p.requires_grad]  # after wrapping: FSDP swaps in sharded parameters
    optimizer = make_optimizer(params, lr=config.resolved_lr(), weight_decay=config.weight_decay, device=rt.device)
    global_batch = config.batch_size * config.grad_accum * rt.world_size
    steps_per_epoch = max(1, math.ceil(len(run.data.train) / global_batch))
    total_steps = config.max_steps or max(1, math.ceil(config.epochs * steps_per_epoch))
    session = Session(config, rt, model, trained, optimizer, run.data, run.tokenizer.pad_token_id, total_steps,
                      steps_per_epoch, run.out_dir / "checkpoints", counts, is_sharded(config, rt), params)
    return session, load_checkpoint(session)


def load_checkpoint(s: Session) -> LoopState:
    """A fresh state, or (with `resume`) the latest checkpoint's weights, optimizer, RNG and state."""
    fresh = LoopState(fingerprint=s.data.fingerprint)
    latest = checkpoint.latest(s.ckpt_root) if s.config.resume else None
    if latest is None:
        return fresh
    state = LoopState.from_checkpoint(checkpoint.load(latest, s.model, s.optimizer, rank=s.rt.rank, sharded=s.sharded))
    if state.fingerprint != fresh.fingerprint:
        raise TrainingError(f"{latest}: the training data changed since this checkpoint; resume needs the same data")
    if s.rt.is_main:
        log.info("resumed from %s at step %d", latest, state.step)
    return state


def evaluate(model, run: Run, config: TrainConfig, rt: Runtime) -> dict[str, Any]:
    """Held-out loss and perplexity, and exact match / F1 of greedy answers to held-out Q&A."""
    eval_model = unwrap_ddp(model)
    out: dict[str, Any] = {}
    data = run.data
    if data.val:
        out.update(perplexity(eval_model, data.val, run.tokenizer.pad_token_id, batch_size=config.batch_size,
                              device=rt.device, autocast=rt.autocast))
    chats = data.val_chats[: config.eval_qa_examples]
    if chats and config.eval_qa_examples > 0:
        eval_model.config.use_cache = True
        with rt.autocast():
            out.update(qa_scores(eval_model, run.tokenizer, chats, max_new_tokens=config.eval_max_new_tokens,
                                 device=rt.device, progress=config.progress and rt.is_main))
        eval_model.config.use_cache = False
    return out


def finish(s: Session, run: Run, state: LoopState, stop: str, rebuild: Callable[[], Any]) -> tuple[TrainResult, Any]:
    """The result, and the trained model to save (rank 0; None elsewhere, and None after an early stop).

    An early stop leaves the checkpoint as the product: nothing is evaluated, saved or registered.
    Otherwise the tuned model is scored; under FSDP every rank joins and rank 0 gets the gathered full model.
    """
    result = TrainResult(run.name, run.out_dir, None, None, run.metrics, state.losses, list(state.val_losses),
                         bool(stop), run.data.fingerprint, run.data.stats, stop)
    if stop:
        if s.rt.is_main:
            log.warning("%s", result.resume_hint)
        return result, None
    model = s.model
    if s.sharded or s.rt.is_main:
        run.metrics["tuned"] = evaluate(s.model, run, s.config, s.rt)
    if s.sharded:
        model = gather_unsharded(s.model, s.rt, rebuild)
    return result, model if s.rt.is_main else None


def publish(result: TrainResult, run: Run, state: LoopState, config: TrainConfig) -> TrainResult:
    """Metrics, config, loss curve and card beside the saved weights; then the registry entry (rank 0)."""
    result.model_path = run.out_dir / "model"
    losses = state.losses
    run.metrics.update(
        steps=state.step, tokens=state.tokens, seconds=round(state.seconds, 2),
        tokens_per_s=round(state.tokens / max(state.seconds, 1e-9), 1),
        train_loss_first=losses[0] if losses else None, train_loss_last=losses[-1] if losses else None,
    )
    created = export.save_run_files(result, config.to_json(), base=config.base, base_path=run.base_path,
                                    method=config.method, data_stats=run.data.stats)
    if config.workspace and config.register:
        Registry(config.workspace).register(
            result.name, result.model_path, base=config.base, method=config.method, metrics=export.headline(result.metrics),
            data_fingerprint=result.data_fingerprint, adapter_path=result.adapter_path, created_at=created,
            make_current=config.use,
        )
    return result


def cleanup(s: Session, stop: str) -> None:
    """Checkpoints hold optimizer state (large): gone after a finished run unless asked to keep them."""
    if stop:  # the checkpoint is what a stopped run leaves for --resume
        return
    if s.rt.is_main and not s.config.keep_checkpoints:
        shutil.rmtree(s.ckpt_root, ignore_errors=True)
    s.rt.barrier()
