"""The ingest writer of a cluster: one process watches a folder and ingests what changes into the index.

Serving replicas only read the shared index (they reload a newly committed generation on their next
search); this is the process that writes it. It keeps the embedder loaded between ingests, so a new
file is searchable seconds after it lands, and it takes the index's writer lock like any ingest, so a
second writer (another watcher, an operator's `assistant ingest`) waits its turn instead of
overwriting. One JSON line per ingest on stdout (added, updated, failed, generation, seconds), and
with `--metrics-port` the same in Prometheus format (ingest progress, files by outcome, generation).

    assistant --workspace WS worker inbox/ [--interval 2] [--once] [--metrics-port 9180]
    python -m assistant.watch --workspace WS --folder inbox/      (the same)
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


def ingest_once(bot: Any, folder: Path, metrics: "WriterMetrics | None" = None) -> dict:
    """Ingest `folder` (pruning files that disappeared) and describe the result as one JSON-ready dict."""
    started = time.perf_counter()
    progress = metrics.progress if metrics else False
    report = bot.ingest([folder], prune=True, progress=progress)
    result = {"event": "ingest", "folder": str(folder), "added": len(report.added), "updated": len(report.updated),
              "skipped": len(report.skipped), "failed": [f"{f.path}: {f.reason}" for f in report.failed],
              "removed": len(report.removed), "generation": _current(bot),
              "seconds": round(time.perf_counter() - started, 3)}
    if metrics:
        metrics.finished(result)
    return result


class WriterMetrics:
    """The writer's progress for Prometheus, served on its own port (`--metrics-port`)."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        try:
            from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
        except ImportError:  # optional: only --metrics-port needs it
            raise SystemExit("--metrics-port needs prometheus-client: pip install 'domain-assistant[serve]'") from None
        r = CollectorRegistry()
        self.ratio = Gauge("assistant_ingest_progress_ratio", "share of the running ingest's files done (1: idle)",
                           registry=r)
        self.files = Counter("assistant_ingest_files", "files handled by the writer, by outcome", ["outcome"],
                             registry=r)
        self.generation = Gauge("assistant_index_generation", "the index generation last committed", registry=r)
        self.seconds = Gauge("assistant_ingest_last_seconds", "how long the last ingest took", registry=r)
        self.last = Gauge("assistant_ingest_last_finished_timestamp_seconds", "when the last ingest finished",
                          registry=r)
        self.ratio.set(1)
        start_http_server(port, addr=host, registry=r)

    def progress(self, message: str, done: int, total: int) -> None:
        self.ratio.set(done / total if total else 1.0)

    def finished(self, result: dict) -> None:
        self.ratio.set(1)
        for outcome in ("added", "updated", "skipped", "removed"):
            self.files.labels(outcome).inc(result[outcome])
        self.files.labels("failed").inc(len(result["failed"]))
        digits = "".join(c for c in result["generation"] if c.isdigit())
        self.generation.set(int(digits) if digits else 0)
        self.seconds.set(result["seconds"])
        self.last.set_to_current_time()


def _current(bot: Any) -> str:
    from index.store import current_generation  # a path in the index package, read only for the report

    return current_generation(bot.index.directory) or ""


def watch(bot: Any, folder: Path, *, interval: float = 2.0, stop: threading.Event | None = None,
          once: bool = False, metrics: WriterMetrics | None = None) -> None:
    """Ingest whenever the folder's fingerprint changes (and once at start), until `stop` is set."""
    stop = stop or threading.Event()
    last: Fingerprint | None = None
    while not stop.is_set():
        now = fingerprint(folder)
        if now != last:
            try:
                print(json.dumps(ingest_once(bot, folder, metrics)), flush=True)
                last = now
            except Exception as exc:  # noqa: BLE001 - a writer keeps watching; the next change retries
                print(json.dumps({"event": "ingest_error", "error": f"{type(exc).__name__}: {exc}"}), flush=True)
        if once:
            return
        stop.wait(interval)


def run_worker(workspace: str | Path, folder: str | Path, *, interval: float = 2.0, once: bool = False,
               metrics_port: int | None = None) -> int:
    """Keep `folder` ingested into `workspace`'s index until SIGTERM (the ingest under way finishes first)."""
    from assistant.core import Assistant  # the models load only once arguments are known to be right

    folder = Path(folder).expanduser().resolve()
    if not folder.is_dir():
        print(f"error: {folder} is not a folder", file=sys.stderr)
        return 2
    metrics = WriterMetrics(metrics_port) if metrics_port else None
    bot = Assistant.open(workspace)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(json.dumps({"event": "watching", "folder": str(folder), "pid": os.getpid(),
                      "metrics_port": metrics_port}), flush=True)
    try:
        watch(bot, folder, interval=interval, stop=stop, once=once, metrics=metrics)
    except KeyboardInterrupt:
        pass
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m assistant.watch", description=__doc__.split("\n\n")[0])
    parser.add_argument("--workspace", required=True, help="the workspace whose index the replicas serve")
    parser.add_argument("--folder", required=True, help="the folder to keep ingested")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between looks at the folder")
    parser.add_argument("--once", action="store_true", help="ingest once and exit")
    parser.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on 127.0.0.1:PORT")
    args = parser.parse_args(argv)
    return run_worker(args.workspace, args.folder, interval=args.interval, once=args.once,
                      metrics_port=args.metrics_port)


if __name__ == "__main__":
    sys.exit(main())
