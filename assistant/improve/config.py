"""The knobs of one improvement cycle: safety rails, the promotion rule's thresholds, training, behaviour."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class ImproveConfig:
    # Safety rails
    min_examples: int = 8  # new accepted answers needed before a cycle trains; fewer = noise, not signal
    heldout_fraction: float = 0.2  # share of questions (by hash) kept for evaluation; never trained on
    replay: int = 32  # earlier learnt examples mixed in so the new candidate does not forget them
    # Promotion rule (documented in every report)
    min_gain: float = 0.02  # held-out token F1 must rise by at least this (absolute)
    sanity_tolerance: float = 0.05  # sanity F1 may fall by at most this
    citation_tolerance: float = 0.10  # citation accuracy may fall by at most this
    decline_tolerance: float = 0.0  # rightly declined questions must stay declined
    # Training (a LoRA on the served model; see finetune.train.TrainConfig for each knob)
    method: str = "lora"  # lora: small, fast, cheap to keep; full: more capacity, ~4x memory
    epochs: float = 4.0  # few examples per cycle: several passes are needed to move the answers
    lr: float | None = 5e-4  # None = the recipe's default (2e-4 LoRA, 2e-5 full)
    max_steps: int | None = None
    batch_size: int = 4
    lora_rank: int = 16
    lora_layers: int = 0  # 0 = adapters in every layer; N = only the top N layers: backward stops there (~2x faster on CPU)
    max_length: int = 512
    device: str = "auto"
    seed: int = 0
    # Preference tuning (opt-in): DPO on (correction, rejected answer) pairs after the SFT step
    dpo: bool = False
    min_pairs: int = 4  # fewer pairs than this: DPO is skipped (and the report says so)
    dpo_steps: int = 20
    dpo_beta: float = 0.1
    dpo_lr: float = 5e-5
    # The workspace's passage ranker (finetune.recipes.ranker): retrained each cycle from the documents, with rated
    # answers as extra labels, and registered (not served: see ranking.py). Costs a few minutes of CPU per cycle.
    ranker: bool = False
    # Behaviour
    early_reject: bool = True  # skip the candidate's sanity set once it has failed on held-out (saves time)
    keep_rejected: bool = False  # keep a rejected candidate's weights and registry entry (disk: a full model)
    dry_run: bool = False  # build and count the data, train nothing
    progress: bool = True
    sanity_file: Path | None = None  # default: the packaged assistant/sanity_set.jsonl

    def rule_text(self) -> str:
        return (f"Promote the candidate only if held-out token F1 rises by at least {self.min_gain:+.2f} "
                f"(absolute), sanity F1 falls by no more than {self.sanity_tolerance:.2f}, citation accuracy "
                f"falls by no more than {self.citation_tolerance:.2f} and decline accuracy by no more than "
                f"{self.decline_tolerance:.2f}. Otherwise keep the served model. A gain under {self.min_gain:.2f} "
                "is within the noise of a few greedy answers; the sanity set guards against forgetting.")

    def validate(self) -> None:
        if not 0.0 < self.heldout_fraction < 1.0:
            raise ValueError(f"heldout_fraction must be between 0 and 1, got {self.heldout_fraction}")
        if self.min_examples < 1:
            raise ValueError(f"min_examples must be at least 1, got {self.min_examples}")


def config_from_dict(values: dict[str, Any]) -> ImproveConfig:
    known = {f for f in ImproveConfig.__dataclass_fields__}
    return ImproveConfig(**{k: v for k, v in values.items() if k in known})
