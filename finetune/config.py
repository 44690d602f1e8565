"""What a training run is asked to do (`TrainConfig`) and what it reports (`StepInfo`, `TrainResult`).

Every knob says its trade-off beside it, torchtune-style; the recipes read these and nothing else.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finetune.errors import OutOfMemory, TrainingError

__all__ = ["OutOfMemory", "StepInfo", "TrainConfig", "TrainResult", "TrainingError"]

METHODS = ("lora", "full")
LOG_HINT = ("--from-log reads the conversation log, which the assistant owns: run it as `assistant finetune ... --from-log` "
            "(multi-GPU: `torchrun --nproc_per_node=N -m assistant.cli finetune ... --from-log`), or export the log first "
            "(`assistant logs export --rated-only -o log.jsonl`) and pass `--logs log.jsonl`")


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
    eta_s: float | None = None  # estimated seconds to the last step, from this session's mean step time


@dataclass
class TrainConfig:
    # What to train
    base: str = "smollm2"  # "smollm2" (bundled), a registry name, a HF id or a local folder
    method: str = "lora"  # lora: ~1% of weights, small memory, fast; full: every weight, more capacity, ~4x memory
    # Data (at least one source)
    docs: list[Path] = field(default_factory=list)  # files/folders of any format ingest reads: continued pre-training, packed
    qa: list[Path] = field(default_factory=list)  # {"question","answer"} or {"messages"} JSONL: SFT
    logs: list[Path] = field(default_factory=list)  # conversation log exports (JSONL)
    log_records: list[dict[str, Any]] | None = None  # the same, already in memory
    from_log: bool = False  # read WORKSPACE's conversation log (rated messages) through `log_reader` and train on it
    # How from_log reads the log: the assistant injects it (finetune sits below the log and never imports it)
    log_reader: Callable[[Path], Iterable[dict[str, Any]]] | None = None
    from_index: bool = False  # the text of WORKSPACE's indexed chunks (any format ingest reads), packed like docs
    val_fraction: float = 0.1  # held out by content hash; more = steadier metrics, less to learn from
    max_length: int = 512  # tokens per sequence; memory and time grow with it (attention quadratically)
    # Optimisation
    epochs: float = 3.0  # passes over the training set (fractions allowed); ignored when max_steps is set
    max_steps: int | None = None  # exact number of optimizer steps; overrides epochs
    lr: float | None = None  # None = 2e-4 for LoRA, 2e-5 for full: full tuning diverges at LoRA rates
    warmup_steps: int = 0  # linear warm-up, then cosine decay to 10% of lr: steadier start, slower first steps
    weight_decay: float = 0.0  # pulls weights toward zero: regularises, but can erase what small data taught
    max_grad_norm: float = 1.0  # clip; guards against loss spikes, too low slows learning; 0 disables
    batch_size: int = 4  # sequences per device per micro-batch: the main memory knob
    grad_accum: int = 1  # micro-batches per optimizer step: larger effective batch at no memory cost
    grad_checkpointing: bool = False  # recompute activations in backward: ~30% slower, far less memory
    # LoRA
    lora_rank: int = 16  # higher increases capacity and memory
    lora_alpha: int | None = None  # None = 2 * rank; scales the update: higher learns faster, less stably
    lora_dropout: float = 0.05  # regularises small data sets; 0 fits faster
    lora_targets: str | list[str] = "all-linear"  # which Linear layers get adapters: fewer = smaller, less capacity
    # Where and how
    device: str = "auto"  # auto (cuda -> mps -> cpu) | cpu | cuda | cuda:1
    precision: str = "auto"  # auto (bf16 on GPU, fp32 on CPU) | bf16 (half the activation memory) | fp32 (exact)
    strategy: str = "ddp"  # under torchrun: ddp (replicate: fastest) | fsdp (shard params/grads/optimizer: bigger models)
    seed: int = 0  # data order and initialisation; the same seed repeats a run exactly
    # Output
    workspace: Path | None = None  # registers the run in WORKSPACE/models/registry.json
    name: str | None = None  # registry name; default "<method>-<UTC timestamp>"
    output: Path | None = None  # run folder; default WORKSPACE/models/NAME
    register: bool = True  # add the run to the registry (False: files only, nothing the assistant can serve)
    use: bool = False  # also make it the served model (`assistant models use NAME`)
    overwrite: bool = False  # replace an existing registry entry of the same name
    # Evaluation and checkpoints
    eval_every: int = 0  # validation loss every N steps (0 = only before and after): a curve, at a forward pass each
    eval_qa_examples: int = 32  # held-out Q&A answered greedily for exact match / F1 (0 = skip; each costs a generation)
    eval_max_new_tokens: int = 48  # longer answers score fairer, cost more generation time
    save_every: int = 0  # checkpoint every N steps (0 = only when stopped): safer against crashes, costs disk and time
    resume: bool = False  # continue from OUTPUT/checkpoints/latest when present
    stop_after_steps: int = 0  # checkpoint and stop after N steps of this session (time-limited job slots); 0 = run to the end
    keep_checkpoints: bool = False  # keep checkpoints after a successful run (they hold optimizer state: large)
    progress: bool = True  # a progress bar with steps and time left (off: a log line every few steps)
    callbacks: list[Callable[[StepInfo], bool | None]] = field(default_factory=list)

    def resolved_lr(self) -> float:
        return self.lr if self.lr is not None else (2e-4 if self.method == "lora" else 2e-5)

    def to_json(self) -> dict[str, Any]:
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name == "log_reader":
                continue  # code, not a setting
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
    stop_reason: str = ""  # when stopped early: "callback", "stop_after_steps" or "interrupted" (Ctrl-C)

    @property
    def resume_hint(self) -> str:
        """What to tell the user when a run stopped early: where the checkpoint is and how to go on."""
        how = "interrupted" if self.stop_reason == "interrupted" else "stopped"
        return (f"{how} after step {len(self.losses)}; checkpoint in {self.output_dir / 'checkpoints'} "
                "(run the same command with --resume to continue)")
