"""The training loop every recipe shares: steps, gradient accumulation, validation, stops, checkpoints.

The loss of a step is divided by the number of target tokens in the whole global batch (all
ranks, all micro-batches), so N processes with micro-batch B, or one process accumulating N
micro-batches of B, follow the same trajectory as one process with micro-batch N*B.

The loop knows nothing of the method (LoRA or full): the recipe hands it a `Session` with the
model already built, wrapped and given an optimizer.
"""
from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from finetune import checkpoint
from finetune.batches import micro_batches, target_count
from finetune.config import StepInfo, TrainConfig
from finetune.data import Dataset, Example
from finetune.evaluate import collate, perplexity, summed_loss
from finetune.interrupt import StopFlag, ctrl_c_stops_after_step
from finetune.modeling import unwrap_ddp
from finetune.optim import lr_at, set_lr
from finetune.progress import Progress, eta_seconds
from finetune.runtime import Runtime, estimate_mfu, flops_per_token


@dataclass
class LoopState:
    """Where training stands. Saved whole in every checkpoint, so a resumed run continues exactly."""

    step: int = 0  # optimizer steps done
    tokens: int = 0  # non-padding tokens trained on, all ranks
    seconds: float = 0.0  # time spent in optimizer steps (evaluation and checkpoints excluded)
    losses: list[float] = field(default_factory=list)  # training loss per step
    val_losses: list[tuple[int, float]] = field(default_factory=list)  # (step, validation loss)
    best_val_loss: float | None = None
    fingerprint: str = ""  # the training data's; resuming on other data is refused

    def to_checkpoint(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_checkpoint(cls, saved: dict[str, Any]) -> "LoopState":
        known = {f.name for f in dataclasses.fields(cls)}
        state = cls(**{k: v for k, v in saved.items() if k in known})
        state.val_losses = [tuple(v) for v in state.val_losses]
        return state


@dataclass
class Session:
    """Everything the loop needs, set up once by a recipe."""

    config: TrainConfig
    rt: Runtime
    model: Any  # the model itself: checkpoints, evaluation and saving see this one
    trained: Any  # what the forward pass runs through: the DDP wrapper, the FSDP-sharded model, or `model`
    optimizer: torch.optim.Optimizer
    data: Dataset
    pad_id: int
    total_steps: int
    steps_per_epoch: int
    ckpt_root: Path
    sizes: tuple[int, int, int, int]  # total params, trainable params, layers, hidden: for the FLOP estimate
    sharded: bool  # FSDP: every rank joins each evaluation and checkpoint
    params: list[torch.nn.Parameter] = field(default_factory=list)  # the trainable ones, for gradient clipping


def train_loop(s: Session, state: LoopState) -> str:
    """Optimizer steps from `state.step` to the end; returns why it stopped early ("" when it ran to the end)."""
    first, seconds0 = state.step, state.seconds
    progress = Progress(s.total_steps, first, main=s.rt.is_main, bar=s.config.progress)
    s.trained.train()
    try:
        with ctrl_c_stops_after_step() as ctrl_c:
            while state.step < s.total_steps:
                info = train_step(s, state)
                info.eta_s = eta_seconds(state.step, s.total_steps, state.step - first, state.seconds - seconds0)
                progress.update(info)
                validate(s, state, progress)
                reason = stop_reason(s, state, info, first, ctrl_c)
                if reason or wants_checkpoint(s.config, state.step, s.total_steps):
                    save_checkpoint(s, state)
                if reason:
                    return reason
    finally:
        progress.close()
    return ""


def train_step(s: Session, state: LoopState) -> StepInfo:
    """One optimizer step over this rank's micro-batches; advances `state` and returns what callbacks see."""
    cfg, rt = s.config, s.rt
    t0 = time.perf_counter()
    lr = lr_at(state.step, s.total_steps, cfg.resolved_lr(), cfg.warmup_steps)
    set_lr(s.optimizer, lr)
    micro = micro_batches(s.data.train, state.step, batch_size=cfg.batch_size, grad_accum=cfg.grad_accum,
                          rank=rt.rank, world_size=rt.world_size, seed=cfg.seed)
    n_targets = rt.all_reduce_sum(target_count(micro))
    loss_sum, tokens, width = accumulate_gradients(s, micro, n_targets)
    if cfg.max_grad_norm > 0:
        torch.nn.utils.clip_grad_norm_(s.params, cfg.max_grad_norm)
    s.optimizer.step()
    s.optimizer.zero_grad(set_to_none=True)
    if rt.device.type == "cuda":
        torch.cuda.synchronize(rt.device)
    dt_s = time.perf_counter() - t0
    step_loss = rt.all_reduce_sum(loss_sum) / max(n_targets, 1)
    step_tokens = int(rt.all_reduce_sum(tokens))
    state.step += 1
    state.losses.append(step_loss)
    state.tokens += step_tokens
    state.seconds += dt_s
    tps = step_tokens / max(dt_s, 1e-9)
    n_total, n_trainable, layers, hidden = s.sizes
    mfu = estimate_mfu(flops_per_token(n_total, layers, hidden, width, n_trainable / n_total), tps, rt.device, rt.world_size)
    return StepInfo(state.step, s.total_steps, step_loss, lr, tps, mfu, state.step / s.steps_per_epoch, dt_s, step_tokens)


def accumulate_gradients(s: Session, micro: list[list[Example]], n_targets: float) -> tuple[float, int, int]:
    """Forward and backward over each micro-batch; DDP syncs gradients on the last one only.

    Returns the summed loss, the non-padding tokens and the widest batch (for the FLOP estimate).
    """
    rt = s.rt
    loss_sum, tokens, width = 0.0, 0, 0
    for m, mb in enumerate(micro):
        batch = collate(mb, s.pad_id, rt.device)
        last = m == len(micro) - 1
        no_sync = rt.distributed and not last and hasattr(s.trained, "no_sync")
        with s.trained.no_sync() if no_sync else contextlib.nullcontext():
            with rt.autocast():
                loss, _ = summed_loss(s.trained, batch)
            (loss * rt.world_size / max(n_targets, 1)).backward()
        loss_sum += float(loss.detach())
        tokens += int(batch["attention_mask"].sum())
        width = max(width, batch["input_ids"].shape[1])
    return loss_sum, tokens, width


def validate(s: Session, state: LoopState, progress: Progress) -> None:
    """Validation loss every `eval_every` steps (on rank 0, or on every rank when sharded)."""
    cfg, rt = s.config, s.rt
    if not (cfg.eval_every and state.step % cfg.eval_every == 0 and s.data.val and (rt.is_main or s.sharded)):
        return
    val = perplexity(unwrap_ddp(s.model), s.data.val, s.pad_id, batch_size=cfg.batch_size, device=rt.device, autocast=rt.autocast)
    state.val_losses.append((state.step, val["loss"]))
    state.best_val_loss = min(val["loss"], state.best_val_loss if state.best_val_loss is not None else val["loss"])
    progress.write(f"step {state.step}: validation loss {val['loss']:.4f} (ppl {val['perplexity']:.2f})")


def stop_reason(s: Session, state: LoopState, info: StepInfo, first_step: int, ctrl_c: StopFlag) -> str:
    """Why to stop after this step ("" = go on); every rank agrees, so all join the checkpoint."""
    reason = ""
    try:
        if any(bool(cb(info)) for cb in s.config.callbacks):
            reason = "callback"
    except KeyboardInterrupt:  # raised by a callback (or Ctrl-C inside one): the step itself is whole
        reason = "interrupted"
    if not reason and s.config.stop_after_steps and state.step - first_step >= s.config.stop_after_steps:
        reason = "stop_after_steps"
    if ctrl_c.requested:
        reason = "interrupted"
    if s.rt.all_reduce_sum(float(bool(reason))) > 0:
        return reason or "stopped by another rank"
    return ""


def wants_checkpoint(cfg: TrainConfig, step: int, total_steps: int) -> bool:
    return bool(cfg.save_every and step % cfg.save_every == 0 and step < total_steps)


def save_checkpoint(s: Session, state: LoopState) -> Path:
    rt = s.rt
    return checkpoint.save(s.ckpt_root, state.step, s.model, s.optimizer, state.to_checkpoint(), rank=rt.rank,
                           world_size=rt.world_size, sharded=s.sharded)
