"""Preference tuning (DPO) on top of a supervised model: prefer the corrected answer to the bad one.

A correction in the log is a preference pair: for the same prompt, the user's text (chosen) is
better than what the model said (rejected). Supervised tuning teaches the chosen text; DPO also
pushes probability away from the rejected one (Rafailov et al., 2023):

    loss = -log sigmoid(beta * ((log p(chosen) - log p_ref(chosen)) - (log p(rejected) - log p_ref(rejected))))

The policy is a fresh LoRA adapter on the model; the reference is the same model with the
adapter switched off, so no second copy of the weights is held. Reference log-probabilities are
computed once, up front. The merged result is written beside the model folder and swapped in
(a crash leaves the supervised model, or the next run puts it back). Written here rather than with TRL: the loss is ten lines, and
it reuses this package's chat rendering, masking and device handling.
"""
from __future__ import annotations

import math
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from finetune.data import IGNORE, Chat, DataError, tokenize_chat
from finetune.modeling import add_lora
from finetune.runtime import pick_device


@dataclass
class PreferencePair:
    """`prompt` is the conversation up to the answer (as the model is prompted when serving)."""

    prompt: list[dict[str, str]]
    chosen: str
    rejected: str


@dataclass
class DPOConfig:
    beta: float = 0.1
    lr: float = 5e-5
    steps: int = 20
    batch_size: int = 2
    lora_rank: int = 8
    max_length: int = 768
    device: str = "auto"
    seed: int = 0
    progress: bool = True


def pairs_from_records(records: list[dict[str, Any]]) -> list[PreferencePair]:
    """`{"messages": [...prompt], "chosen": str, "rejected": str}` records (a bare "prompt" string is a user turn)."""
    out = []
    for n, rec in enumerate(records, 1):
        prompt = rec.get("messages") or [{"role": "user", "content": rec.get("prompt", "")}]
        chosen, rejected = (rec.get("chosen") or "").strip(), (rec.get("rejected") or "").strip()
        if not chosen or not rejected or chosen == rejected:
            raise DataError(f"preference record {n}: needs different, non-empty 'chosen' and 'rejected' texts")
        out.append(PreferencePair(list(prompt), chosen, rejected))
    return out


def _encode(tokenizer, pair: PreferencePair, max_length: int) -> tuple[Any, Any] | None:
    chosen = tokenize_chat(tokenizer, Chat([*pair.prompt, {"role": "assistant", "content": pair.chosen}], "pair"), max_length)
    rejected = tokenize_chat(tokenizer, Chat([*pair.prompt, {"role": "assistant", "content": pair.rejected}], "pair"), max_length)
    return (chosen, rejected) if chosen is not None and rejected is not None else None


def sequence_logprobs(model, examples: list, pad_id: int, device: torch.device) -> torch.Tensor:
    """Sum of log p(target token) over each example's answer tokens (labels != -100)."""
    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for i, e in enumerate(examples):
        ids[i, : len(e.input_ids)] = torch.tensor(e.input_ids)
        labels[i, : len(e.labels)] = torch.tensor(e.labels)
        mask[i, : len(e.input_ids)] = 1
    ids, labels, mask = ids.to(device), labels.to(device), mask.to(device)
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
    target = labels[:, 1:]
    keep = target != IGNORE
    logp = torch.gather(F.log_softmax(logits, dim=-1), 2, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (logp * keep).sum(dim=1)


def dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta: float) -> torch.Tensor:
    margin = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)
    return -F.logsigmoid(beta * margin).mean()


def dpo_tune(model_dir: str | Path, pairs: list[PreferencePair], config: DPOConfig | None = None) -> dict[str, Any]:
    """Tune the model saved in `model_dir` in place with DPO; returns before/after figures.

    `reward_accuracy` is the share of pairs whose chosen answer gained more log-probability
    against the reference than the rejected one (DPO's own measure); `preference_accuracy` the
    share whose chosen answer is simply the more likely one; `mean_margin` the mean of
    log p(chosen) - log p(rejected); `loss` the DPO loss (log 2 = 0.693 at the start).
    """
    from tqdm.auto import tqdm
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cfg = config or DPOConfig()
    model_dir = Path(model_dir)
    backup = model_dir.with_name(model_dir.name + ".pre-dpo")
    if not model_dir.exists() and backup.exists():  # a run killed between the two renames below
        backup.rename(model_dir)
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    device = pick_device(cfg.device)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    encoded = [e for p in pairs if (e := _encode(tokenizer, p, cfg.max_length)) is not None]
    if not encoded:
        raise DataError("no preference pair fits in max_length with an answer left to score")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    dtype = torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(device)
    # The policy: a fresh, zero-initialised adapter (the same builder as the LoRA recipe's), no dropout.
    model = add_lora(model, rank=cfg.lora_rank, alpha=None, dropout=0.0, targets="all-linear")

    def score(batch: list) -> tuple[torch.Tensor, torch.Tensor]:
        return (sequence_logprobs(model, [c for c, _ in batch], pad_id, device),
                sequence_logprobs(model, [r for _, r in batch], pad_id, device))

    model.eval()
    with model.disable_adapter():  # the reference: the model as it was
        ref_c, ref_r = _score_all(score, encoded)
    # A fresh LoRA adapter starts at zero (peft's default), so before training the policy *is*
    # the reference: its figures come from the same pass.
    before = _measure(ref_c, ref_r, ref_c, ref_r, cfg.beta)

    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    losses: list[float] = []
    order: list[int] = []
    for _ in tqdm(range(cfg.steps), desc="DPO", disable=not cfg.progress, leave=False):
        if len(order) < cfg.batch_size:
            order += random.sample(range(len(encoded)), len(encoded))
        idx, order = order[: cfg.batch_size], order[cfg.batch_size:]
        pc, pr = score([encoded[i] for i in idx])
        loss = dpo_loss(pc, pr, ref_c[idx], ref_r[idx], cfg.beta)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        losses.append(float(loss.detach()))
    model.eval()
    after = _measure(*_score_all(score, encoded), ref_c, ref_r, cfg.beta)
    _save_in_place(model.merge_and_unload(), tokenizer, model_dir)
    return {"pairs": len(encoded), "skipped_pairs": len(pairs) - len(encoded), "steps": cfg.steps, "beta": cfg.beta,
            "lr": cfg.lr, "before": before, "after": after, "losses": losses}


def _score_all(score, encoded: list) -> tuple[torch.Tensor, torch.Tensor]:
    """Log p(chosen) and log p(rejected) of every pair, one pair at a time, without gradients."""
    with torch.no_grad():
        both = [score([pair]) for pair in encoded]
    return torch.cat([c for c, _ in both]), torch.cat([r for _, r in both])


def _measure(pc: torch.Tensor, pr: torch.Tensor, ref_c: torch.Tensor, ref_r: torch.Tensor,
             beta: float) -> dict[str, float]:
    loss = float(dpo_loss(pc, pr, ref_c, ref_r, beta))
    reward_margin = (pc - ref_c) - (pr - ref_r)
    return {"loss": round(loss, 4) if math.isfinite(loss) else loss,
            "reward_accuracy": round(float((reward_margin > 0).float().mean()), 4),
            "preference_accuracy": round(float((pc > pr).float().mean()), 4),
            "mean_margin": round(float((pc - pr).mean()), 4)}


def _save_in_place(model, tokenizer, model_dir: Path) -> None:
    """Write next to the old folder, then swap (`dpo_tune` restores the old one if killed mid-swap)."""
    staging = model_dir.with_name(model_dir.name + ".dpo-tmp")
    old = model_dir.with_name(model_dir.name + ".pre-dpo")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    model_dir.rename(old)
    staging.rename(model_dir)
    shutil.rmtree(old, ignore_errors=True)
