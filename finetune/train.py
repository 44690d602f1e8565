"""The training recipe: LoRA or full fine-tuning of a causal LM, on one device or many.

One function, `train(TrainConfig) -> TrainResult`, with the stages of a torchtune recipe:
load the base, build the data, evaluate the base, train (accumulating gradients, checkpointing),
evaluate again, save adapter + merged model + card, register in the workspace.

The same code runs under `torchrun --nproc_per_node=N` (DDP, or FSDP for models that do not fit
one device): every rank takes its slice of each global batch, and the loss is divided by the
number of target tokens in the whole global batch, so N processes with micro-batch B follow the
same trajectory as one process with micro-batch N*B.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from finetune import checkpoint
from finetune.data import Dataset, Example, build_dataset
from finetune.evaluate import collate, perplexity, plot_losses, qa_scores, summed_loss
from finetune.runtime import Runtime, describe, estimate_mfu, flops_per_token, setup_runtime, teardown

log = logging.getLogger(__name__)

PEFT_HINT = "LoRA needs peft: pip install 'domain-assistant[finetune]'"


class TrainingError(RuntimeError):
    """Training could not run; the message says what to change."""


class OutOfMemory(TrainingError):
    """The device ran out of memory; the message lists the knobs that lower memory."""


@dataclass
class StepInfo:
    """What callbacks see after each optimizer step. Return True from a callback to stop (after a checkpoint)."""

    step: int
    total_steps: int
    loss: float
    lr: float
    tokens_per_s: float
    mfu: float | None
    epoch: float
    seconds: float = 0.0  # wall time of this step (all micro-batches, optimizer included)
    tokens: int = 0  # non-padding tokens processed in this step, all ranks


@dataclass
class TrainConfig:
    # What to train
    base: str = "smollm2"  # "smollm2" (bundled), a registry name, a HF id or a local folder
    method: str = "lora"  # lora: ~1% of weights, small memory, fast; full: every weight, more capacity, ~4x memory
    # Data (at least one source)
    docs: list[Path] = field(default_factory=list)  # text files/folders: continued pre-training, packed
    qa: list[Path] = field(default_factory=list)  # {"question","answer"} or {"messages"} JSONL: SFT
    logs: list[Path] = field(default_factory=list)  # conversation log exports (JSONL)
    log_records: list[dict[str, Any]] | None = None  # the same, already in memory
    from_log: bool = False  # export WORKSPACE's conversation log (rated messages) and train on it
    from_index: bool = False  # the text of WORKSPACE's indexed chunks (any format ingest reads), packed like docs
    val_fraction: float = 0.1  # held out by content hash; more = steadier metrics, less to learn from
    max_length: int = 512  # tokens per sequence; memory and time grow with it (attention quadratically)
    # Optimisation
    epochs: float = 3.0  # passes over the training set (fractions allowed); ignored when max_steps is set
    max_steps: int | None = None  # exact number of optimizer steps; overrides epochs
    lr: float | None = None  # None = 2e-4 for LoRA, 2e-5 for full: full tuning diverges at LoRA rates
    warmup_steps: int = 0  # linear warm-up, then cosine decay to 10% of lr
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0  # clip; 0 disables
    batch_size: int = 4  # sequences per device per micro-batch: the main memory knob
    grad_accum: int = 1  # micro-batches per optimizer step: larger effective batch at no memory cost
    grad_checkpointing: bool = False  # recompute activations in backward: ~30% slower, far less memory
    # LoRA
    lora_rank: int = 16  # higher increases capacity and memory
    lora_alpha: int | None = None  # None = 2 * rank; scales the update
    lora_dropout: float = 0.05
    lora_targets: str | list[str] = "all-linear"  # which Linear layers get adapters
    # Where and how
    device: str = "auto"  # auto (cuda -> mps -> cpu) | cpu | cuda | cuda:1
    precision: str = "auto"  # auto (bf16 on GPU, fp32 on CPU) | bf16 | fp32
    strategy: str = "ddp"  # under torchrun: ddp (replicate) | fsdp (shard params/grads/optimizer)
    seed: int = 0
    # Output
    workspace: Path | None = None  # registers the run in WORKSPACE/models/registry.json
    name: str | None = None  # registry name; default "<method>-<UTC timestamp>"
    output: Path | None = None  # run folder; default WORKSPACE/models/NAME
    register: bool = True
    use: bool = False  # also make it the served model (`assistant models use NAME`)
    overwrite: bool = False  # replace an existing registry entry of the same name
    # Evaluation and checkpoints
    eval_every: int = 0  # validation loss every N steps (0 = only before and after)
    eval_qa_examples: int = 32  # held-out Q&A answered greedily for exact match / F1 (0 = skip)
    eval_max_new_tokens: int = 48
    save_every: int = 0  # checkpoint every N steps (0 = only when a callback stops the run)
    resume: bool = False  # continue from OUTPUT/checkpoints/latest when present
    stop_after_steps: int = 0  # checkpoint and stop after N steps of this session (time-limited job slots); 0 = run to the end
    keep_checkpoints: bool = False  # keep checkpoints after a successful run (they hold optimizer state)
    progress: bool = True
    callbacks: list[Callable[[StepInfo], bool | None]] = field(default_factory=list)

    def resolved_lr(self) -> float:
        return self.lr if self.lr is not None else (2e-4 if self.method == "lora" else 2e-5)

    def to_json(self) -> dict[str, Any]:
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name in ("callbacks", "log_records"):
                v = None if v is None else len(v)
            elif isinstance(v, list):
                v = [str(x) for x in v]
            elif isinstance(v, Path):
                v = str(v)
            out[f.name] = v
        out["lr"] = self.resolved_lr()
        return out


@dataclass
class TrainResult:
    name: str
    output_dir: Path
    model_path: Path | None  # merged model folder (rank 0)
    adapter_path: Path | None
    metrics: dict[str, Any]
    losses: list[float]  # training loss per optimizer step
    val_losses: list[tuple[int, float]]
    stopped_early: bool = False
    data_fingerprint: str = ""
    stats: dict[str, Any] = field(default_factory=dict)


# --- public entry point -------------------------------------------------------------------------


def train(config: TrainConfig) -> TrainResult:
    """Run one fine-tuning job; out-of-memory becomes an `OutOfMemory` with advice."""
    if config.method not in ("lora", "full"):
        raise TrainingError(f"method must be 'lora' or 'full', got {config.method!r}")
    if config.batch_size < 1 or config.grad_accum < 1 or config.max_length < 8:
        raise TrainingError("batch_size and grad_accum must be >= 1 and max_length >= 8")
    rt = setup_runtime(config.device, config.precision)
    try:
        return _train(config, rt)
    except torch.OutOfMemoryError as exc:
        raise OutOfMemory(oom_advice(config, exc)) from exc
    except RuntimeError as exc:
        if "out of memory" in str(exc).lower():
            raise OutOfMemory(oom_advice(config, exc)) from exc
        raise
    finally:
        teardown(rt)


def oom_advice(config: TrainConfig, exc: BaseException) -> str:
    tips = []
    if config.batch_size > 1:
        tips.append(f"--batch-size {max(1, config.batch_size // 2)} --grad-accum {config.grad_accum * 2} (same effective batch)")
    if not config.grad_checkpointing:
        tips.append("--grad-checkpointing (recompute activations: ~30% slower, much less memory)")
    if config.method == "full":
        tips.append("--method lora (trains ~1% of the weights; no optimizer state for the rest)")
    tips.append(f"--max-length {max(64, config.max_length // 2)} (shorter sequences)")
    return "Out of memory while training: " + str(exc).splitlines()[0] + "\nTry: " + "; ".join(tips)


# --- stages -------------------------------------------------------------------------------------


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_tokenizer(config: TrainConfig) -> tuple[str, Any]:
    """Resolve the base model's location and load its tokenizer (cheap: data is checked before the model loads)."""
    from transformers import AutoTokenizer

    from foundation.model_paths import resolve_generator

    path = resolve_generator(config.base, Path(config.workspace) if config.workspace else None)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except OSError as exc:
        raise TrainingError(f"cannot load base model {config.base!r} ({path}): {exc}") from exc
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return path, tokenizer


def build_model(config: TrainConfig, path: str, dtype: torch.dtype):
    """The base model from `path` (SDPA attention), with a fresh LoRA adapter for method "lora"."""
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
    if config.method == "lora":
        try:
            from peft import LoraConfig, get_peft_model
        except ImportError as exc:
            raise TrainingError(PEFT_HINT) from exc
        lora = LoraConfig(
            r=config.lora_rank,
            lora_alpha=config.lora_alpha or 2 * config.lora_rank,
            lora_dropout=config.lora_dropout,
            target_modules=config.lora_targets,
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, lora)
    return model


def gather_unsharded(model, config: TrainConfig, rt: Runtime, base_path: str, dtype: torch.dtype):
    """FSDP: collect the full weights (a collective: every rank calls it) into a plain CPU model on rank 0."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if not rt.is_main:
        return None
    plain = build_model(config, base_path, dtype)
    missing, unexpected = plain.load_state_dict(state, strict=False)
    tied = {k for k in missing if "lm_head" in k}  # tied to the embeddings, restored by tie_weights
    if set(missing) - tied or unexpected:
        raise TrainingError(f"FSDP gather did not match the model: missing {sorted(set(missing) - tied)[:3]}, unexpected {unexpected[:3]}")
    if hasattr(plain, "tie_weights"):
        plain.tie_weights()
    return plain


def export_log_records(workspace: Path) -> list[dict[str, Any]]:
    """The workspace conversation log's rated answers and corrections, via `assistant.log`."""
    try:
        from assistant.config import Config
        from assistant.log import ConversationLog, log_url
    except ImportError as exc:
        raise TrainingError("--from-log needs the conversation log (assistant.log), which is not available: " + str(exc)) from exc
    workspace = Path(workspace)
    with ConversationLog.open(log_url(Config.load(workspace), workspace)) as clog:
        return list(clog.export(rated_only=True))


def step_indices(n_examples: int, step: int, global_batch: int, seed: int) -> list[int]:
    """The example indices of global step `step`: a fresh seeded permutation per epoch, read as a stream.

    A pure function of the step, so resuming needs nothing but the step number.
    """
    out: list[int] = []
    pos = step * global_batch
    while len(out) < global_batch:
        epoch, offset = divmod(pos, n_examples)
        perm = list(range(n_examples))
        random.Random(seed * 1_000_003 + epoch).shuffle(perm)
        take = perm[offset : offset + global_batch - len(out)]
        out.extend(take)
        pos += len(take)
    return out


def lr_at(step: int, total: int, peak: float, warmup: int) -> float:
    """Linear warm-up to `peak`, then cosine decay to 10% of it at `total` (step is 0-based)."""
    if warmup and step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def wrap_distributed(model, config: TrainConfig, rt: Runtime):
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


def unwrap_peft(model):
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def make_optimizer(params: list[torch.nn.Parameter], config: TrainConfig, rt: Runtime) -> torch.optim.Optimizer:
    """AdamW, fused on CUDA (one kernel for all parameters), multi-tensor foreach elsewhere."""
    kwargs = {"fused": True} if rt.device.type == "cuda" else {"foreach": True}
    return torch.optim.AdamW(params, lr=config.resolved_lr(), weight_decay=config.weight_decay, betas=(0.9, 0.95), **kwargs)


def _run_name(config: TrainConfig) -> str:
    from finetune.registry import check_name

    name = config.name or f"{config.method}-{dt.datetime.now(dt.timezone.utc):%Y%m%d-%H%M%S}"
    return check_name(name)


def _output_dir(config: TrainConfig, name: str) -> Path:
    if config.output:
        return Path(config.output)
    if config.workspace:
        return Path(config.workspace) / "models" / name
    raise TrainingError("give an output folder (--output) or a workspace to save the run in")


def _train(config: TrainConfig, rt: Runtime) -> TrainResult:
    seed_everything(config.seed)
    name = _run_name(config)
    out_dir = _output_dir(config, name)
    if config.workspace and config.register and rt.is_main and not config.overwrite and not config.resume:
        from finetune.registry import Registry

        if name in Registry(config.workspace).list():
            raise TrainingError(f"a model named {name!r} is already registered; pick another --name or pass --overwrite")
    base_path, tokenizer = load_tokenizer(config)
    log_records = config.log_records
    if config.from_log:
        if not config.workspace:
            raise TrainingError("from_log needs a workspace whose conversation log to export")
        log_records = (log_records or []) + export_log_records(Path(config.workspace))
    index_docs = []
    if config.from_index:
        if not config.workspace:
            raise TrainingError("from_index needs a workspace whose index to read")
        from finetune.data import load_index_chunks

        index_docs = load_index_chunks(Path(config.workspace))
    data = build_dataset(
        tokenizer, docs=config.docs, qa=config.qa, logs=config.logs, log_records=log_records, documents=index_docs,
        max_length=config.max_length, val_fraction=config.val_fraction,
    )
    model = build_model(config, base_path, base_dtype(config, rt)).to(rt.device)
    pad_id = tokenizer.pad_token_id
    n_total = sum(p.numel() for p in model.parameters())
    trainable = [p for p in model.parameters() if p.requires_grad]
    n_trainable = sum(p.numel() for p in trainable)
    if rt.is_main:
        log.info("%s: %s on %s, %d/%d trainable params, %s", name, config.method, describe(rt), n_trainable, n_total, data.stats)

    metrics: dict[str, Any] = {"world_size": rt.world_size, "device": describe(rt), "trainable_params": n_trainable, "total_params": n_total}
    if rt.is_main:
        metrics["base"] = _evaluate(model, tokenizer, data, config, rt, pad_id)
    rt.barrier()

    fsdp = rt.distributed and config.strategy == "fsdp"
    ddp_model = wrap_distributed(model, config, rt)
    # after wrapping: FSDP swaps every parameter for its sharded version
    optimizer = make_optimizer([p for p in model.parameters() if p.requires_grad], config, rt)
    global_batch = config.batch_size * config.grad_accum * rt.world_size
    steps_per_epoch = max(1, math.ceil(len(data.train) / global_batch))
    total_steps = config.max_steps or max(1, math.ceil(config.epochs * steps_per_epoch))
    ckpt_root = out_dir / "checkpoints"

    state = {"step": 0, "losses": [], "val_losses": [], "tokens": 0, "seconds": 0.0, "fingerprint": data.fingerprint}
    if config.resume and (latest := checkpoint.latest(ckpt_root)) is not None:
        state = checkpoint.load(latest, model, optimizer, rank=rt.rank, sharded=fsdp)
        if state["fingerprint"] != data.fingerprint:
            raise TrainingError(f"{latest}: the training data changed since this checkpoint; resume needs the same data")
        if rt.is_main:
            log.info("resumed from %s at step %d", latest, state["step"])

    cfg = unwrap_peft(model).config
    layers = getattr(cfg, "num_hidden_layers", 0)
    hidden = getattr(cfg, "hidden_size", 0)
    stopped = _loop(ddp_model, model, optimizer, data, config, rt, state, total_steps, steps_per_epoch, global_batch,
                    pad_id, ckpt_root, (n_total, n_trainable, layers, hidden))

    result = TrainResult(name, out_dir, None, None, metrics, state["losses"], [tuple(v) for v in state["val_losses"]],
                         stopped, data.fingerprint, data.stats)
    if stopped:  # a callback asked to stop: the checkpoint is the product, nothing is registered
        return result
    if fsdp:  # sharded weights: every rank takes part in evaluation and in gathering the full model
        tuned = _evaluate(model, tokenizer, data, config, rt, pad_id)
        model = gather_unsharded(model, config, rt, base_path, base_dtype(config, rt))
    elif rt.is_main:
        tuned = _evaluate(model, tokenizer, data, config, rt, pad_id)
    if rt.is_main:
        metrics["tuned"] = tuned
        losses = state["losses"]
        metrics.update(
            steps=state["step"], tokens=state["tokens"], seconds=round(state["seconds"], 2),
            tokens_per_s=round(state["tokens"] / max(state["seconds"], 1e-9), 1),
            train_loss_first=losses[0] if losses else None, train_loss_last=losses[-1] if losses else None,
        )
        _save_run(result, model, tokenizer, config, base_path, out_dir, data)
        if not config.keep_checkpoints:
            import shutil

            shutil.rmtree(ckpt_root, ignore_errors=True)
    rt.barrier()
    return result


def base_dtype(config: TrainConfig, rt: Runtime) -> torch.dtype:
    """LoRA freezes the base, so it can sit in bf16 on GPU; full tuning keeps fp32 master weights."""
    return torch.bfloat16 if (config.method == "lora" and rt.autocast_dtype == torch.bfloat16) else torch.float32


def _evaluate(model, tokenizer, data: Dataset, config: TrainConfig, rt: Runtime, pad_id: int) -> dict[str, Any]:
    eval_model = unwrap_ddp(model)
    out: dict[str, Any] = {}
    if data.val:
        out.update(perplexity(eval_model, data.val, pad_id, batch_size=config.batch_size, device=rt.device, autocast=rt.autocast))
    chats = data.val_chats[: config.eval_qa_examples]
    if chats and config.eval_qa_examples > 0:
        eval_model.config.use_cache = True
        with rt.autocast():
            scores = qa_scores(eval_model, tokenizer, chats, max_new_tokens=config.eval_max_new_tokens,
                               device=rt.device, progress=config.progress and rt.is_main)
        eval_model.config.use_cache = False
        out.update(scores)
    return out


def unwrap_ddp(model):
    return getattr(model, "module", model)


def _micro_batches(data: Dataset, step: int, config: TrainConfig, rt: Runtime, global_batch: int) -> list[list[Example]]:
    """This rank's micro-batches of global step `step` (rank r takes every world_size-th slice)."""
    idx = step_indices(len(data.train), step, global_batch, config.seed)
    b, w = config.batch_size, rt.world_size
    return [[data.train[i] for i in idx[(m * w + rt.rank) * b : (m * w + rt.rank + 1) * b]] for m in range(config.grad_accum)]


def _loop(ddp_model, model, optimizer, data, config, rt, state, total_steps, steps_per_epoch, global_batch, pad_id,
          ckpt_root, sizes) -> bool:
    """Optimizer steps from state["step"] to total_steps; returns True if a callback stopped it."""
    n_total, n_trainable, layers, hidden = sizes
    trainable = [p for p in model.parameters() if p.requires_grad]
    bar = tqdm(total=total_steps, initial=state["step"], desc="fine-tuning", disable=not (rt.is_main and config.progress),
               dynamic_ncols=True)
    ddp_model.train()
    stopped = False
    first_step = state["step"]
    try:
        while state["step"] < total_steps:
            step = state["step"]
            t0 = time.perf_counter()
            lr = lr_at(step, total_steps, config.resolved_lr(), config.warmup_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            micro = _micro_batches(data, step, config, rt, global_batch)
            # Normalise by the target tokens of the whole global batch (all ranks, all micro-batches).
            n_targets = rt.all_reduce_sum(sum(e.n_targets - (e.labels[0] != -100) for mb in micro for e in mb))
            loss_sum, tokens, width = 0.0, 0, 0
            for m, mb in enumerate(micro):
                batch = collate(mb, pad_id, rt.device)
                sync = m == len(micro) - 1
                ctx = ddp_model.no_sync() if (rt.distributed and not sync and hasattr(ddp_model, "no_sync")) else contextlib.nullcontext()
                with ctx:
                    with rt.autocast():
                        loss, _ = summed_loss(ddp_model, batch)
                    (loss * rt.world_size / max(n_targets, 1)).backward()
                loss_sum += float(loss.detach())
                tokens += int(batch["attention_mask"].sum())
                width = max(width, batch["input_ids"].shape[1])
            if config.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(trainable, config.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if rt.device.type == "cuda":
                torch.cuda.synchronize(rt.device)
            dt_s = time.perf_counter() - t0
            step_loss = rt.all_reduce_sum(loss_sum) / max(n_targets, 1)
            step_tokens = int(rt.all_reduce_sum(tokens))
            state["step"] = step + 1
            state["losses"].append(step_loss)
            state["tokens"] += step_tokens
            state["seconds"] += dt_s
            tps = step_tokens / max(dt_s, 1e-9)
            mfu = estimate_mfu(flops_per_token(n_total, layers, hidden, width, n_trainable / n_total), tps, rt.device, rt.world_size)
            post = {"loss": f"{step_loss:.3f}", "lr": f"{lr:.1e}", "tok/s": f"{tps:.0f}"}
            if mfu is not None:
                post["mfu"] = f"{mfu:.1%}"
            bar.set_postfix(post)
            bar.update(1)
            fsdp = rt.distributed and config.strategy == "fsdp"  # sharded: every rank joins each forward
            if config.eval_every and state["step"] % config.eval_every == 0 and data.val and (rt.is_main or fsdp):
                val = perplexity(unwrap_ddp(model), data.val, pad_id, batch_size=config.batch_size, device=rt.device, autocast=rt.autocast)
                state["val_losses"].append((state["step"], val["loss"]))
                if rt.is_main:
                    bar.write(f"step {state['step']}: validation loss {val['loss']:.4f} (ppl {val['perplexity']:.2f})")
            info = StepInfo(state["step"], total_steps, step_loss, lr, tps, mfu, state["step"] / steps_per_epoch, dt_s, step_tokens)
            stop = any(bool(cb(info)) for cb in config.callbacks)
            stop = stop or bool(config.stop_after_steps and state["step"] - first_step >= config.stop_after_steps)
            stop = rt.all_reduce_sum(float(stop)) > 0
            want_ckpt = stop or (config.save_every and state["step"] % config.save_every == 0 and state["step"] < total_steps)
            if want_ckpt:
                checkpoint.save(ckpt_root, state["step"], model, optimizer, state, rank=rt.rank, world_size=rt.world_size,
                                sharded=fsdp)
            if stop:
                stopped = True
                break
    finally:
        bar.close()
    return stopped


def _save_run(result: TrainResult, model, tokenizer, config: TrainConfig, base_path: str, out_dir: Path, data: Dataset) -> None:
    """Adapter, merged model, config, metrics, loss curve and card; then the registry entry."""
    from finetune import export

    out_dir.mkdir(parents=True, exist_ok=True)
    created = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    is_peft = config.method == "lora"
    if is_peft:
        result.adapter_path = export.save_adapter(model, out_dir / "adapter")
    export.save_merged(model, tokenizer, out_dir / "model", is_peft=is_peft)
    result.model_path = out_dir / "model"
    val_points = list(result.val_losses)
    base_loss, tuned_loss = (result.metrics.get(k, {}).get("loss") for k in ("base", "tuned"))
    if base_loss is not None and tuned_loss is not None:  # validation before (step 0) and after training
        val_points = [(0, base_loss)] + [p for p in val_points if p[0] != len(result.losses)] + [(len(result.losses), tuned_loss)]
    plot_losses(out_dir / "loss_curve.png", result.losses, val_points, title=f"{result.name} ({config.method})")
    info = {
        "name": result.name, "base": config.base, "base_path": base_path, "method": config.method, "created_at": created,
        "data_fingerprint": data.fingerprint, "data": data.stats, "config": config.to_json(), "metrics": result.metrics,
        "losses": result.losses, "val_losses": result.val_losses,
    }
    export.write_json(out_dir / "train_config.json", config.to_json())
    export.write_json(out_dir / "metrics.json", info)
    export.write_model_card(out_dir / "README.md", result.name, info)
    if config.workspace and config.register:
        from finetune.registry import Registry

        Registry(config.workspace).register(
            result.name, result.model_path, base=config.base, method=config.method, metrics=_headline(result.metrics),
            data_fingerprint=data.fingerprint, adapter_path=result.adapter_path, created_at=created, make_current=config.use,
        )


def _headline(metrics: dict[str, Any]) -> dict[str, Any]:
    """The registry keeps the numbers, not the sample generations."""
    out = {k: v for k, v in metrics.items() if not isinstance(v, dict)}
    for phase in ("base", "tuned"):
        if phase in metrics:
            out[phase] = {k: v for k, v in metrics[phase].items() if k != "samples"}
    return out
