"""One improvement cycle: export → data → fine-tune a candidate → evaluate both → promote or keep.

    report = run_cycle("workspace")            # what `assistant improve` runs
    report["decision"]["status"]               # "promoted" | "rejected" | "skipped" | "failed" | "dry-run"

State lives in `WORKSPACE/improve/state.json` (atomic): the held-out set (message ids and the
accepted answers, so cycles are compared on the same questions even after log retention), the
message ids the served model has learnt (only a *promoted* cycle marks its data learnt, so a
rejected candidate's data is tried again next time), and cached evaluations of unchanged models.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from assistant.improve.data import Accepted, CycleData, build_cycle_data
from assistant.improve.evaluate import (
    evaluate_heldout,
    evaluate_model,
    evaluate_sanity,
    expected_path,
    load_sanity_set,
)
from assistant.improve.report import cycle_dirs, draw_plot, improve_dir, write_report
from foundation.workspace import atomic_write_json
from foundation.jsonl import write_jsonl

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
EVAL_CACHE_SIZE = 8


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


class CycleBusy(RuntimeError):
    """Another `assistant improve` holds this workspace."""


# --- state ---------------------------------------------------------------------------------------


def load_state(workspace: Path) -> dict[str, Any]:
    path = improve_dir(workspace) / STATE_FILE
    state: dict[str, Any] = {}
    if path.exists():
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise RuntimeError(f"{path}: not valid JSON ({exc}); restore it or delete it to start over") from None
    state.setdefault("heldout", {})
    state.setdefault("learnt", [])
    state.setdefault("eval_cache", {})
    state.setdefault("cycles", [])
    return state


def save_state(workspace: Path, state: dict[str, Any]) -> None:
    atomic_write_json(improve_dir(workspace) / STATE_FILE, state)


@contextlib.contextmanager
def cycle_lock(workspace: Path) -> Iterator[None]:
    """One cycle at a time per workspace (two would race on the registry and the cycle numbers)."""
    root = improve_dir(workspace)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "a+") as fh:
        try:
            import fcntl

            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise CycleBusy(f"another `assistant improve` is running on {workspace}; wait for it to finish") from None
        except ImportError:  # Windows: single-writer assumption
            pass
        yield


def next_cycle_dir(workspace: Path) -> tuple[int, Path]:
    existing = cycle_dirs(workspace)
    number = int(existing[-1].name[6:]) + 1 if existing else 1
    path = improve_dir(workspace) / f"cycle-{number:03d}"
    path.mkdir(parents=True)
    return number, path


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


# --- the cycle -----------------------------------------------------------------------------------


def run_cycle(workspace: str | os.PathLike[str] | None = None, config: ImproveConfig | None = None, *,
              bot=None, say: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run one cycle and return its report (also written to WORKSPACE/improve/cycle-NNN/)."""
    from assistant import Assistant
    from foundation.workspace import resolve_workspace

    cfg = config or ImproveConfig()
    if not 0.0 < cfg.heldout_fraction < 1.0:
        raise ValueError(f"heldout_fraction must be between 0 and 1, got {cfg.heldout_fraction}")
    if cfg.min_examples < 1:
        raise ValueError(f"min_examples must be at least 1, got {cfg.min_examples}")
    ws = Path(bot.workspace) if bot is not None else resolve_workspace(workspace)
    say = say or (lambda msg: print(msg, flush=True) if cfg.progress else None)
    own_bot = bot is None
    bot = bot or Assistant.open(ws)
    try:
        with cycle_lock(ws):
            return _run(ws, bot, cfg, say)
    finally:
        if own_bot:
            bot.close()


def _run(ws: Path, bot, cfg: ImproveConfig, say: Callable[[str], None]) -> dict[str, Any]:
    if bot.log is None:
        raise RuntimeError("the conversation log is off for this workspace (log_enabled = false): nothing to learn from")
    t0 = time.perf_counter()
    state = load_state(ws)
    number, cdir = next_cycle_dir(ws)
    current = bot.model_name
    report: dict[str, Any] = {"cycle": number, "started_at": _now(), "current_model": current,
                              "candidate_model": None, "rules": {**_rules(cfg), "text": cfg.rule_text()}}
    say(f"cycle {number}: exporting rated conversations (opted-out users are excluded)")
    records = bot.log.export(rated_only=True)
    data = build_cycle_data(records, learnt=set(state["learnt"]), heldout_fraction=cfg.heldout_fraction,
                            known_heldout=state["heldout"], replay=cfg.replay)
    state["heldout"] = {h.message_id: {**h.to_json(), **({"expected_path": state["heldout"][h.message_id].get("expected_path")}
                                                          if h.message_id in state["heldout"] else {})}
                        for h in data.heldout}
    save_state(ws, state)
    write_jsonl(cdir / "train.jsonl", [t.to_json() for t in data.train])
    write_jsonl(cdir / "heldout.jsonl", [h.to_json() for h in data.heldout])
    write_jsonl(cdir / "pairs.jsonl", data.pairs)
    report["data"] = dict(data.counts)
    say(f"cycle {number}: {len(data.train)} new accepted answers, {len(data.replay)} replayed, "
        f"{len(data.heldout)} held out, {len(data.pairs)} preference pairs")

    def finish(status: str, reasons: list[str], **extra: Any) -> dict[str, Any]:
        report.update(extra)
        report["decision"] = {"status": status, "promoted": status == "promoted", "reasons": reasons}
        report["served_model_after"] = bot.model_name
        report["finished_at"] = _now()
        report["seconds"] = round(time.perf_counter() - t0, 1)
        write_report(cdir, report)
        if report.get("metrics"):
            draw_plot(ws)
        state["cycles"].append({"cycle": number, "status": status, "at": report["finished_at"],
                                "candidate": report.get("candidate_model")})
        save_state(ws, state)
        say(f"cycle {number}: {status}: " + "; ".join(reasons))
        say(f"report: {cdir / 'report.md'}")
        return report

    if len(data.train) < cfg.min_examples:
        return finish("skipped", [f"only {len(data.train)} new accepted answers (rated +1 or corrected) outside "
                                  f"the held-out set; a cycle needs at least {cfg.min_examples} (--min-examples)"])
    if cfg.dry_run:
        return finish("dry-run", ["dry run: data built and counted, nothing trained"])

    say(f"cycle {number}: building training examples in the QA prompt format of {current}")
    sft, formats = _sft_records(bot, current, data, progress=cfg.progress)
    write_jsonl(cdir / "sft.jsonl", sft)
    report["data"].update(train_examples=len(sft), rag_format=formats.get("rag", 0),
                          closed_book_format=formats.get("closed_book", 0))

    name = f"improve-{number:03d}"
    say(f"cycle {number}: fine-tuning candidate {name} from {current} ({cfg.method})")
    try:
        result = _train(ws, cfg, current, name, cdir / "sft.jsonl")
    except Exception as exc:  # noqa: BLE001 - a failed run must still leave a report and the served model
        log.exception("training failed")
        from finetune.registry import Registry

        _discard(ws, Registry(ws), name)  # leftovers (checkpoints, a half-written folder) of the failed run
        return finish("failed", [f"training failed: {type(exc).__name__}: {exc}"])
    report["candidate_model"] = name
    report["training"] = _training_summary(result, cfg)
    if cfg.dpo:
        report["preference"] = _preference_step(ws, bot, current, name, data.pairs, cfg, say, number)

    sanity = load_sanity_set(cfg.sanity_file)
    expected = _expected_paths(bot, data.heldout, state)
    say(f"cycle {number}: evaluating {current} and {name} on {len(data.heldout)} held-out and {len(sanity)} sanity questions")
    cur_eval = _cached_eval(ws, bot, current, data.heldout, expected, sanity, state, cfg)
    cand_eval = {"model": name, "heldout": evaluate_heldout(bot, name, data.heldout, expected, progress=cfg.progress),
                 "sanity": None}
    if decide(cur_eval, cand_eval, cfg)[0] or not cfg.early_reject:
        cand_eval["sanity"] = evaluate_sanity(bot, name, sanity, progress=cfg.progress)
    promote, reasons = decide(cur_eval, cand_eval, cfg)
    if cand_eval["sanity"] is None:
        reasons.append("sanity set not run for the candidate: the held-out check already failed")
    report["metrics"] = {"current": cur_eval, "candidate": cand_eval}

    from finetune.registry import Registry

    registry = Registry(ws)
    if promote:
        registry.use(name)
        state["learnt"] = sorted(set(state["learnt"]) | {t.message_id for t in data.train})
        _remember_eval(ws, bot, name, data.heldout, sanity, state, cand_eval)
        reasons.append(f"now serving {name}; `assistant models rollback` serves {current} again")
    elif not cfg.keep_rejected:
        _discard(ws, registry, name)
        reasons.append(f"kept {current}; the candidate's weights were deleted (--keep-rejected keeps them)")
    _unload(bot, name)
    return finish("promoted" if promote else "rejected", reasons)


def _rules(cfg: ImproveConfig) -> dict[str, Any]:
    return {"min_gain": cfg.min_gain, "sanity_tolerance": cfg.sanity_tolerance,
            "citation_tolerance": cfg.citation_tolerance, "decline_tolerance": cfg.decline_tolerance,
            "min_examples": cfg.min_examples, "heldout_fraction": cfg.heldout_fraction}


def decide(current: dict[str, Any], candidate: dict[str, Any], cfg: ImproveConfig) -> tuple[bool, list[str]]:
    """The promotion rule; returns (promote, reasons) with every check spelled out."""
    def get(ev: dict[str, Any], part: str, key: str) -> float | None:
        return (ev.get(part) or {}).get(key)

    ok, reasons = True, []
    cur_f1, cand_f1 = get(current, "heldout", "f1"), get(candidate, "heldout", "f1")
    if cur_f1 is None or cand_f1 is None:
        return False, ["no held-out questions with accepted answers yet: nothing to compare on"]
    gain = cand_f1 - cur_f1
    passed = gain >= cfg.min_gain - 1e-9
    ok &= passed
    reasons.append(f"held-out F1 {cur_f1:.3f} -> {cand_f1:.3f} ({gain:+.3f}; needs >= {cfg.min_gain:+.3f})"
                   + ("" if passed else ": not enough"))
    checks = [("sanity F1", get(current, "sanity", "f1"), get(candidate, "sanity", "f1"), cfg.sanity_tolerance),
              ("citation accuracy", get(current, "heldout", "citation_accuracy"),
               get(candidate, "heldout", "citation_accuracy"), cfg.citation_tolerance),
              ("decline accuracy", get(current, "heldout", "decline_accuracy"),
               get(candidate, "heldout", "decline_accuracy"), cfg.decline_tolerance)]
    for label, a, b, tol in checks:
        if a is None or b is None:
            continue
        passed = b >= a - tol - 1e-9
        ok &= passed
        reasons.append(f"{label} {a:.3f} -> {b:.3f} ({b - a:+.3f}; may fall by {tol:.2f})"
                       + ("" if passed else ": regression"))
    return ok, reasons


# --- steps ---------------------------------------------------------------------------------------


def _sft_records(bot, model: str, data: CycleData, *, progress: bool) -> tuple[list[dict[str, Any]], dict[str, int]]:
    from tqdm.auto import tqdm

    from assistant.improve.prompts import training_record

    records, formats = [], {}
    items: list[Accepted] = [*data.train, *data.replay]
    for item in tqdm(items, desc="building examples", disable=not progress, leave=False):
        rec, fmt = training_record(bot, item.question, item.answer, model=model)
        formats[fmt] = formats.get(fmt, 0) + 1
        records.append(rec)
    return records, formats


def _train(ws: Path, cfg: ImproveConfig, base: str, name: str, sft_path: Path):
    from finetune.registry import Registry
    from finetune.train import TrainConfig, train

    registry = Registry(ws)
    if name in registry.list() and registry.current != name:
        _discard(ws, registry, name)  # an earlier crashed attempt of this cycle number
    tc = TrainConfig(base=base, method=cfg.method, qa=[sft_path], val_fraction=0.0, max_length=cfg.max_length,
                     epochs=cfg.epochs, max_steps=cfg.max_steps, lr=cfg.lr, batch_size=cfg.batch_size,
                     lora_rank=cfg.lora_rank, lora_targets=_lora_targets(ws, base, cfg.lora_layers), device=cfg.device, seed=cfg.seed, workspace=ws, name=name,
                     register=True, use=False, eval_qa_examples=0, progress=cfg.progress)
    return train(tc)


def _lora_targets(ws: Path, base: str, top_layers: int) -> str:
    """peft's target regex for the Linear layers of the top `top_layers` decoder layers ("all-linear" for 0)."""
    if top_layers <= 0:
        return "all-linear"
    from foundation.model_paths import resolve_generator

    cfg_file = Path(resolve_generator(base, ws)) / "config.json"
    n = int(json.loads(cfg_file.read_text())["num_hidden_layers"]) if cfg_file.exists() else 0
    if n <= top_layers:
        return "all-linear"
    layers = "|".join(str(i) for i in range(n - top_layers, n))
    return rf".*\.layers\.({layers})\.(self_attn|mlp)\.\w+_proj"


def _preference_step(ws: Path, bot, current: str, name: str, pairs: list[dict[str, str]], cfg: ImproveConfig,
                     say: Callable[[str], None], number: int) -> dict[str, Any]:
    """DPO on the SFT candidate, prompts in the served QA format; a failure keeps the SFT candidate."""
    if len(pairs) < cfg.min_pairs:
        say(f"cycle {number}: DPO skipped: {len(pairs)} preference pairs, needs at least {cfg.min_pairs}")
        return {"status": "skipped", "reason": f"{len(pairs)} preference pairs; DPO needs at least {cfg.min_pairs}"}
    from assistant.improve.prompts import qa_messages
    from foundation.model_paths import registry_model_path
    from finetune.preference import DPOConfig, PreferencePair, dpo_tune

    prefs = [PreferencePair(qa_messages(bot, p["prompt"], model=current) or [{"role": "user", "content": p["prompt"]}],
                            p["chosen"], p["rejected"]) for p in pairs if p["chosen"].strip() != p["rejected"].strip()]
    say(f"cycle {number}: DPO on {len(prefs)} preference pairs ({cfg.dpo_steps} steps, beta {cfg.dpo_beta})")
    try:
        out = dpo_tune(registry_model_path(ws, name), prefs,
                       DPOConfig(beta=cfg.dpo_beta, lr=cfg.dpo_lr, steps=cfg.dpo_steps, max_length=cfg.max_length,
                                 device=cfg.device, seed=cfg.seed, progress=cfg.progress))
    except Exception as exc:  # noqa: BLE001 - the SFT candidate is still whole: evaluate that
        log.exception("DPO failed")
        return {"status": "failed", "reason": f"{type(exc).__name__}: {exc}; the SFT candidate is evaluated as is"}
    out.pop("losses", None)
    return {"status": "done", **out}


def _training_summary(result, cfg: ImproveConfig) -> dict[str, Any]:
    m = result.metrics
    return {"method": cfg.method, "lr": cfg.lr, "epochs": cfg.epochs, "lora_layers": cfg.lora_layers or "all", "steps": m.get("steps"),
            "train_loss_first": m.get("train_loss_first"), "train_loss_last": m.get("train_loss_last"),
            "seconds": m.get("seconds"), "tokens_per_s": m.get("tokens_per_s"), "device": m.get("device"),
            "output": str(result.output_dir)}


def _expected_paths(bot, heldout: list[Accepted], state: dict[str, Any]) -> dict[str, str | None]:
    """Which document holds each accepted answer (looked up once, then kept in the state)."""
    out = {}
    for item in heldout:
        entry = state["heldout"].setdefault(item.message_id, item.to_json())
        if "expected_path" not in entry or entry["expected_path"] is None and not item.declined:
            entry["expected_path"] = expected_path(bot, item)
        out[item.message_id] = entry["expected_path"]
    return out


def _model_identity(ws: Path, bot, model: str) -> str:
    """Name + weights file sizes/mtimes: a cached evaluation is reused only for the same weights."""
    from foundation.model_paths import resolve_generator

    path = Path(resolve_generator(model, ws))
    files = sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")) if path.is_dir() else []
    return json.dumps([model, str(path)] + [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in files])


def _eval_key(ws: Path, bot, model: str, heldout: list[Accepted], sanity: list[dict[str, str]]) -> str:
    c = bot.config
    index_gen = (ws / "index" / "CURRENT").read_text().strip() if (ws / "index" / "CURRENT").exists() else ""
    parts = [_model_identity(ws, bot, model), index_gen,
             json.dumps([[h.message_id, h.question, h.answer, h.declined] for h in heldout]),
             json.dumps(sanity), json.dumps([c.top_k, c.context_passages, c.max_new_tokens, c.min_relevance,
                                             c.temperature, c.context_window, c.backend])]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:20]


def _cached_eval(ws, bot, model, heldout, expected, sanity, state, cfg) -> dict[str, Any]:
    """The served model's evaluation, reused while its weights, the index and the sets are unchanged."""
    key = _eval_key(ws, bot, model, heldout, sanity)
    hit = state["eval_cache"].get(key)
    if hit is not None:
        return {**hit, "cached": True}
    ev = evaluate_model(bot, model, heldout, expected, sanity, progress=cfg.progress)
    _store(state, key, ev)
    return ev


def _remember_eval(ws, bot, model, heldout, sanity, state, ev) -> None:
    _store(state, _eval_key(ws, bot, model, heldout, sanity), ev)


def _store(state: dict[str, Any], key: str, ev: dict[str, Any]) -> None:
    cache = state["eval_cache"]
    cache[key] = ev
    for old in list(cache)[:-EVAL_CACHE_SIZE]:
        del cache[old]


def _discard(ws: Path, registry, name: str) -> None:
    """Forget a candidate and delete its folder (a merged model is as large as the base)."""
    try:
        folder = registry.model_dir(name).parent
        registry.remove(name)
    except Exception:  # noqa: BLE001 - not registered: nothing to forget
        folder = ws / "models" / name
    if folder.is_dir() and folder.resolve().is_relative_to((ws / "models").resolve()):
        shutil.rmtree(folder, ignore_errors=True)


def _unload(bot, name: str) -> None:
    """Drop a candidate's weights from the facade's model cache (it is either served anew or gone)."""
    bot.unload(name)


def config_from_dict(values: dict[str, Any]) -> ImproveConfig:
    known = {f for f in ImproveConfig.__dataclass_fields__}
    return ImproveConfig(**{k: v for k, v in values.items() if k in known})


__all__ = ["ImproveConfig", "CycleBusy", "run_cycle", "decide", "load_state", "config_from_dict"]
