"""Saving a finished run: the adapter, a merged full model, its config, metrics and a model card.

The merged folder is what the assistant serves: `AutoModelForCausalLM.from_pretrained(path)` with
the tokenizer beside it, no peft needed at inference. The adapter is kept too (a few MB) so a
run can be re-merged onto another copy of the base or inspected. Each folder is written under a
temporary name and renamed into place.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path
from typing import Any

from finetune.evaluate import plot_losses
from foundation.workspace import atomic_write_json, atomic_write_text


def _replace_dir(tmp: Path, final: Path) -> None:
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)


def _fresh_tmp(final: Path) -> Path:
    tmp = final.with_name(f".{final.name}.tmp")
    final.parent.mkdir(parents=True, exist_ok=True)
    if tmp.exists():
        shutil.rmtree(tmp)
    return tmp


def save_adapter(peft_model, out: Path) -> Path:
    tmp = _fresh_tmp(out)
    peft_model.save_pretrained(str(tmp))
    _replace_dir(tmp, out)
    return out


def save_merged(model, tokenizer, out: Path, *, is_peft: bool):
    """Merge LoRA weights into the base (in place) and save a plain safetensors model + tokenizer."""
    merged = model.merge_and_unload() if is_peft else model
    tmp = _fresh_tmp(out)
    merged.config.use_cache = True
    merged.save_pretrained(str(tmp), safe_serialization=True)
    tokenizer.save_pretrained(str(tmp))
    _replace_dir(tmp, out)
    return merged


def write_json(path: Path, obj: Any) -> None:
    atomic_write_json(path, obj)


def model_card(name: str, info: dict[str, Any]) -> str:
    """A short README.md: what the model is, what it was trained on, how it scored, how to use it."""
    cfg, m, stats = info.get("config", {}), info.get("metrics", {}), info.get("data", {})
    base_m, tuned_m = m.get("base", {}), m.get("tuned", {})

    def fmt(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else ("-" if v is None else str(v))

    rows = "\n".join(
        f"| {k} | {fmt(base_m.get(k))} | {fmt(tuned_m.get(k))} |"
        for k in ("loss", "perplexity", "exact_match", "token_f1")
        if k in base_m or k in tuned_m
    )
    knobs = "\n".join(f"- `{k}`: {v}" for k, v in cfg.items() if k not in ("callbacks",))
    return f"""# {name}

Fine-tuned from `{info.get('base')}` with **{info.get('method')}** by Domain Assistant (`finetune/`).
Created {info.get('created_at')}; data fingerprint `{info.get('data_fingerprint')}`.

## Use
```bash
assistant models use {name}      # serve it; `assistant models rollback` undoes
```
```python
from transformers import AutoModelForCausalLM, AutoTokenizer
tok = AutoTokenizer.from_pretrained("model"); model = AutoModelForCausalLM.from_pretrained("model")
```
`model/` holds the merged weights (safetensors) and tokenizer; `adapter/` (LoRA runs) the adapter alone.

## Evaluation (held-out split)
| metric | base | tuned |
| --- | --- | --- |
{rows or '| (no validation data) | - | - |'}

Training: {fmt(m.get('steps'))} steps, {fmt(m.get('tokens'))} tokens, {fmt(m.get('tokens_per_s'))} tokens/s, \
first/last loss {fmt(m.get('train_loss_first'))} -> {fmt(m.get('train_loss_last'))}. Loss curve: `loss_curve.png`.

## Data
```json
{json.dumps(stats, indent=2)}
```

## Settings
{knobs}

## Limits
A small model tuned on a small set repeats its training data's phrasing and can still be wrong;
the assistant's citations remain the way to check an answer.
"""


def write_model_card(path: Path, name: str, info: dict[str, Any]) -> None:
    atomic_write_text(path, model_card(name, info))


def save_run_files(result, config_json: dict[str, Any], *, base: str, base_path: str, method: str,
                   data_stats: dict[str, Any]) -> str:
    """Config, metrics, loss curve and card beside the saved weights; returns the run's creation time.

    `result` is the run's `TrainResult` with its model (and adapter) already saved.
    """
    out_dir = Path(result.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    created = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    val_points = list(result.val_losses)
    base_loss, tuned_loss = (result.metrics.get(k, {}).get("loss") for k in ("base", "tuned"))
    if base_loss is not None and tuned_loss is not None:  # validation before (step 0) and after training
        val_points = [(0, base_loss)] + [p for p in val_points if p[0] != len(result.losses)] + [(len(result.losses), tuned_loss)]
    plot_losses(out_dir / "loss_curve.png", result.losses, val_points, title=f"{result.name} ({method})")
    info = {
        "name": result.name, "base": base, "base_path": base_path, "method": method, "created_at": created,
        "data_fingerprint": result.data_fingerprint, "data": data_stats, "config": config_json, "metrics": result.metrics,
        "losses": result.losses, "val_losses": result.val_losses,
    }
    write_json(out_dir / "train_config.json", config_json)
    write_json(out_dir / "metrics.json", info)
    write_model_card(out_dir / "README.md", result.name, info)
    return created


def headline(metrics: dict[str, Any]) -> dict[str, Any]:
    """The registry keeps the numbers, not the sample generations."""
    out = {k: v for k, v in metrics.items() if not isinstance(v, dict)}
    for phase in ("base", "tuned"):
        if phase in metrics:
            out[phase] = {k: v for k, v in metrics[phase].items() if k != "samples"}
    return out
