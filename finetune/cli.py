"""`assistant finetune ...` and `assistant models ...`: argparse sub-commands for the lead's CLI.

`add_parsers(subparsers, log_reader=...)` registers both; each handler is stored as `func`
(`args.func(args)` returns an exit code) and reads `args.workspace`, a resolved Path set by the
main CLI. `log_reader(workspace)` returns the conversation log's rated records for `--from-log`:
the assistant, which owns the log, passes it in (finetune sits below the log and never imports it).
Heavy imports happen inside the handlers so `assistant --help` stays instant.
`python -m finetune.cli` runs the same commands standalone (handy under torchrun); there
`--from-log` says to run `assistant finetune` (or `torchrun -m assistant.cli finetune`) instead.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from finetune.errors import DataError, OutOfMemory, TrainingError
from finetune.registry import NO_RANKER, Registry, RegistryError
from foundation.workspace import resolve_workspace

LogReader = Callable[[Path], Iterable[dict[str, Any]]]


def add_parsers(subparsers, *, log_reader: LogReader | None = None) -> None:
    add_finetune_parser(subparsers, log_reader=log_reader)
    add_models_parser(subparsers)


def add_finetune_parser(subparsers, *, log_reader: LogReader | None = None) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "finetune",
        help="fine-tune the generator on documents, Q&A files or the conversation log",
        description="Fine-tune a causal LM (LoRA or full) and register it in WORKSPACE/models. "
        "Multi-GPU: torchrun --nproc_per_node=N -m finetune.cli finetune ...",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    d = p.add_argument_group("data (at least one)")
    d.add_argument("--docs", type=Path, action="append", default=[], metavar="PATH",
                   help="file or folder in any format ingest reads (.md/.txt/.rst/.html/.pdf/.docx...) for continued pre-training, "
                   "packed into --max-length blocks; repeatable")
    d.add_argument("--qa", type=Path, action="append", default=[], metavar="FILE.jsonl",
                   help='Q&A / chat JSONL ({"question","answer"} or {"messages":[...]}) for supervised tuning, loss on answers only; repeatable')
    d.add_argument("--logs", type=Path, action="append", default=[], metavar="FILE.jsonl",
                   help="conversation log export: keeps thumbs-up answers and corrections; repeatable")
    d.add_argument("--from-log", action="store_true", help="train on this workspace's conversation log (rated answers, corrections)")
    d.add_argument("--from-index", action="store_true",
                   help="continued pre-training on the text of this workspace's index (every format ingest reads: PDF, DOCX, HTML...)")
    d.add_argument("--val-fraction", type=float, default=0.1,
                   help="share held out (by content hash) for evaluation; more = steadier metrics, less to learn from")
    m = p.add_argument_group("model")
    m.add_argument("--method", choices=["lora", "full"], default="lora",
                   help="lora trains ~1%% of the weights (small memory, fast, hard to break the model); full trains all (more capacity, ~4x memory)")
    m.add_argument("--recipe", choices=["lora", "full", "ranker"], default=None,
                   help="lora / full: the generator (same as --method); ranker: a passage ranker learnt from this workspace's "
                   "index alone (no labels needed), served when it beats the untrained order on held-out pages")
    k = p.add_argument_group("ranker (--recipe ranker; --lr, --max-steps, --seed, --name, --no-register apply, and --use "
                             "serves it only if it wins on held-out pages)")
    k.add_argument("--max-seconds", type=float, default=480.0,
                   help="training stops past this, keeping what it learnt (pairs and evaluation come on top)")
    k.add_argument("--max-queries", type=int, default=2000,
                   help="training queries made from headings and sentences; more learns more, costs embedding time")
    k.add_argument("--heldout-pages", type=float, default=0.2, help="share of pages held out to decide whether it serves")
    m.add_argument("--base", default="smollm2", help="base model: bundled 'smollm2', a registry name, a HF id or a local folder")
    m.add_argument("--lora-rank", type=int, default=16, help="adapter rank: higher = more capacity and memory")
    m.add_argument("--lora-alpha", type=int, default=None, help="adapter scale (default 2 x rank)")
    m.add_argument("--lora-dropout", type=float, default=0.05, help="dropout on the adapter input: regularises small data sets")
    o = p.add_argument_group("optimisation")
    o.add_argument("--epochs", type=float, default=3.0, help="passes over the training set; more fits better until it memorises")
    o.add_argument("--max-steps", type=int, default=None, help="exact optimizer steps (overrides --epochs)")
    o.add_argument("--lr", type=float, default=None, help="peak learning rate (default 2e-4 LoRA, 2e-5 full); too high diverges")
    o.add_argument("--warmup-steps", type=int, default=0, help="linear warm-up steps before cosine decay: steadier start")
    o.add_argument("--batch-size", type=int, default=4, help="sequences per device per micro-batch: the main memory knob")
    o.add_argument("--grad-accum", type=int, default=1, help="micro-batches per step: bigger effective batch, no extra memory")
    o.add_argument("--max-length", type=int, default=512, help="tokens per sequence: longer keeps more context, costs memory and time")
    o.add_argument("--grad-checkpointing", action="store_true", help="recompute activations in backward: ~30%% slower, much less memory")
    o.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto", help="auto = bf16 on GPU, fp32 on CPU")
    o.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    o.add_argument("--strategy", choices=["ddp", "fsdp"], default="ddp",
                   help="under torchrun: ddp replicates the model (fast), fsdp shards it (for models too big for one GPU)")
    o.add_argument("--seed", type=int, default=0, help="data order and initialisation")
    r = p.add_argument_group("output")
    r.add_argument("--name", default=None, help="registry name (default <method>-<UTC time>)")
    r.add_argument("--output", type=Path, default=None, help="run folder (default WORKSPACE/models/NAME)")
    r.add_argument("--use", action="store_true", help="serve the new model right away (rollback with `assistant models rollback`)")
    r.add_argument("--no-register", action="store_true", help="save the run without adding it to the registry")
    r.add_argument("--overwrite", action="store_true", help="replace a registered model of the same name")
    r.add_argument("--eval-every", type=int, default=0, help="validation loss every N steps (0 = before and after only)")
    r.add_argument("--eval-qa-examples", type=int, default=32, help="held-out Q&A answered for exact match / F1 (0 = skip; each costs a generation)")
    r.add_argument("--save-every", type=int, default=0, help="checkpoint every N steps, for --resume after a crash (0 = never)")
    r.add_argument("--resume", action="store_true", help="continue from the run folder's latest checkpoint (same --name and data)")
    r.add_argument("--stop-after-steps", type=int, default=0,
                   help="checkpoint and exit after N steps (for time-limited job slots); continue with --resume")
    r.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")
    p.set_defaults(func=run_finetune, log_reader=log_reader)
    return p


def add_models_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("models", help="list, switch or roll back fine-tuned models",
                              description="The workspace's model registry (WORKSPACE/models/registry.json).")
    sub = p.add_subparsers(dest="models_command", metavar="{list,use,rollback,show}")
    sub.add_parser("list", help="registered models; * marks the one served").add_argument("--json", action="store_true")
    use = sub.add_parser("use", help="serve NAME from now on ('base' = the untuned model; a ranker's name serves that "
                                     "ranker, 'no-ranker' stops reranking)")
    use.add_argument("model_name", metavar="NAME")
    sub.add_parser("rollback", help="swap back to the previously served model (instant)")
    show = sub.add_parser("show", help="one model's entry and card")
    show.add_argument("model_name", metavar="NAME")
    p.set_defaults(func=run_models)
    return p


def _config_from_args(args):
    from finetune.train import TrainConfig  # torch and transformers: only when a command trains, so --help stays instant

    return TrainConfig(
        base=args.base, method=args.method, docs=args.docs, qa=args.qa, logs=args.logs, from_log=args.from_log, from_index=args.from_index,
        val_fraction=args.val_fraction, max_length=args.max_length, epochs=args.epochs, max_steps=args.max_steps,
        lr=args.lr, warmup_steps=args.warmup_steps, batch_size=args.batch_size, grad_accum=args.grad_accum,
        grad_checkpointing=args.grad_checkpointing, lora_rank=args.lora_rank, lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout, device=args.device, precision=args.precision, strategy=args.strategy,
        seed=args.seed, workspace=Path(args.workspace), name=args.name, output=args.output,
        register=not args.no_register, use=args.use, overwrite=args.overwrite, eval_every=args.eval_every,
        eval_qa_examples=args.eval_qa_examples, save_every=args.save_every, resume=args.resume, stop_after_steps=args.stop_after_steps,
        progress=not args.no_progress, log_reader=getattr(args, "log_reader", None),
    )


def run_finetune(args) -> int:
    if args.recipe == "ranker":
        return run_ranker(args)
    if args.recipe:
        args.method = args.recipe
    from finetune.train import train  # torch and transformers: only when a command trains, so --help stays instant

    try:
        result = train(_config_from_args(args))
    except OutOfMemory as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except (DataError, TrainingError, RegistryError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if result.stopped_early:
        if os.environ.get("RANK", "0") != "0":
            return 0
        print(result.resume_hint)
        return 130 if result.stop_reason == "interrupted" else 0
    if result.model_path is None:  # non-main rank
        return 0
    m = result.metrics
    print(f"model {result.name!r} saved to {result.model_path}")
    for phase in ("base", "tuned"):
        if phase in m:
            shown = {k: round(v, 4) for k, v in m[phase].items() if isinstance(v, float)}
            print(f"  {phase:5s}: {shown}")
    print(f"  {m.get('steps')} steps, {m.get('tokens_per_s')} tokens/s on {m.get('device')}")
    if not args.no_register and not args.use:
        print(f"serve it with: assistant models use {result.name}")
    return 0


def run_ranker(args) -> int:
    """`assistant finetune --recipe ranker`: learn the workspace's ranker, print the held-out figures and the decision."""
    from finetune.recipes.ranker import RankerConfig, train_ranker  # torch: only when a ranker trains

    cfg = RankerConfig(workspace=Path(args.workspace), name=args.name, heldout_fraction=args.heldout_pages,
                       max_train=args.max_queries, max_seconds=args.max_seconds, seed=args.seed,
                       serve=args.use, register=not args.no_register, progress=not args.no_progress,
                       **({"lr": args.lr} if args.lr else {}), **({"max_steps": args.max_steps} if args.max_steps else {}))
    try:
        result = train_ranker(cfg)
    except (DataError, RegistryError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    m = result.metrics
    print(f"ranker {result.name!r} saved to {result.folder}")
    for view in ("lists", "corpus"):
        a, b = m["untrained"][view], m["trained"][view]
        print(f"  held-out {view:6s}: MRR {a['mrr']:.3f} -> {b['mrr']:.3f}, nDCG@10 {a['ndcg@10']:.3f} -> {b['ndcg@10']:.3f}"
              f" ({a['queries']} queries)")
    t = m["training"]
    print(f"  {t['steps']} steps in {t['seconds']} s ({t['stop_reason']}); int8 {'serves' if m['int8']['agrees'] else 'not used'}")
    for reason in result.reasons:
        print(f"  {reason}")
    if not result.served and args.use is False and not args.no_register:
        print(f"  registered, not served; check it on your questions, then: assistant models use {result.name}")
    return 0


def run_models(args) -> int:

    reg = Registry(args.workspace)
    cmd = args.models_command or "list"
    try:
        if cmd == "list":
            return _list(reg, getattr(args, "json", False))
        if cmd == "use":
            reg.use(args.model_name)
            if args.model_name in reg.rankers() or args.model_name == NO_RANKER:
                print(f"now ranking with: {reg.current_ranker or 'no ranker (the hybrid order)'}")
            else:
                print(f"now serving: {reg.current or 'base (no fine-tuned model)'}")
        elif cmd == "rollback":
            now = reg.rollback()
            print(f"rolled back; now serving: {now or 'base (no fine-tuned model)'}")
        elif cmd == "show":
            entry = reg.get(args.model_name)
            print(json.dumps({args.model_name: entry}, indent=2))
            card = reg.model_dir(args.model_name).parent / "README.md"
            if card.exists():
                print("\n" + card.read_text(encoding="utf-8"))
    except RegistryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _list(reg, as_json: bool) -> int:
    data = reg.load()
    if as_json:
        print(json.dumps(data, indent=2))
        return 0
    current = data["current"]
    print(f"{'*' if current is None else ' '} base  (no fine-tuning)")
    for name, e in sorted(data.get("rankers", {}).items(), key=lambda kv: kv[1].get("created_at", "")):
        held = e.get("metrics", {}).get("trained", {}).get("lists", {})
        score = f"held-out MRR={held['mrr']:.3g}" if isinstance(held.get("mrr"), float) else ""
        print(f"{'*' if name == data.get('current_ranker') else ' '} {name}  ranker on {e.get('base')}  {e.get('created_at', '')}  {score}")
    for name, e in sorted(data["models"].items(), key=lambda kv: kv[1].get("created_at", "")):
        tuned = e.get("metrics", {}).get("tuned", {})
        score = ", ".join(f"{k}={tuned[k]:.3g}" for k in ("perplexity", "token_f1") if isinstance(tuned.get(k), float))
        print(f"{'*' if name == current else ' '} {name}  {e.get('method')} on {e.get('base')}  {e.get('created_at', '')}  {score}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Standalone entry: `python -m finetune.cli [--workspace DIR] finetune|models ...` (no conversation log)."""
    parser = argparse.ArgumentParser(prog="finetune")
    parser.add_argument("--workspace", default=None, help="workspace folder (default $ASSISTANT_WORKSPACE or ./workspace)")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    args.workspace = resolve_workspace(args.workspace)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
