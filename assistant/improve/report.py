"""Cycle reports: `WORKSPACE/improve/cycle-NNN/report.json` + `report.md`, and a plot across cycles.

The UI's model panel reads them through two calls that never load a model:

    latest_report(workspace) -> dict | None     # the newest finished cycle's report.json
    cycle_plot_path(workspace) -> Path | None   # WORKSPACE/improve/progress.png, if drawn
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from foundation.workspace import atomic_write_bytes, atomic_write_json, atomic_write_text

IMPROVE_DIR = "improve"
PLOT_NAME = "progress.png"


def improve_dir(workspace: str | os.PathLike[str]) -> Path:
    return Path(workspace) / IMPROVE_DIR


def cycle_dirs(workspace: str | os.PathLike[str]) -> list[Path]:
    """Every cycle folder, oldest first (including unfinished ones without a report)."""
    root = improve_dir(workspace)
    if not root.is_dir():
        return []
    return sorted((p for p in root.glob("cycle-*") if p.is_dir() and p.name[6:].isdigit()),
                  key=lambda p: int(p.name[6:]))


def list_reports(workspace: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The report of every finished cycle, oldest first."""
    out = []
    for d in cycle_dirs(workspace):
        try:
            out.append(json.loads((d / "report.json").read_text(encoding="utf-8")))
        except (FileNotFoundError, json.JSONDecodeError):
            continue  # a cycle that crashed before its report: nothing to show
    return out


def latest_report(workspace: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The newest finished cycle's report (a dict as in report.json), or None before any cycle."""
    reports = list_reports(workspace)
    return reports[-1] if reports else None


def cycle_plot_path(workspace: str | os.PathLike[str]) -> Path | None:
    """The PNG of held-out F1 per cycle (served vs candidate), or None before the first evaluation."""
    path = improve_dir(workspace) / PLOT_NAME
    return path if path.is_file() else None


def write_report(cycle_dir: Path, report: dict[str, Any]) -> None:
    """report.json and report.md, each written atomically (report.json last: it marks the cycle done)."""
    atomic_write_text(cycle_dir / "report.md", render_markdown(report))
    atomic_write_json(cycle_dir / "report.json", report)


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


METRIC_ROWS = [
    ("held-out token F1", ("heldout", "f1")),
    ("held-out exact match", ("heldout", "exact_match")),
    ("citation accuracy", ("heldout", "citation_accuracy")),
    ("decline accuracy", ("heldout", "decline_accuracy")),
    ("unsupported answers (share)", ("heldout", "unsupported_rate")),
    ("sanity token F1", ("sanity", "f1")),
    ("sanity exact match", ("sanity", "exact_match")),
]


def metric(evaluation: dict[str, Any] | None, path: tuple[str, str]) -> Any:
    return ((evaluation or {}).get(path[0]) or {}).get(path[1])


def render_markdown(report: dict[str, Any]) -> str:
    decision = report.get("decision", {})
    lines = [f"# Improvement cycle {report.get('cycle')}", "",
             f"- started {report.get('started_at')}, took {report.get('seconds', 0):.1f} s",
             f"- served model before: `{report.get('current_model')}`",
             f"- candidate: `{report.get('candidate_model') or '(none trained)'}`",
             f"- **decision: {decision.get('status', '?')}**"]
    for reason in decision.get("reasons", []):
        lines.append(f"  - {reason}")
    if decision.get("status") == "promoted":
        lines.append(f"- undo at once with `assistant models rollback` (serves `{report.get('current_model')}` again)")
    lines += ["", "## Data", "", "| count | value |", "| --- | ---: |"]
    lines += [f"| {k.replace('_', ' ')} | {v} |" for k, v in report.get("data", {}).items()]
    evals = report.get("metrics", {})
    if evals:
        cur, cand = evals.get("current"), evals.get("candidate")
        lines += ["", "## Metrics", "", "| metric | served | candidate | change |", "| --- | ---: | ---: | ---: |"]
        for label, path in METRIC_ROWS:
            a, b = metric(cur, path), metric(cand, path)
            delta = f"{b - a:+.3f}" if isinstance(a, (int, float)) and isinstance(b, (int, float)) else "–"
            lines.append(f"| {label} | {_fmt(a)} | {_fmt(b)} | {delta} |")
        n = metric(cur, ("heldout", "n"))
        lines.append(f"\n{n} held-out questions, {metric(cur, ('heldout', 'n_declined'))} rightly declined ones, "
                     f"{metric(cur, ('sanity', 'n'))} sanity questions.")
        samples = list(zip((cur or {}).get("heldout", {}).get("samples", []),
                           (cand or {}).get("heldout", {}).get("samples", [])))
        if samples:
            lines += ["", "## Held-out answers", "", "| question | accepted | served | candidate |",
                      "| --- | --- | --- | --- |"]
            for a, b in samples[:8]:
                cells = [a["question"], a["reference"], a["prediction"], b["prediction"]]
                lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    if report.get("training"):
        t = report["training"]
        lines += ["", "## Training", "", "| setting | value |", "| --- | --- |"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in t.items()]
    pref = report.get("preference")
    if pref:
        lines += ["", "## Preference tuning (DPO)", ""]
        if pref.get("status") != "done":
            lines.append(f"{pref.get('status')}: {pref.get('reason', '')}")
        else:
            lines += [f"{pref['pairs']} pairs, {pref['steps']} steps, beta {pref['beta']}, lr {pref['lr']}.", "",
                      "| | DPO loss | reward accuracy | chosen more likely | mean log-prob margin |",
                      "| --- | --- | --- | --- | --- |"]
            for phase in ("before", "after"):
                m = pref[phase]
                lines.append(f"| {phase} | {m['loss']:.3f} | {m['reward_accuracy']:.2f} | "
                             f"{m['preference_accuracy']:.2f} | {m['mean_margin']:+.2f} |")
    rules = report.get("rules")
    if rules:
        lines += ["", "## Promotion rule", "", rules.get("text", "")]
    return "\n".join(lines) + "\n"


def _cell(text: str, limit: int = 90) -> str:
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text[:limit] + ("…" if len(text) > limit else "")


def draw_plot(workspace: str | os.PathLike[str]) -> Path | None:
    """Held-out F1 and sanity F1 of the served model and each candidate, per evaluated cycle."""
    points = [r for r in list_reports(workspace) if r.get("metrics")]
    if not points:
        return None
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [r["cycle"] for r in points]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    for who, style in (("current", "o-"), ("candidate", "s--")):
        ax.plot(x, [metric(r["metrics"].get(who), ("heldout", "f1")) for r in points], style,
                label=f"held-out F1 ({'served' if who == 'current' else 'candidate'})")
    ax.plot(x, [metric(r["metrics"].get("candidate"), ("sanity", "f1")) for r in points], "^:",
            label="sanity F1 (candidate)", alpha=0.6)
    for r in points:
        if r.get("decision", {}).get("status") == "promoted":
            ax.annotate("promoted", (r["cycle"], metric(r["metrics"].get("candidate"), ("heldout", "f1")) or 0),
                        textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
    ax.set_xlabel("improvement cycle")
    ax.set_ylabel("token F1")
    ax.set_xticks(x)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("assistant improve: held-out quality per cycle")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    path = improve_dir(workspace) / PLOT_NAME
    atomic_write_bytes(path, buf.getvalue())
    return path
