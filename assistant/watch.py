"""The ingest writer of a cluster: one process watches a folder and ingests what changes into the index.

Serving replicas only read the shared index (they reload a newly committed generation on their next
search); this is the process that writes it. It keeps the embedder loaded between ingests, so a new
file is searchable seconds after it lands, and it takes the index's writer lock like any ingest, so a
second writer (another watcher, an operator's `assistant ingest`) waits its turn instead of
overwriting. One JSON line per ingest on stdout (added, updated, failed, generation, seconds).

    python -m assistant.watch --workspace WS --folder inbox/ [--interval 2] [--once]
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

Fingerprint = tuple[tuple[str, int, int], ...]


def fingerprint(folder: Path) -> Fingerprint:
    """(path, size, mtime) of every visible file under `folder`: cheap to take, changes with any edit."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if name.startswith("."):
                continue
            try:
                st = os.stat(os.path.join(root, name))
            except OSError:  # removed while we looked: the next round sees it gone
                continue
            found.append((os.path.join(root, name), st.st_size, st.st_mtime_ns))
    return tuple(sorted(found))


def ingest_once(bot: Any, folder: Path) -> dict:
    """Ingest `folder` (pruning files that disappeared) and describe the result as one JSON-ready dict."""
    started = time.perf_counter()
    report = bot.ingest([folder], prune=True, progress=False)
    return {"event": "ingest", "folder": str(folder), "added": len(report.added), "updated": len(report.updated),
            "skipped": len(report.skipped), "failed": [f"{f.path}: {f.reason}" for f in report.failed],
            "removed": len(report.removed), "generation": _current(bot),
            "seconds": round(time.perf_counter() - started, 3)}


def _current(bot: Any) -> str:
    from index.store import current_generation  # a path in the index package, read only for the report

    return current_generation(bot.index.directory) or ""


def watch(bot: Any, folder: Path, *, interval: float = 2.0, stop: threading.Event | None = None,
          once: bool = False) -> None:
    """Ingest whenever the folder's fingerprint changes (and once at start), until `stop` is set."""
    stop = stop or threading.Event()
    last: Fingerprint | None = None
    while not stop.is_set():
        now = fingerprint(folder)
        if now != last:
            try:
                print(json.dumps(ingest_once(bot, folder)), flush=True)
                last = now
            except Exception as exc:  # noqa: BLE001 - a writer keeps watching; the next change retries
                print(json.dumps({"event": "ingest_error", "error": f"{type(exc).__name__}: {exc}"}), flush=True)
        if once:
            return
        stop.wait(interval)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m assistant.watch", description=__doc__.split("\n\n")[0])
    parser.add_argument("--workspace", required=True, help="the workspace whose index the replicas serve")
    parser.add_argument("--folder", required=True, help="the folder to keep ingested")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between looks at the folder")
    parser.add_argument("--once", action="store_true", help="ingest once and exit")
    args = parser.parse_args(argv)
    from assistant.core import Assistant  # the models load only once arguments are known to be right

    folder = Path(args.folder).expanduser().resolve()
    if not folder.is_dir():
        print(f"error: {folder} is not a folder", file=sys.stderr)
        return 2
    bot = Assistant.open(args.workspace)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())  # finish the ingest under way, then leave
    print(json.dumps({"event": "watching", "folder": str(folder), "pid": os.getpid()}), flush=True)
    try:
        watch(bot, folder, interval=args.interval, stop=stop, once=args.once)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
