"""How much does logging cost? Conversation-log throughput and added latency, SQLite and PostgreSQL.

For each backend, in the same run:
  * baseline: a plain single-row SQLModel insert loop (one row, one commit, one thread);
  * sustained: complete answers per second (question + answer + 5 sources, i.e. the two
    calls the assistant makes: begin_turn before generating, finish_answer after) from 8 threads;
  * latency: median and p95 wall time those two calls add to one answer, single writer: the
    answer waits for `begin_turn` and for queueing the finish (`finish_answer_later`, as the
    assistant does); "inline" also times both written in the answer's thread.
The ratio column compares answers/s with baseline rows/s. PostgreSQL runs when
TEST_POSTGRES_URL (or --postgres URL) points at a server: `eval "$(bash scripts/start_postgres.sh)"`.

    .venv/bin/python benchmarks/bench_log.py [--answers 150] [--threads 8]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlmodel import Field, Session, SQLModel  # noqa: E402

from assistant.log import ConversationLog  # noqa: E402
from assistant.log.db import make_engine  # noqa: E402
from assistant.log.ids import new_id  # noqa: E402
from tests.log_backends import postgres_schema_url, postgres_unavailable  # noqa: E402
from index.types import Source  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
SOURCES = [Source(path=f"docs/guide/{i}.md", title=f"Guide {i}", locator=f"§ Section {i}",
                  snippet="To rotate a key, run vault rotate and restart the agents. " * 2, score=0.8 - i / 10)
           for i in range(5)]
ANSWER = "To rotate the signing key run `vault rotate --key signing` [1], then restart the agents [2]. " * 3


class BaselineRow(SQLModel, table=True):
    __tablename__ = "bench_baseline"
    id: str = Field(primary_key=True)
    content: str


def baseline_rows_per_s(url: str, n: int) -> tuple[float, float]:
    """Rows/s and median ms of the plainest SQLModel write: add one row, commit, repeat."""
    engine = make_engine(url)  # same pragmas (WAL, synchronous) as the log uses
    SQLModel.metadata.create_all(engine, tables=[BaselineRow.__table__])
    times = []
    t0 = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        with Session(engine) as s:
            s.add(BaselineRow(id=new_id(), content=f"question {i}"))
            s.commit()
        times.append(time.perf_counter() - t)
    total = time.perf_counter() - t0
    engine.dispose()
    return n / total, statistics.median(times) * 1000


def log_one(log: ConversationLog, cid: str, i: int, *, deferred: bool = True) -> None:
    """What the assistant writes for one answer: `begin_turn` before generating, then the
    answer, its timings and 5 sources (queued, as `Assistant` does, or written inline)."""
    _, _, aid = log.begin_turn(cid, f"How do I rotate key number {i}?", task="qa",
                               model="SmolLM2-135M-Instruct", options={"temperature": 0.0})
    finish = log.finish_answer_later if deferred else log.finish_answer
    finish(aid, content=ANSWER, sources=SOURCES, supported=[True] * 5, tokens_in=412,
           tokens_out=60, ttft_ms=120.0, duration_ms=2400.0)


def sustained_answers_per_s(log: ConversationLog, threads: int, per_thread: int) -> float:
    errors: list[BaseException] = []
    start = threading.Barrier(threads + 1)

    def writer() -> None:
        try:
            start.wait()
            cid = ""
            for i in range(per_thread):
                if i % 10 == 0:
                    cid = log.start_conversation()
                log_one(log, cid, i)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    pool = [threading.Thread(target=writer) for _ in range(threads)]
    for t in pool:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in pool:
        t.join()
    log.settle()  # every answer on disk, not just queued
    elapsed = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return threads * per_thread / elapsed


def latency_ms(log: ConversationLog, n: int, *, deferred: bool) -> tuple[float, float, float]:
    """Median and p95 wall ms, and median CPU ms of this thread (unaffected by a busy machine).
    Between answers the queue drains, as it does while the next answer is being generated."""
    cid = log.start_conversation()
    wall, cpu = [], []
    for i in range(n):
        t, c = time.perf_counter(), time.thread_time()
        log_one(log, cid, i, deferred=deferred)
        cpu.append((time.thread_time() - c) * 1000)
        wall.append((time.perf_counter() - t) * 1000)
        log.settle()
    wall.sort()
    return statistics.median(wall), wall[int(0.95 * (len(wall) - 1))], statistics.median(cpu)


def bench(name: str, url: str, args: argparse.Namespace) -> dict:
    base_rate, base_ms = baseline_rows_per_s(url, args.baseline)
    log = ConversationLog.open(url)
    try:
        log_one(log, log.start_conversation(), -1)  # warm up: pool, statement cache
        log.settle()
        inline, _, _ = latency_ms(log, args.latency, deferred=False)
        median, p95, cpu = latency_ms(log, args.latency, deferred=True)
        rate = sustained_answers_per_s(log, args.threads, args.answers)
    finally:
        log.close()
    return {"backend": name, "baseline_rows_per_s": base_rate, "baseline_median_ms": base_ms,
            "answers_per_s": rate, "threads": args.threads, "ratio_vs_baseline": rate / base_rate,
            "log_median_ms": median, "log_p95_ms": p95, "log_cpu_median_ms": cpu, "under_5ms": median < 5.0,
            "both_writes_inline_median_ms": inline,
            "load_average_1m": os.getloadavg()[0], "cpus": os.cpu_count()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--answers", type=int, default=150, help="answers per thread")
    p.add_argument("--latency", type=int, default=300, help="single-writer answers timed")
    p.add_argument("--baseline", type=int, default=1000, help="rows in the baseline insert loop")
    p.add_argument("--postgres", default=os.environ.get("TEST_POSTGRES_URL"))
    args = p.parse_args()

    rows = []
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        rows.append(bench("sqlite", f"sqlite:///{tmp / 'log.db'}", args))
        reason = postgres_unavailable() if args.postgres else "no --postgres / TEST_POSTGRES_URL"
        if args.postgres and not reason:
            rows.append(bench("postgresql", stack.enter_context(postgres_schema_url(args.postgres)), args))
        else:
            print(f"PostgreSQL skipped: {reason}")

    header = (f"{'backend':<11} {'baseline rows/s':>15} {'answers/s (8 thr)':>18} {'ratio':>6} "
              f"{'log median ms':>13} {'p95 ms':>7} {'cpu ms':>6} {'<5 ms':>6} {'inline ms':>9} {'load':>5}")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['backend']:<11} {r['baseline_rows_per_s']:>15.0f} {r['answers_per_s']:>18.0f} "
              f"{r['ratio_vs_baseline']:>6.2f} {r['log_median_ms']:>13.2f} {r['log_p95_ms']:>7.2f} "
              f"{r['log_cpu_median_ms']:>6.2f} {'yes' if r['under_5ms'] else 'NO':>6} "
              f"{r['both_writes_inline_median_ms']:>9.2f} {r['load_average_1m']:>5.1f}")
    print("(an answer = question + answer + 5 sources over 2 short transactions; baseline = 1 row, 1 commit;\n"
          " log median = what an answer waits for: begin_turn, then queueing the finish as Assistant does;\n"
          " inline = both transactions written in the answer's own thread, for comparison;\n"
          " cpu ms = the logging thread's own CPU time, the figure a busy shared machine does not inflate;\n"
          f" load = 1-minute load average on {os.cpu_count()} CPUs while measuring)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "bench_log.json"
    out.write_text(json.dumps({"config": vars(args) | {"postgres": bool(args.postgres)}, "results": rows}, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
