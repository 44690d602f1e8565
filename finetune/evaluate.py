"""Evaluation before and after fine-tuning: perplexity, exact match and token F1, loss curves.

Perplexity is exp(mean loss over target tokens) on held-out examples (the same masking as
training, so it measures the answers, not the prompts). Exact match and token F1 follow SQuAD:
lower-case, drop punctuation and articles, compare bags of words of a greedy answer.
"""
from __future__ import annotations

import collections
import math
import re
import string
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from finetune.data import IGNORE, Chat, Example, qa_record_to_chat, render_chat, tokenize_chat
from finetune.runtime import pick_device
from foundation.model_paths import load_causal_lm, resolve_generator

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCT = set(string.punctuation)


def normalize_answer(text: str) -> str:
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, reference: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(reference))


def token_f1(prediction: str, reference: str) -> float:
    pred, ref = normalize_answer(prediction).split(), normalize_answer(reference).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((collections.Counter(pred) & collections.Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def collate(examples: Sequence[Example], pad_id: int, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """Right-pad a micro-batch; padded positions get label -100 and attention mask 0."""
    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e.input_ids)
        ids[i, :n] = torch.tensor(e.input_ids)
        labels[i, :n] = torch.tensor(e.labels)
        mask[i, :n] = 1
    return {"input_ids": ids.to(device), "labels": labels.to(device), "attention_mask": mask.to(device)}


def summed_loss(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Sum of next-token cross-entropy over target tokens, and how many there were.

    Summing (rather than HF's per-batch mean) lets the caller divide by the token count of a
    whole accumulation window across ranks, so the gradient does not depend on how the window
    was split into micro-batches or processes.
    """
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    targets = batch["labels"][:, 1:]
    loss = F.cross_entropy(
        logits[:, :-1].reshape(-1, logits.size(-1)).float(), targets.reshape(-1), ignore_index=IGNORE, reduction="sum"
    )
    return loss, int((targets != IGNORE).sum())


@torch.no_grad()
def perplexity(model, examples: Sequence[Example], pad_id: int, *, batch_size: int = 4, device=None, autocast=None) -> dict[str, float]:
    """Mean target-token loss and its exp over `examples` (model put in eval mode, restored after)."""
    if not examples:
        return {"loss": float("nan"), "perplexity": float("nan"), "tokens": 0}
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(examples), batch_size):
        batch = collate(examples[i : i + batch_size], pad_id, device)
        with autocast() if autocast else torch.autocast("cpu", enabled=False):
            loss, n = summed_loss(model, batch)
        total += float(loss)
        count += n
    model.train(was_training)
    mean = total / max(count, 1)
    return {"loss": mean, "perplexity": math.exp(min(mean, 50.0)), "tokens": count}


@torch.no_grad()
def generate_answers(model, tokenizer, chats: Sequence[Chat], *, max_new_tokens: int = 64, device=None, progress: bool = True) -> list[str]:
    """Greedy answers to each chat's last assistant turn, from the conversation before it."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    answers = []
    for chat in tqdm(chats, desc="generating", disable=not progress, leave=False):
        prompt = render_chat(tokenizer, chat.messages[:-1], add_generation_prompt=True)
        enc = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(device)
        out = model.generate(
            **enc, max_new_tokens=max_new_tokens, do_sample=False,
            pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
        )
        answers.append(tokenizer.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True).strip())
    model.train(was_training)
    return answers


def qa_scores(model, tokenizer, chats: Sequence[Chat], *, max_new_tokens: int = 64, device=None, progress: bool = True) -> dict[str, Any]:
    preds = generate_answers(model, tokenizer, chats, max_new_tokens=max_new_tokens, device=device, progress=progress)
    refs = [c.messages[-1]["content"] for c in chats]
    n = max(len(chats), 1)
    return {
        "exact_match": sum(exact_match(p, r) for p, r in zip(preds, refs)) / n,
        "token_f1": sum(token_f1(p, r) for p, r in zip(preds, refs)) / n,
        "n": len(chats),
        "samples": [{"reference": r, "prediction": p} for p, r in list(zip(preds, refs))[:5]],
    }


def _as_chats(qa_records: Iterable[dict[str, Any] | Chat]) -> list[Chat]:
    chats = []
    for i, r in enumerate(qa_records):
        chat = r if isinstance(r, Chat) else qa_record_to_chat(r, f"qa_records[{i}]")
        if chat.messages[-1]["role"] == "assistant":
            chats.append(chat)
    return chats


def evaluate_model(
    model_path_or_id: str | Path,
    qa_records: Iterable[dict[str, Any] | Chat],
    *,
    max_length: int = 512,
    max_new_tokens: int = 64,
    max_examples: int | None = None,
    device: str = "auto",
    model=None,
    tokenizer=None,
    progress: bool = True,
    workspace: Path | None = None,
) -> dict[str, Any]:
    """Perplexity of the reference answers, and exact match / token F1 of greedy answers.

    `model_path_or_id` may be "smollm2", a registry name ("current" = the served one; needs
    `workspace`), a local folder or a cached HF id; pass `model`/`tokenizer` to evaluate one
    already in memory.
    """
    chats = _as_chats(qa_records)[:max_examples]
    if not chats:
        raise ValueError("evaluate_model needs at least one Q&A record ending with an assistant answer")
    dev = pick_device(device)
    if model is None or tokenizer is None:
        tokenizer, model = load_causal_lm(resolve_generator(str(model_path_or_id), workspace), device=str(dev))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    examples = [e for e in (tokenize_chat(tokenizer, c, max_length) for c in chats) if e is not None]
    result: dict[str, Any] = {"model": str(model_path_or_id)}
    result.update(perplexity(model, examples, pad, device=dev))
    result.update(qa_scores(model, tokenizer, chats, max_new_tokens=max_new_tokens, device=dev, progress=progress))
    return result


def plot_losses(path: Path, train_losses: Sequence[float], val_points: Sequence[tuple[int, float]], title: str = "") -> Path:
    """Training loss per step (and validation loss where measured) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.plot(range(1, len(train_losses) + 1), train_losses, label="train", linewidth=1)
    if val_points:
        steps, losses = zip(*val_points)
        ax.plot(steps, losses, "o-", label="validation")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title(title or "fine-tuning loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
    return path
