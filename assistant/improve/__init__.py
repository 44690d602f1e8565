"""The learning loop (`assistant improve`): rated conversations -> candidate model -> promote only if better.

    from assistant.improve import run_cycle, ImproveConfig, latest_report, cycle_plot_path
    report = run_cycle("workspace", ImproveConfig(min_examples=8))
    latest_report("workspace")["decision"]    # {"status": "promoted"|"rejected"|..., "reasons": [...]}
    cycle_plot_path("workspace")              # Path to progress.png, or None

Modules: `data` (export -> training / held-out / preference data), `prompts` (the QA task's
prompt format), `evaluate` (held-out through the assistant, sanity set), `cycle` (the loop and
its promotion rule), `report` (report.json / report.md / the plot).
"""
from assistant.improve.cycle import CycleBusy, ImproveConfig, decide, run_cycle
from assistant.improve.data import is_held_out, normalize_question
from assistant.improve.report import cycle_plot_path, latest_report, list_reports

__all__ = ["CycleBusy", "ImproveConfig", "cycle_plot_path", "decide", "is_held_out", "latest_report",
           "list_reports", "normalize_question", "run_cycle"]
