"""The `assistant` command: ingest, ask, serve, demo, eval, logs, finetune, models, improve.

Each sub-command resolves the workspace once (`--workspace`, `ASSISTANT_WORKSPACE`, `./workspace`)
and models load only when a command needs them, so `assistant --help` returns at once.
"""
from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
from pathlib import Path

from assistant.tasks.routing import TASK_CHOICES
from foundation.model_paths import ModelNotFoundError
from foundation.workspace import atomic_write_text, resolve_workspace
from index.evaluation import evaluate as evaluate_retrieval, format_table as retrieval_table
from ui.security import resolve_access


def sample_docs_dir() -> Path:
    """The bundled sample documents (the product's own user guide, English and Chinese)."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "sample_docs", here.parent / "docs"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("The bundled sample documents are missing (expected docs/ beside the package).")


def _open(args):
    from assistant import Assistant  # lazy for start-up speed: `--help` and `logs` never need the facade

    overrides = {}
    if getattr(args, "no_log", False):
        overrides["log_enabled"] = False
    return Assistant.open(args.workspace, **overrides)


def cmd_ingest(args) -> int:
    bot = _open(args)
    report = bot.ingest(args.paths, prune=args.prune, progress=not args.json, collection=args.collection)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        from rich.console import Console
        from rich.table import Table

        console = Console()
        table = Table(title="Ingest report")
        table.add_column("outcome")
        table.add_column("files", justify="right")
        for name in ("added", "updated", "skipped", "removed"):
            table.add_row(name, str(len(getattr(report, name))))
        table.add_row("failed", str(len(report.failed)))
        console.print(table)
        for failure in report.failed:
            console.print(f"[red]failed[/red] {failure.path}: {failure.reason}")
        console.print(report.summary() + (f" into collection {args.collection}" if args.collection else ""))
        if args.collection and not bot.collections.readable_by_anyone(args.collection):
            console.print(f"note: nobody but the operator reads {args.collection!r} yet: "
                          f"assistant collections grant {args.collection} USER|group:NAME")
    return 0


def cmd_ask(args) -> int:
    bot = _open(args)
    if args.group:
        if not args.user:
            raise ValueError("--group needs --user: the groups are that user's")
        bot.collections.memberships[args.user] = frozenset(g for item in args.group for g in item.split(",") if g)
    conversation = _last_conversation(bot, args.user) if args.conversation == "last" else args.conversation
    kwargs = dict(task=args.task, conversation_id=conversation, model=args.model, k=args.k,
                  user=args.user, log=not args.no_log)
    if args.tests:
        kwargs["tests"] = Path(args.tests).read_text()
    if args.json:
        answer = bot.ask(args.question, **kwargs)
        print(json.dumps(answer.to_dict(), indent=2, ensure_ascii=False, default=str))
        return 0
    progress = _StatusLine(sys.stderr)
    stream = bot.stream(args.question, on_status=progress.show, **kwargs)
    for delta in stream:
        progress.stop()  # the answer's text has the terminal from here on
        sys.stdout.write(delta)
        sys.stdout.flush()
    progress.clear()
    answer = stream.answer
    print()
    if answer is None:
        return 1
    for note in answer.extra.get("notes", []):
        print(f"note: {note}")
    if answer.sources:
        print("\nSources:")
        for i, src in enumerate(answer.sources, 1):
            where = f" — {src.locator}" if src.locator else ""
            print(f"  [{i}] {src.title}{where} ({src.path}) score={src.score:.3f}")
    unsupported = [s.text for s in answer.sentences if not s.supported]
    if unsupported:
        print("\nNot supported by the sources:")
        for s in unsupported:
            print(f"  - {s}")
    print(f"\nconversation {answer.conversation_id}  message {answer.message_id}  "
          f"model {answer.model}  {answer.timings.total_ms / 1000:.1f}s")
    return 0


class _StatusLine:
    """Progress ("summarising part 3/12, about 40 s left") on one line of a terminal's stderr until
    the answer's text starts (then it would overwrite the text); nothing on a file or a pipe."""

    def __init__(self, stream):
        self.stream = stream
        self.enabled = stream.isatty()
        self.shown = False

    def show(self, text: str) -> None:
        if self.enabled:
            self.stream.write(f"\r\033[K… {text}")
            self.stream.flush()
            self.shown = True

    def clear(self) -> None:
        if self.shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self.shown = False

    def stop(self) -> None:
        self.clear()
        self.enabled = False


def _last_conversation(bot, user: str | None) -> str:
    """`--conversation last`: the most recently active conversation of this user in the log."""
    if bot.log is None:
        raise SystemExit("--conversation last needs the conversation log (log_enabled = true)")
    recent = bot.log.list_conversations(user=user, limit=1)
    if not recent:
        raise SystemExit("--conversation last: the log has no conversation yet; ask a first question")
    return recent[0].id


def _serve_kwargs(args) -> dict:
    """Raw serve options; ui.security parses and checks them (USER:PASS, ASSISTANT_API_KEYS)."""
    return dict(host=args.host, port=args.port, share=args.share, auth=args.auth, auth_file=args.auth_file,
                allow_public_share=args.allow_public_share, api_keys=args.api_key, api_keys_file=args.api_keys_file)


def _check_serve_options(args) -> None:
    """Refuse a bad --share/--auth/--api-key combination before any model loads (seconds saved on a typo)."""
    o = _serve_kwargs(args)
    resolve_access(auth=o["auth"], auth_file=o["auth_file"], api_keys=o["api_keys"], api_keys_file=o["api_keys_file"],
                   share=o["share"], allow_public_share=o["allow_public_share"])


def _warn_open_collections(bot, args) -> None:
    """Without logins or keys every request reads every collection: say so when some are not `shared`."""
    o = _serve_kwargs(args)
    if o["auth"] or o["auth_file"] or o["api_keys"] or o["api_keys_file"] or os.environ.get("ASSISTANT_API_KEYS"):
        return
    private = sorted(i.name for i in bot.collections.list() if not i.everyone and i.documents)
    if private:
        print(f"WARNING: no sign-in: every visitor reads every collection, including {', '.join(private)}. "
              "Add --auth USER:PASS[:groups] (or --auth-file) so each user reads only what is granted to them.")


def cmd_serve(args) -> int:
    _check_serve_options(args)
    from ui.server import serve  # Gradio and uvicorn take seconds to import: only the serving commands pay

    bot = _open(args)
    _warn_open_collections(bot, args)
    print("Loading the models and the conversation log ...")
    bot.warm_up()
    _announce_paths(bot)
    serve(bot, **_serve_kwargs(args))
    return 0


def cmd_worker(args) -> int:
    from assistant.watch import run_worker  # loads the models: only this command pays

    return run_worker(args.workspace, args.folder, interval=args.interval, once=args.once,
                      metrics_port=args.metrics_port)


def cmd_demo(args) -> int:
    _check_serve_options(args)
    from ui.server import serve  # Gradio and uvicorn take seconds to import: only the serving commands pay

    bot = _open(args)
    docs = sample_docs_dir()
    print(f"Ingesting the bundled sample documents from {docs} into {bot.workspace} ...")
    print(bot.ingest([docs]).summary())
    print("Loading the model (the first run converts the bundled SmolLM2 once) ...")
    bot.warm_up()
    _announce_paths(bot)
    serve(bot, **_serve_kwargs(args))
    return 0


def _announce_paths(bot) -> None:
    """Say once at start-up which decoder and embedder run on this CPU and why (the models are loaded by now)."""
    from assistant.doctor import format_report, runtime_report  # with the models: only when serving

    report = format_report(runtime_report(bot))
    print(report, flush=True)
    logging.getLogger("assistant").info("runtime paths:\n%s", report)


def cmd_doctor(args) -> int:
    """The CPU, and the decoder and embedder paths measured to match float32 on it (runs the checks once)."""
    from assistant.doctor import format_report, runtime_report  # loads the models: only for this command

    report = runtime_report(_open(args), run_checks=True)
    print(json.dumps(report, indent=2, default=str) if args.json else format_report(report))
    return 0


def cmd_eval_retrieval(args) -> int:
    bot = _open(args)
    result = evaluate_retrieval(bot.index, Path(args.qa), ks=tuple(args.k))
    print(retrieval_table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, ensure_ascii=False))
        print(f"wrote {args.json}")
    return 0


def _eval_output(result: dict, table: str, json_to: str | None) -> None:
    """The table on the terminal; with `--json` the result as JSON (to stdout, or to a file)."""
    if json_to == "-":
        print(json.dumps(result, indent=2, ensure_ascii=False))
        return
    print(table)
    if json_to:
        atomic_write_text(Path(json_to), json.dumps(result, indent=2, ensure_ascii=False) + "\n")
        print(f"wrote {json_to}")


def cmd_eval_answers(args) -> int:
    from assistant.evaluation.answers import evaluate, format_table  # loads the models: only for this command

    result = evaluate(_open(args), Path(args.qa), limit=args.limit, progress=args.json != "-")
    _eval_output(result, format_table(result), args.json)
    return 0


def cmd_eval_summaries(args) -> int:
    from assistant.evaluation.summaries import evaluate, format_table  # loads the models: only for this command

    result = evaluate(_open(args), Path(args.set), limit=args.limit, progress=args.json != "-", by_name=args.by_name)
    _eval_output(result, format_table(result), args.json)
    return 0


def _add_serve_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default=os.environ.get("ASSISTANT_HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("ASSISTANT_PORT", "7860")))
    p.add_argument("--share", action="store_true", help="ask Gradio for a public share link (needs internet)")
    p.add_argument("--auth", action="append", metavar="USER:PASS", help="require a login (repeatable)")
    p.add_argument("--auth-file", help="file with one USER:PASS per line")
    p.add_argument("--allow-public-share", action="store_true",
                   help="allow --share without --auth (anyone with the link can read your documents)")
    p.add_argument("--api-key", action="append", metavar="KEY:USER",
                   help="bearer key accepted by the /v1 API, acting as USER (repeatable); at least 16 characters: "
                        "python -c \"import secrets; print(secrets.token_urlsafe(32))\"")
    p.add_argument("--api-keys-file", help="file with one KEY:USER per line (keys of 16 characters or more)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="assistant", description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", help="the assistant's folder (default: $ASSISTANT_WORKSPACE or ./workspace)")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("ingest", help="add or update documents (unchanged files are skipped)")
    p.add_argument("paths", nargs="+")
    p.add_argument("--prune", action="store_true", help="drop documents whose files disappeared")
    p.add_argument("--collection", metavar="NAME",
                   help="the collection the files go to (new files default to 'shared', which every user reads; "
                        "a stored file moves there)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("ask", help="ask a question, summarise or write code from the documents")
    p.add_argument("question")
    p.add_argument("--task", default="auto", choices=TASK_CHOICES,
                   help="auto (default) picks from the wording: 'Summarise ...' summarises, 'Write a function ...' writes code")
    p.add_argument("--conversation", metavar="ID|last", help="continue this conversation ('last': the most recent one)")
    p.add_argument("--model", help="a registry model name, HF id or path (default: the served model)")
    p.add_argument("--k", type=int, help="passages to retrieve")
    p.add_argument("--tests", help="code task: a file of tests to run against the generated code")
    p.add_argument("--user", help="who is asking (stored in the log); answers use only what this user may read")
    p.add_argument("--group", action="append", metavar="G1,G2", help="with --user: the groups the user is in")
    p.add_argument("--no-log", action="store_true", help="do not store this question and answer")
    p.add_argument("--json", action="store_true", help="print the full Answer as JSON")
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("serve", help="the Gradio chat app and the HTTP API")
    _add_serve_options(p)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("demo", help="ingest the bundled sample documents and serve the chat")
    _add_serve_options(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("worker", help="the ingest writer of a cluster: keep a folder ingested (one per shared index)")
    p.add_argument("folder")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between looks at the folder")
    p.add_argument("--once", action="store_true", help="ingest once and exit")
    p.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on 127.0.0.1:PORT")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("doctor", help="which decoder and embedder run on this CPU, and why (checked against float32)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("eval", help="measure retrieval, answers and summaries on your own question files")
    esub = p.add_subparsers(dest="what", required=True)
    r = esub.add_parser("retrieval", help="recall@k, MRR and nDCG@10 for dense, keyword and hybrid search")
    r.add_argument("--qa", required=True, help="JSONL: {\"question\": ..., \"path\": expected file}")
    r.add_argument("--k", type=int, nargs="+", default=[1, 5, 10])
    r.add_argument("--json", help="also write the result to this JSON file")
    r.set_defaults(func=cmd_eval_retrieval)
    a = esub.add_parser("answers", help="strict accuracy, citation accuracy, declines and latency of the answers")
    a.add_argument("--qa", required=True,
                   help='JSONL: {"question": ..., "answers": [acceptable strings], "path": answering file}; '
                        '"answers": [] for a question the documents do not answer')
    a.add_argument("--limit", type=int, help="only the first N questions")
    a.add_argument("--json", nargs="?", const="-", metavar="FILE", help="print JSON instead of the table, or write it to FILE")
    a.set_defaults(func=cmd_eval_answers)
    s = esub.add_parser("summaries", help="ROUGE-L against the documents' own descriptions, and requested lengths kept")
    s.add_argument("--set", required=True,
                   help='JSONL: {"path": document, "reference": its one-line description, "request": ..., "form": "sentence"|"bullets:N"|"paragraph"}')
    s.add_argument("--limit", type=int, help="only the first N documents")
    s.add_argument("--by-name", action="store_true",
                   help="do not tell the assistant each item's document: the request's words must name it, as in a chat")
    s.add_argument("--json", nargs="?", const="-", metavar="FILE", help="print JSON instead of the table, or write it to FILE")
    s.set_defaults(func=cmd_eval_summaries)

    for module, attr in (("assistant.logs_cli", "add_parser"), ("assistant.collections_cli", "add_parser"),
                         ("finetune.cli", "add_parsers"),
                         ("assistant.improve_cli", "add_parser")):
        try:
            register = getattr(importlib.import_module(module), attr)
        except ModuleNotFoundError as exc:
            if exc.name != module:  # a real missing dependency inside the module: say so
                raise
            continue
        # finetune sits below the log: it gets the reader for `finetune --from-log` from here
        register(sub, **({"log_reader": rated_log_records} if module == "finetune.cli" else {}))
    _workspace_anywhere(parser)
    return parser


def _workspace_anywhere(parser: argparse.ArgumentParser) -> None:
    """Accept `--workspace DIR` after the sub-command too (`assistant ingest docs --workspace ws`).

    Each sub-command parser gets the option with a suppressed default, so it overrides the
    top-level one only when given there."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in set(action.choices.values()):
                if "--workspace" not in child._option_string_actions:
                    child.add_argument("--workspace", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
                _workspace_anywhere(child)


def rated_log_records(workspace: Path) -> list[dict]:
    """The workspace log's rated answers and corrections: what `assistant finetune --from-log` trains on."""
    from assistant.config import Config  # with the log below: only when --from-log runs
    from assistant.log import ConversationLog, log_url  # SQLModel: only when --from-log runs, so --help stays instant

    from index.collections import SHARED  # numpy and the index: only when --from-log runs
    from index.document_index import stored_collections  # likewise: --help stays instant

    with ConversationLog.open(log_url(Config.load(workspace), workspace)) as clog:  # what every user may read
        return list(clog.export(rated_only=True, audience={SHARED},
                                collections_of=stored_collections(Path(workspace) / "index")))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    args.workspace = resolve_workspace(args.workspace)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except (FileNotFoundError, KeyError, ValueError, RuntimeError, PermissionError) as exc:
        if args.verbose and not isinstance(exc, ModelNotFoundError):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
