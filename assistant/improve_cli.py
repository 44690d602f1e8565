"""`assistant improve`: run one learning cycle, or show the latest cycle's report.

`add_parser(subparsers)` registers the command; the main CLI sets `args.workspace` (a resolved Path).
"""
from __future__ import annotations

import argparse
import json
import sys

from assistant.improve.cycle import ImproveConfig, run_cycle
from assistant.improve.report import cycle_plot_path, improve_dir, latest_report, render_markdown

_D = ImproveConfig()


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "improve", help="learn from rated conversations: train a candidate, promote it only if it wins",
        description="Export rated answers and corrections, fine-tune a candidate from the served model, evaluate "
                    "both on a fixed held-out set and a general sanity set, and promote the candidate only when it "
                    "wins by a margin. Undo a promotion with `assistant models rollback`.")
    p.add_argument("--report", nargs="?", const="latest", metavar="CYCLE",
                   help="show the latest (or the given) cycle's report instead of running a cycle")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--min-examples", type=int, default=_D.min_examples,
                   help=f"new accepted answers needed to train (default {_D.min_examples})")
    p.add_argument("--heldout-fraction", type=float, default=_D.heldout_fraction,
                   help="share of questions kept for evaluation, by hash: keep it fixed so cycles compare")
    p.add_argument("--min-gain", type=float, default=_D.min_gain, help="held-out F1 gain needed to promote")
    p.add_argument("--sanity-tolerance", type=float, default=_D.sanity_tolerance,
                   help="largest allowed drop of the sanity set's F1")
    p.add_argument("--method", choices=("lora", "full"), default=_D.method)
    p.add_argument("--epochs", type=float, default=_D.epochs)
    p.add_argument("--lr", type=float, default=_D.lr)
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=_D.batch_size)
    p.add_argument("--lora-rank", type=int, default=_D.lora_rank)
    p.add_argument("--lora-layers", type=int, default=_D.lora_layers,
                   help="adapters only in the top N layers (0 = all): faster on CPU, less capacity")
    p.add_argument("--device", default=_D.device, help="auto (cuda -> mps -> cpu) | cpu | cuda")
    p.add_argument("--dpo", action="store_true",
                   help="after supervised tuning, a DPO step on the (correction, rejected answer) pairs")
    p.add_argument("--min-pairs", type=int, default=_D.min_pairs, help="preference pairs needed for the DPO step")
    p.add_argument("--dpo-steps", type=int, default=_D.dpo_steps)
    p.add_argument("--ranker", action="store_true",
                   help="also retrain the workspace's passage ranker (documents + rated answers) and register it")
    p.add_argument("--keep-rejected", action="store_true", help="keep a rejected candidate's weights")
    p.add_argument("--dry-run", action="store_true", help="build and count the data; train nothing")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_improve)
    return p


def run_improve(args) -> int:
    if args.report:
        return show_report(args)
    cfg = ImproveConfig(
        min_examples=args.min_examples, heldout_fraction=args.heldout_fraction, min_gain=args.min_gain,
        sanity_tolerance=args.sanity_tolerance, method=args.method, epochs=args.epochs, lr=args.lr,
        max_steps=args.max_steps, batch_size=args.batch_size, lora_rank=args.lora_rank, lora_layers=args.lora_layers, device=args.device,
        keep_rejected=args.keep_rejected, dry_run=args.dry_run, progress=not (args.no_progress or args.json),
        dpo=args.dpo, min_pairs=args.min_pairs, dpo_steps=args.dpo_steps, ranker=args.ranker,
    )
    report = run_cycle(args.workspace, cfg)
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False, default=str))
    return 1 if report["decision"]["status"] == "failed" else 0


def show_report(args) -> int:
    if args.report == "latest":
        report = latest_report(args.workspace)
    else:
        try:
            path = improve_dir(args.workspace) / f"cycle-{int(args.report):03d}" / "report.json"
        except ValueError:
            raise ValueError(f"--report takes a cycle number, got {args.report!r}") from None
        report = json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
    if report is None:
        print(f"no improvement cycle has finished in {args.workspace} yet: run `assistant improve`", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False, default=str))
        return 0
    print(render_markdown(report))
    plot = cycle_plot_path(args.workspace)
    if plot:
        print(f"plot: {plot}")
    return 0
