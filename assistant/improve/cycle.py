"""One improvement cycle: export -> data -> fine-tune a candidate -> evaluate both -> promote or keep.

    report = run_cycle("workspace")            # what `assistant improve` runs
    report["decision"]["status"]               # "promoted" | "rejected" | "skipped" | "failed" | "dry-run"

The cycle is state + steps + the promotion rule: `state.CycleRun` carries one run's inputs and
results, `steps` holds one function per step, `promotion.decide` is the rule. This module runs
them in order and stops early (skipped, dry run, failed training) with a report every time.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable

from assistant.core import Assistant
from assistant.improve import steps
from assistant.improve.config import ImproveConfig, config_from_dict
from assistant.improve.promotion import decide, rules
from assistant.improve.ranking import train_ranker_step
from assistant.improve.state import CycleBusy, CycleRun, cycle_lock, load_state, next_cycle_dir, now
from finetune.registry import Registry
from foundation.workspace import resolve_workspace

log = logging.getLogger(__name__)


def run_cycle(workspace: str | os.PathLike[str] | None = None, config: ImproveConfig | None = None, *,
              bot: Assistant | None = None, say: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run one cycle and return its report (also written to WORKSPACE/improve/cycle-NNN/)."""
    cfg = config or ImproveConfig()
    cfg.validate()
    ws = Path(bot.workspace) if bot is not None else resolve_workspace(workspace)
    say = say or (lambda msg: print(msg, flush=True) if cfg.progress else None)
    own_bot = bot is None
    bot = bot or Assistant.open(ws)
    try:
        with cycle_lock(ws):
            return _run(CycleRun(ws, bot, cfg, say))
    finally:
        if own_bot:
            bot.close()


def _run(run: CycleRun) -> dict[str, Any]:
    """The steps in order; each early stop still writes a report and leaves the served model alone."""
    if run.bot.log is None:
        raise RuntimeError("the conversation log is off for this workspace (log_enabled = false): nothing to learn from")
    _start(run)
    steps.export_data(run)
    cfg, data = run.cfg, run.data
    if cfg.ranker and not cfg.dry_run:  # needs no rated answers, so it runs even when the generator step is skipped
        run.report["ranker"] = train_ranker_step(run)
    if len(data.train) < cfg.min_examples:
        return steps.finish(run, "skipped", [
            f"only {len(data.train)} new accepted answers (rated +1 or corrected) outside "
            f"the held-out set; a cycle needs at least {cfg.min_examples} (--min-examples)"])
    if cfg.dry_run:
        return steps.finish(run, "dry-run", ["dry run: data built and counted, nothing trained"])
    sft_path = steps.build_examples(run)
    run.candidate = f"improve-{run.number:03d}"
    try:
        steps.train_candidate(run, sft_path)
    except Exception as exc:  # noqa: BLE001 - a failed run must still leave a report and the served model
        log.exception("training failed")
        steps.discard(run, Registry(run.workspace))  # leftovers (checkpoints, a half-written folder)
        return steps.finish(run, "failed", [f"training failed: {type(exc).__name__}: {exc}"])
    run.report["candidate_model"] = run.candidate
    if cfg.dpo:
        run.report["preference"] = steps.preference_tune(run, data.pairs)
    current, candidate, sanity = steps.evaluate_both(run)
    promote, reasons = decide(current, candidate, cfg)
    if candidate["sanity"] is None:
        reasons.append("sanity set not run for the candidate: the held-out check already failed")
    run.report["metrics"] = {"current": current, "candidate": candidate}
    steps.apply_decision(run, promote, reasons, candidate, sanity)
    return steps.finish(run, "promoted" if promote else "rejected", reasons)


def _start(run: CycleRun) -> None:
    """Number the cycle, make its folder, and open its report with the rule it will apply."""
    run.state = load_state(run.workspace)
    run.number, run.folder = next_cycle_dir(run.workspace)
    run.current = run.bot.model_name
    run.report = {"cycle": run.number, "started_at": now(), "current_model": run.current,
                  "candidate_model": None, "rules": {**rules(run.cfg), "text": run.cfg.rule_text()}}


__all__ = ["ImproveConfig", "CycleBusy", "run_cycle", "decide", "load_state", "config_from_dict"]
