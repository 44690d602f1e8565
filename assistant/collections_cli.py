"""`assistant collections list | create | grant | revoke | delete`: who may read which documents.

READER is a user name or `group:NAME` (groups come from the server's logins: `--auth USER:PASS:g1,g2`,
`--auth-file` lines `user:password:g1,g2`). Changes take effect on a running server at its next request.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

READER_HELP = "a user name or group:NAME"


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("collections", help="collections of documents and who may read them")
    sub = p.add_subparsers(dest="collections_command", required=True)

    q = sub.add_parser("list", help="every collection, its readers, writers and number of documents")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_list)

    q = sub.add_parser("create", help="a new collection (readable by the readers given, nobody else)")
    q.add_argument("name")
    q.add_argument("--reader", action="append", default=[], metavar="READER", help=READER_HELP + " (repeatable)")
    q.add_argument("--writer", action="append", default=[], metavar="READER",
                   help=READER_HELP + " who may also add documents (repeatable)")
    q.set_defaults(func=cmd_create)

    q = sub.add_parser("grant", help="let readers read a collection (--write: also add documents to it)")
    q.add_argument("name")
    q.add_argument("readers", nargs="+", metavar="READER", help=READER_HELP)
    q.add_argument("--write", action="store_true", help="also let them add documents (uploads) to it")
    q.set_defaults(func=cmd_grant)

    q = sub.add_parser("revoke", help="stop readers reading a collection")
    q.add_argument("name")
    q.add_argument("readers", nargs="+", metavar="READER", help=READER_HELP)
    q.set_defaults(func=cmd_revoke)

    q = sub.add_parser("delete", help="delete a collection (one holding documents needs --remove-documents)")
    q.add_argument("name")
    q.add_argument("--remove-documents", action="store_true",
                   help="also remove its documents from the index (they never fall back to shared)")
    q.set_defaults(func=cmd_delete)


def _bot(args: argparse.Namespace):
    from assistant import Assistant  # the facade loads no model until one is needed

    return Assistant.open(Path(args.workspace))


def cmd_list(args: argparse.Namespace) -> int:
    bot = _bot(args)
    infos = bot.collections.list()
    if args.json:
        print(json.dumps([{**asdict(i), "readers": bot.collections.readers_of(i.name) if i.everyone else i.readers}
                          for i in infos], indent=2))
        return 0
    for i in infos:
        known = i.everyone or bot.collections.exists(i.name)
        readers = "everyone" if i.everyone else (", ".join(i.readers) or "nobody")
        note = "" if known else "  (not created: readable by nobody; `assistant collections create` it)"
        writers = f"  writers: {', '.join(i.writers)}" if i.writers else ""
        owner = f"  owner: {i.owner}" if i.owner else ""
        print(f"{i.name}  documents: {i.documents}  readers: {readers}{writers}{owner}{note}")
    return 0


def cmd_create(args: argparse.Namespace) -> int:
    info = _bot(args).collections.create(args.name, readers=args.reader, writers=args.writer)
    print(f"created {info.name}: readers {', '.join(info.readers) or 'none yet'}"
          + (f", writers {', '.join(info.writers)}" if info.writers else ""))
    return 0


def cmd_grant(args: argparse.Namespace) -> int:
    info = _bot(args).collections.grant(args.name, args.readers, write=args.write)
    readers = "everyone" if info.everyone else ", ".join(info.readers)
    print(f"{info.name}: readers {readers}" + (f"; writers {', '.join(info.writers)}" if info.writers else ""))
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    info = _bot(args).collections.revoke(args.name, args.readers)
    print(f"{info.name}: readers {', '.join(info.readers) or 'none'}")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    removed = _bot(args).delete_collection(args.name, remove_documents=args.remove_documents)
    print(f"deleted {args.name}" + (f" and removed its {removed} document(s) from the index" if removed else ""),
          file=sys.stderr)
    return 0
