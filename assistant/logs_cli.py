"""`assistant logs ...`: read, search, export and prune the conversation log from the shell.

Registered by the main CLI through `add_parser(subparsers)`; handlers receive `args.workspace`
(already resolved) and open the log the workspace's config names (`log_url`).
"""
from __future__ import annotations

import argparse
import functools
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Callable

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from assistant.config import Config
from foundation.workspace import atomic_write_text

LIMIT_MAX = 10_000  # rows a listing or search may ask for
PATTERN_MAX = 1_000  # characters in a search text (a 50k-character one only burns the database)
ID_MAX = 64  # conversation ids are 26-character ULIDs; anything far longer is not one
DAYS_MAX = 36_500


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("logs", help="list, show, search, export and prune the conversation log")
    sub = p.add_subparsers(dest="logs_command", required=True)

    q = sub.add_parser("list", help="recent conversations, newest first")
    q.add_argument("--user", help="only this user's conversations")
    q.add_argument("--limit", type=int, default=50)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=_one_line_errors(cmd_list))

    q = sub.add_parser("show", help="one conversation with its sources and feedback")
    q.add_argument("id", help="conversation id (from `assistant logs list`)")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=_one_line_errors(cmd_show))

    q = sub.add_parser("search", help="full-text search over questions and answers")
    q.add_argument("text")
    q.add_argument("--limit", type=int, default=20)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=_one_line_errors(cmd_search))

    q = sub.add_parser("export", help="answers as chat-format JSONL for fine-tuning (corrections replace answers)")
    q.add_argument("--format", choices=["jsonl"], default="jsonl")
    q.add_argument("--rated-only", action="store_true", help="only answers with a non-zero rating or a correction")
    q.add_argument("--since", type=_since, help="only answers from this date/time on (ISO, UTC: 2026-11-01)")
    q.add_argument("--include-opted-out", action="store_true", help="also users who opted out of training")
    q.add_argument("--audience", action="append", default=[], metavar="COLLECTION",
                   help="also conversations that drew on this collection (repeatable); by default only those that "
                        "drew on 'shared' alone: a model trained on the rest could repeat them to anyone it serves")
    q.add_argument("--output", "-o", help="write here (atomically) instead of stdout")
    q.set_defaults(func=_one_line_errors(cmd_export))

    q = sub.add_parser("stats", help="questions per day, share declined, ratings, unanswered questions")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=_one_line_errors(cmd_stats))

    q = sub.add_parser("prune", help="delete conversations idle for more than N days")
    q.add_argument("--days", type=int, help="default: the workspace's retention_days")
    q.set_defaults(func=_one_line_errors(cmd_prune))

    q = sub.add_parser("opt-out", help="keep a user's conversations out of training exports")
    q.add_argument("user")
    q.add_argument("--undo", action="store_true", help="include them again")
    q.set_defaults(func=_one_line_errors(cmd_opt_out))


def _one_line_errors(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Bad input and database refusals as ValueError, which the CLI prints as one `error:` line
    with exit code 2 instead of a traceback (a too-large number, a pattern the database rejects)."""
    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except (OverflowError, SQLAlchemyError) as exc:
            first = str(getattr(exc, "orig", None) or exc).splitlines()[0][:200]
            raise ValueError(f"{args.logs_command}: the log refused this request ({first})") from None
    return run


def _bounded(value: int | None, name: str, high: int, low: int = 1) -> int | None:
    if value is not None and not low <= value <= high:
        raise ValueError(f"{name} must be from {low} to {high} (got {_shown(value)})")
    return value


def _shown(value: Any, n: int = 40) -> str:
    """A value quoted for an error message, cut short: the message stays one readable line."""
    text = repr(value)
    return text if len(text) <= n else f"{text[:n]}... ({len(str(value))} characters)"


def _since(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an ISO date or date-time (e.g. 2026-11-01)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _open(args: argparse.Namespace, *, create: bool = False):
    """The workspace's log, or None when it has none yet (reading never creates one)."""
    from assistant.log import ConversationLog, log_url  # SQLModel takes ~1 s: `assistant --help` must not wait

    workspace = Path(args.workspace)
    config = Config.load(workspace)
    url = log_url(config, workspace)
    parsed = make_url(url) if "://" in url else None
    if parsed is not None and parsed.get_backend_name() == "sqlite" and not create:
        if not parsed.database or not Path(parsed.database).exists():
            note = "" if config.log_enabled else " (logging is turned off in this workspace's config)"
            print(f"No conversation log in {workspace} yet{note}.", file=sys.stderr)
            return None
    return ConversationLog.open(url, redact=config.redact)


def _console():
    from rich.console import Console

    return Console()


def _when(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def _short(text: str, n: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def cmd_list(args: argparse.Namespace) -> int:
    _bounded(args.limit, "--limit", LIMIT_MAX)
    log = _open(args)
    rows = log.list_conversations(user=args.user, limit=args.limit) if log else []
    if args.json:
        print(json.dumps([{"id": c.id, "title": c.title, "user": c.user, "created_at": c.created_at.isoformat(),
                           "n_messages": c.n_messages} for c in rows], indent=2, ensure_ascii=False))
        return 0
    from rich.table import Table

    table = Table(title=f"Conversations ({len(rows)})")
    for name, kw in (("id", {"no_wrap": True}), ("started (UTC)", {}), ("user", {}), ("msgs", {"justify": "right"}),
                     ("title", {})):
        table.add_column(name, **kw)
    for c in rows:
        table.add_row(c.id, _when(c.created_at), c.user or "-", str(c.n_messages), _short(c.title))
    _console().print(table)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    if not args.id.strip() or len(args.id) > ID_MAX or not args.id.isprintable():
        raise ValueError(f"{_shown(args.id)} is not a conversation id (see `assistant logs list`)")
    log = _open(args)
    if log is None:
        raise KeyError(f"no conversation {args.id!r}: this workspace has no log")
    detail = log.get_conversation(args.id)
    if args.json:
        print(json.dumps(detail.to_dict(), indent=2, ensure_ascii=False))
        return 0
    from rich.markup import escape
    from rich.table import Table

    console = _console()
    console.print(f"[bold]{escape(detail.title or detail.id)}[/bold]  {detail.id}  user={detail.user or '-'}  "
                  f"started {_when(detail.created_at)} UTC" + ("  [yellow]opted out[/yellow]" if detail.opted_out else ""))
    for m in detail.messages:
        facts = [m.task, _when(m.created_at)]
        if m.role == "assistant":
            facts += [m.model or "?", f"{m.tokens_in}->{m.tokens_out} tok", f"ttft {m.ttft_ms:.0f} ms",
                      f"{m.duration_ms:.0f} ms"]
            if m.status != "complete":
                facts.append(f"[red]{m.status}[/red]")
            if m.declined:
                facts.append("[yellow]declined[/yellow]")
        console.rule(f"{m.role}  {m.id}")
        console.print("  ".join(facts), style="dim")
        console.print(escape(m.content) or "[dim](empty)[/dim]")
        if m.sources:
            table = Table(show_header=True, header_style="dim")
            for col in ("#", "path", "locator", "score", "supported"):
                table.add_column(col)
            for s in m.sources:
                table.add_row(str(s.rank), escape(s.path), escape(s.locator), f"{s.score:.3f}",
                              {True: "yes", False: "[red]no[/red]", None: "-"}[s.supported])
            console.print(table)
        for f in m.feedback:
            thumb = {1: "[green]+1[/green]", 0: "0", -1: "[red]-1[/red]"}[f.rating]
            extra = "".join(f"  {k}: {escape(v)}" for k, v in (("comment", f.comment), ("correction", f.correction)) if v)
            console.print(f"feedback {thumb} by {f.user or 'anonymous'}{extra}")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    _bounded(args.limit, "--limit", LIMIT_MAX)
    if len(args.text) > PATTERN_MAX:
        raise ValueError(f"the search text has {len(args.text)} characters; at most {PATTERN_MAX} are searched")
    log = _open(args)
    hits = log.search(args.text, limit=args.limit) if log else []
    if args.json:
        print(json.dumps([m.to_dict() for m in hits], indent=2, ensure_ascii=False))
        return 0
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"{len(hits)} message(s) matching {args.text!r}")
    table.add_column("conversation", no_wrap=True)
    table.add_column("role")
    table.add_column("content")
    for m in hits:  # message ids and times: `logs show CONVERSATION` or --json
        table.add_row(m.conversation_id, m.role, escape(_short(m.content, 160)))
    _console().print(table)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from index.collections import SHARED  # the index (numpy) loads only for an export
    from index.document_index import stored_collections  # likewise: `logs list` stays fast

    log = _open(args)
    records = log.export(rated_only=args.rated_only, since=args.since, include_opted_out=args.include_opted_out,
                         audience={SHARED, *args.audience},
                         collections_of=stored_collections(Path(args.workspace) / "index")) if log else []
    body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    if args.output:
        atomic_write_text(Path(args.output), body)
        print(f"exported {len(records)} record(s) to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(body)
        if not records:  # stderr, so a pipe still gets empty JSONL
            print("exported 0 records" + (" (nothing is rated yet)" if args.rated_only else ""), file=sys.stderr)
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    log = _open(args)
    stats = log.stats() if log else None
    if stats is None:
        return 0
    if args.json:
        print(json.dumps(stats, indent=2, ensure_ascii=False))
        return 0
    from rich.markup import escape
    from rich.table import Table

    console = _console()
    summary = Table(title="Conversation log", show_header=False)
    avg = stats["average_rating"]
    for label, value in (
        ("conversations", stats["conversations"]), ("questions", stats["questions"]),
        ("answers (complete)", stats["answers"]), ("incomplete / error", f"{stats['incomplete']} / {stats['errors']}"),
        ("declined", f"{stats['declined']} ({stats['declined_share']:.0%})"),
        ("ratings (+1 / -1)", f"{stats['ratings']} ({stats['thumbs_up']} / {stats['thumbs_down']})"),
        ("average rating", "-" if avg is None else f"{avg:+.2f}"),
    ):
        summary.add_row(label, str(value))
    console.print(summary)
    if stats["questions_per_day"]:
        per_day = Table(title="Questions per day (last 30 days)")
        per_day.add_column("day")
        per_day.add_column("questions", justify="right")
        for row in stats["questions_per_day"]:
            per_day.add_row(row["day"], str(row["questions"]))
        console.print(per_day)
    if stats["unanswered"]:
        gaps = Table(title="Most-asked questions with no good source (declined or rated down)")
        for col, kw in (("asked", {"justify": "right"}), ("declined", {"justify": "right"}),
                        ("rated down", {"justify": "right"}), ("question", {})):
            gaps.add_column(col, **kw)
        for row in stats["unanswered"]:
            gaps.add_row(str(row["count"]), str(row["declined"]), str(row["low_rated"]), escape(_short(row["question"])))
        console.print(gaps)
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    config = Config.load(Path(args.workspace))
    days = args.days if args.days is not None else config.retention_days
    _bounded(args.days, "--days", DAYS_MAX)
    if days < 1:
        raise ValueError("give --days N (N >= 1), or set retention_days in the workspace's config.toml")
    log = _open(args)
    deleted = log.apply_retention(days) if log else 0
    print(f"deleted {deleted} conversation(s) idle for more than {days} day(s)")
    return 0


def cmd_opt_out(args: argparse.Namespace) -> int:
    log = _open(args, create=True)
    log.set_opt_out(user=args.user, opted_out=not args.undo)
    print(f"{args.user}: conversations {'included in' if args.undo else 'excluded from'} training exports")
    return 0
