"""What runs on this machine and why: the CPU, the decoder the self-check chose, the embedder's
check, and the system tools some formats need (groff for manual pages' roff sources).

`assistant doctor` prints it, `/health` carries it, and a server logs it once at start-up, so that a
user whose answers differ between two machines can see whether the machines run different paths.
"""
from __future__ import annotations

import shutil
from typing import Any

from foundation.machine import cpu, describe


def runtime_report(bot: Any, *, run_checks: bool = False) -> dict:
    """The machine, the decoder and the embedder of `bot`. Without `run_checks` nothing is loaded or
    measured: what is not known yet says so (the first answer measures it)."""
    return {"machine": {**cpu(), "description": describe(cpu())},
            "decoder": decoder_report(bot, run_checks), "embedder": embedder_report(bot, run_checks),
            "formats": formats_report()}


def formats_report() -> dict:
    """Formats that need a system tool, and whether it is there (ingest reports each such file otherwise)."""
    groff = shutil.which("groff")
    return {"manual page sources (ls.1, open.2.gz)":
            "read with groff" if groff else "not read: groff is missing (Debian/Ubuntu: apt install groff-base)"}


def decoder_report(bot: Any, run_checks: bool) -> dict:
    config = bot.config
    if config.backend != "local":
        return {"decoder": f"{config.backend} server", "reason": f"generation runs at {config.openai_base_url}"}
    loaded = bot.loaded_generator()
    info = getattr(loaded, "decoder_info", None)
    if info:
        return dict(info)
    from assistant.generation import local_decoder  # may load torch for the check: only when asked to
    from foundation.model_paths import resolve_generator  # resolving converts the bundled model once

    if run_checks:
        decoder, reason = local_decoder(config, resolve_generator(bot.model_name, bot.workspace))
        return {"decoder": decoder, "reason": reason}
    return {"decoder": "not loaded yet", "reason": "chosen when the first answer loads the model (assistant doctor checks now)"}


def embedder_report(bot: Any, run_checks: bool) -> dict:
    status = bot.index.embedder_status(load=run_checks)
    check = status.get("check") or {}
    if check:
        status["check"] = {k: check[k] for k in ("agrees", "mean_cosine", "min_cosine", "threshold") if k in check}
    return status


def format_report(report: dict) -> str:
    """The report as a few lines for a terminal."""
    decoder, embedder = report["decoder"], report["embedder"]
    lines = [f"CPU       {report['machine']['description']}",
             f"decoder   {decoder['decoder']}", f"          {decoder['reason']}",
             f"embedder  {embedder['model']} ({embedder['backend']})"]
    check = embedder.get("check")
    if check:
        lines.append(f"          int8 mean cosine {check['mean_cosine']:.4f} against float32 on this CPU "
                     f"({'agrees' if check['agrees'] else 'disagrees'}; threshold {check['threshold']})")
    if embedder.get("fallback_reason"):
        lines.append(f"          float32 because {embedder['fallback_reason']}")
    lines += [f"formats   {what}: {how}" for what, how in report.get("formats", {}).items()]
    return "\n".join(lines)
