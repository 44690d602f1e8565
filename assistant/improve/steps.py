"""The steps of one improvement cycle, each reading and updating the `CycleRun` it is given.

export -> examples in the served QA format -> train a candidate -> (DPO) -> evaluate both ->
apply the decision. `assistant.improve.cycle` runs them in order and applies the promotion rule.
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from assistant.improve.data import Accepted, build_cycle_data
from assistant.improve.evaluate import evaluate_heldout, evaluate_model, evaluate_sanity, expected_path, load_sanity_set
from assistant.improve.promotion import decide
from assistant.improve.prompts import qa_messages, training_record
from assistant.improve.report import draw_plot, write_report
from assistant.improve.state import CycleRun, now, save_state
from finetune.registry import Registry
from foundation.jsonl import write_jsonl
from foundation.model_paths import registry_model_path, resolve_generator
from index.collections import SHARED
from index.document_index import stored_collections
from index.store import current_generation

log = logging.getLogger(__name__)

EVAL_CACHE_SIZE = 8


def export_data(run: CycleRun) -> None:
    """Rated conversations -> new training examples, replay, the held-out set and preference pairs."""
    run.tell("exporting rated conversations (opted-out users and collections other than shared are excluded)")
    known = run.state["heldout"]
    # The served model answers every user: it learns only from conversations that drew on `shared` alone.
    records = run.bot.log.export(rated_only=True, audience={SHARED},
                                 collections_of=stored_collections(run.bot.workspace / "index"))
    data = build_cycle_data(records, learnt=set(run.state["learnt"]),
                            heldout_fraction=run.cfg.heldout_fraction, known_heldout=known, replay=run.cfg.replay)
    run.state["heldout"] = {h.message_id: {**h.to_json(), **({"expected_path": known[h.message_id].get("expected_path")}
                                                             if h.message_id in known else {})}
                            for h in data.heldout}
    save_state(run.workspace, run.state)
    write_jsonl(run.folder / "train.jsonl", [t.to_json() for t in data.train])
    write_jsonl(run.folder / "heldout.jsonl", [h.to_json() for h in data.heldout])
    write_jsonl(run.folder / "pairs.jsonl", data.pairs)
    run.data = data
    run.report["data"] = dict(data.counts)
    run.tell(f"{len(data.train)} new accepted answers, {len(data.replay)} replayed, "
             f"{len(data.heldout)} held out, {len(data.pairs)} preference pairs")


def build_examples(run: CycleRun) -> Path:
    """The accepted answers as SFT records in the prompt format the served model is asked in."""
    run.tell(f"building training examples in the QA prompt format of {run.current}")
    records, formats = [], {}
    items: list[Accepted] = [*run.data.train, *run.data.replay]
    for item in tqdm(items, desc="building examples", disable=not run.cfg.progress, leave=False):
        rec, fmt = training_record(run.bot, item.question, item.answer, model=run.current)
        formats[fmt] = formats.get(fmt, 0) + 1
        records.append(rec)
    path = run.folder / "sft.jsonl"
    write_jsonl(path, records)
    run.report["data"].update(train_examples=len(records), rag_format=formats.get("rag", 0),
                              closed_book_format=formats.get("closed_book", 0))
    return path


def train_candidate(run: CycleRun, sft_path: Path) -> None:
    """Fine-tune `run.candidate` from the served model and register it (not served)."""
    from finetune.train import TrainConfig, train  # torch and transformers: only when a cycle trains

    cfg, registry = run.cfg, Registry(run.workspace)
    run.tell(f"fine-tuning candidate {run.candidate} from {run.current} ({cfg.method})")
    if run.candidate in registry.list() and registry.current != run.candidate:
        discard(run, registry)  # an earlier crashed attempt of this cycle number
    tc = TrainConfig(base=run.current, method=cfg.method, qa=[sft_path], val_fraction=0.0, max_length=cfg.max_length,
                     epochs=cfg.epochs, max_steps=cfg.max_steps, lr=cfg.lr, batch_size=cfg.batch_size,
                     lora_rank=cfg.lora_rank, lora_targets=lora_targets(run.workspace, run.current, cfg.lora_layers),
                     device=cfg.device, seed=cfg.seed, workspace=run.workspace, name=run.candidate,
                     register=True, use=False, eval_qa_examples=0, progress=cfg.progress)
    result = train(tc)
    m = result.metrics
    run.report["training"] = {
        "method": cfg.method, "lr": cfg.lr, "epochs": cfg.epochs, "lora_layers": cfg.lora_layers or "all",
        "steps": m.get("steps"), "train_loss_first": m.get("train_loss_first"),
        "train_loss_last": m.get("train_loss_last"), "seconds": m.get("seconds"),
        "tokens_per_s": m.get("tokens_per_s"), "device": m.get("device"),
        "output": str(result.output_dir)}


def lora_targets(ws: Path, base: str, top_layers: int) -> str:
    """peft's target regex for the Linear layers of the top `top_layers` decoder layers ("all-linear" for 0)."""
    if top_layers <= 0:
        return "all-linear"
    cfg_file = Path(resolve_generator(base, ws)) / "config.json"
    n = int(json.loads(cfg_file.read_text())["num_hidden_layers"]) if cfg_file.exists() else 0
    if n <= top_layers:
        return "all-linear"
    layers = "|".join(str(i) for i in range(n - top_layers, n))
    return rf".*\.layers\.({layers})\.(self_attn|mlp)\.\w+_proj"


def preference_tune(run: CycleRun, pairs: list[dict[str, str]]) -> dict[str, Any]:
    """DPO on the SFT candidate, prompts in the served QA format; a failure keeps the SFT candidate."""
    cfg = run.cfg
    if len(pairs) < cfg.min_pairs:
        run.tell(f"DPO skipped: {len(pairs)} preference pairs, needs at least {cfg.min_pairs}")
        return {"status": "skipped", "reason": f"{len(pairs)} preference pairs; DPO needs at least {cfg.min_pairs}"}
    from finetune.preference import DPOConfig, PreferencePair, dpo_tune  # torch: only when DPO runs

    prefs = [PreferencePair(qa_messages(run.bot, p["prompt"], model=run.current)
                            or [{"role": "user", "content": p["prompt"]}], p["chosen"], p["rejected"])
             for p in pairs if p["chosen"].strip() != p["rejected"].strip()]
    run.tell(f"DPO on {len(prefs)} preference pairs ({cfg.dpo_steps} steps, beta {cfg.dpo_beta})")
    try:
        out = dpo_tune(registry_model_path(run.workspace, run.candidate), prefs,
                       DPOConfig(beta=cfg.dpo_beta, lr=cfg.dpo_lr, steps=cfg.dpo_steps, max_length=cfg.max_length,
                                 device=cfg.device, seed=cfg.seed, progress=cfg.progress))
    except Exception as exc:  # noqa: BLE001 - the SFT candidate is still whole: evaluate that
        log.exception("DPO failed")
        return {"status": "failed", "reason": f"{type(exc).__name__}: {exc}; the SFT candidate is evaluated as is"}
    out.pop("losses", None)
    return {"status": "done", **out}


def evaluate_both(run: CycleRun) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, str]]]:
    """The served model (cached while unchanged) and the candidate on the held-out and sanity sets;
    the candidate's sanity set is skipped once it has lost on held-out (`early_reject`)."""
    cfg, heldout = run.cfg, run.data.heldout
    sanity = load_sanity_set(cfg.sanity_file)
    expected = _expected_paths(run)
    run.tell(f"evaluating {run.current} and {run.candidate} on {len(heldout)} held-out and {len(sanity)} sanity questions")
    key = eval_key(run, run.current, sanity)
    current = run.state["eval_cache"].get(key)
    if current is None:
        current = evaluate_model(run.bot, run.current, heldout, expected, sanity, progress=cfg.progress)
        remember_eval(run.state, key, current)
    else:
        current = {**current, "cached": True}
    candidate = {"model": run.candidate, "sanity": None,
                 "heldout": evaluate_heldout(run.bot, run.candidate, heldout, expected, progress=cfg.progress)}
    if decide(current, candidate, cfg)[0] or not cfg.early_reject:
        candidate["sanity"] = evaluate_sanity(run.bot, run.candidate, sanity, progress=cfg.progress)
    return current, candidate, sanity


def _expected_paths(run: CycleRun) -> dict[str, str | None]:
    """Which document holds each accepted answer (looked up once, then kept in the state)."""
    out = {}
    for item in run.data.heldout:
        entry = run.state["heldout"].setdefault(item.message_id, item.to_json())
        if "expected_path" not in entry or entry["expected_path"] is None and not item.declined:
            entry["expected_path"] = expected_path(run.bot, item)
        out[item.message_id] = entry["expected_path"]
    return out


def _model_identity(ws: Path, model: str) -> str:
    """Name + weights file sizes/mtimes: a cached evaluation is reused only for the same weights."""
    path = Path(resolve_generator(model, ws))
    files = sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")) if path.is_dir() else []
    return json.dumps([model, str(path)] + [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in files])


def eval_key(run: CycleRun, model: str, sanity: list[dict[str, str]]) -> str:
    """What an evaluation depends on: the weights, the index's generation, the sets and the answer settings."""
    c = run.bot.config
    parts = [_model_identity(run.workspace, model), current_generation(run.workspace / "index") or "",
             json.dumps([[h.message_id, h.question, h.answer, h.declined] for h in run.data.heldout]),
             json.dumps(sanity), json.dumps([c.top_k, c.context_passages, c.max_new_tokens, c.min_relevance,
                                             c.temperature, c.context_window, c.backend, c.narrow_evidence,
                                             c.evidence_sources, c.min_evidence, c.min_quote, c.answer_candidates,
                                             c.quote_evidence])]  # (model_margin: the evaluation asks the model on every question)
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:20]


def remember_eval(state: dict[str, Any], key: str, ev: dict[str, Any]) -> None:
    cache = state["eval_cache"]
    cache[key] = ev
    for old in list(cache)[:-EVAL_CACHE_SIZE]:
        del cache[old]


def apply_decision(run: CycleRun, promote: bool, reasons: list[str], candidate_eval: dict[str, Any],
                   sanity: list[dict[str, str]]) -> None:
    """Serve the candidate and mark its data learnt, or delete it; either way unload it."""
    registry = Registry(run.workspace)
    if promote:
        registry.use(run.candidate)
        run.state["learnt"] = sorted(set(run.state["learnt"]) | {t.message_id for t in run.data.train})
        remember_eval(run.state, eval_key(run, run.candidate, sanity), candidate_eval)
        reasons.append(f"now serving {run.candidate}; `assistant models rollback` serves {run.current} again")
    elif not run.cfg.keep_rejected:
        discard(run, registry)
        reasons.append(f"kept {run.current}; the candidate's weights were deleted (--keep-rejected keeps them)")
    run.bot.unload(run.candidate)


def discard(run: CycleRun, registry: Registry) -> None:
    """Forget the candidate and delete its folder (a merged model is as large as the base)."""
    models = run.workspace / "models"
    try:
        folder = registry.model_dir(run.candidate).parent
        registry.remove(run.candidate)
    except Exception:  # noqa: BLE001 - not registered: nothing to forget
        folder = models / run.candidate
    if folder.is_dir() and folder.resolve().is_relative_to(models.resolve()):
        shutil.rmtree(folder, ignore_errors=True)


def finish(run: CycleRun, status: str, reasons: list[str]) -> dict[str, Any]:
    """Write the report (and the progress plot), record the cycle in the state, say how it ended."""
    report = run.report
    report["decision"] = {"status": status, "promoted": status == "promoted", "reasons": reasons}
    report["served_model_after"] = run.bot.model_name
    report["finished_at"] = now()
    report["seconds"] = round(time.perf_counter() - run.started, 1)
    write_report(run.folder, report)
    if report.get("metrics"):
        draw_plot(run.workspace)
    run.state["cycles"].append({"cycle": run.number, "status": status, "at": report["finished_at"],
                                "candidate": report.get("candidate_model")})
    save_state(run.workspace, run.state)
    run.tell(f"{status}: " + "; ".join(reasons))
    run.say(f"report: {run.folder / 'report.md'}")
    return report
