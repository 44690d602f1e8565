"""Serving overhead: answers through the real server against `Assistant` called in-process.

For 1, 4 and 8 simultaneous chats we time the first token (TTFT) and the whole answer, once by
calling `bot.stream_events` from that many threads in this process (the baseline) and once
through the launched server (the /v1 streaming API with httpx, and Gradio's /ask endpoint with
gradio_client). Same questions, same greedy decoding, same workspace, same run. Target: the
server adds <= 10 % to the median total time.

    python benchmarks/bench_serve.py [--concurrency 1 4 8] [--via v1 gradio] [--rounds 1]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import median, table, write_result  # noqa: E402

QUESTIONS = [
    "How do I protect the API with a key?",
    "Which environment variable makes the conversation log use PostgreSQL?",
    "How do I make the assistant serve a fine-tuned model?",
    "What happens to a corrupt file during ingest?",
    "How many passages are retrieved by default?",
    "What does --allow-public-share do?",
    "How is source code split into chunks?",
    "How do I share the chat with a public link?",
]

Timing = tuple[float, float]  # (ttft_ms, total_ms) measured from the moment the chat is submitted


def direct(bot) -> Callable[[str], Timing]:
    from assistant.tasks.base import TextDelta

    def run(q: str) -> Timing:
        t0 = time.perf_counter()
        ttft = 0.0
        for ev in bot.stream_events(q, task="qa"):
            if isinstance(ev, TextDelta) and not ttft:
                ttft = (time.perf_counter() - t0) * 1000
        return ttft, (time.perf_counter() - t0) * 1000
    return run


def via_v1(url: str) -> Callable[[str], Timing]:
    import httpx

    def run(q: str) -> Timing:
        body = {"model": "base", "stream": True, "messages": [{"role": "user", "content": q}]}
        t0 = time.perf_counter()
        ttft = 0.0
        with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=600) as r:
            r.raise_for_status()
            for line in r.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                delta = json.loads(line[6:]).get("choices", [{}])[0].get("delta", {})
                if delta.get("content") and not ttft:
                    ttft = (time.perf_counter() - t0) * 1000
        return ttft, (time.perf_counter() - t0) * 1000
    return run


def via_gradio(url: str) -> Callable[[str], Timing]:
    from gradio_client import Client

    local = threading.local()

    def run(q: str) -> Timing:
        if not hasattr(local, "client"):  # one client per thread, connected before the clock starts
            local.client = Client(url, verbose=False)
        t0 = time.perf_counter()
        ttft = 0.0
        job = local.client.submit(q, api_name="/ask")
        for update in job:
            if update.get("text") and not ttft:
                ttft = (time.perf_counter() - t0) * 1000
        job.result()
        return ttft, (time.perf_counter() - t0) * 1000
    return run


def concurrent(run: Callable[[str], Timing], n: int, rounds: int, warm: bool = False, offset: int = 0) -> list[Timing]:
    """`n` chats at once, `rounds` times; every chat gets its own question."""
    out: list[Timing] = []
    for r in range(offset, offset + rounds):
        results: list[Timing | None] = [None] * n
        errors: list[BaseException] = []

        def worker(i: int) -> None:
            try:
                results[i] = run(QUESTIONS[(i + r) % len(QUESTIONS)])
            except BaseException as exc:  # reported below, not swallowed
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        if not warm:
            out += [x for x in results if x is not None]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8])
    ap.add_argument("--via", nargs="+", default=["v1", "gradio"], choices=["v1", "gradio"])
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--server-concurrency", type=int, default=None,
                    help="answers the server generates at once (default: ui.app.CHAT_CONCURRENCY)")
    ap.add_argument("--max-new-tokens", type=int, default=64, help="shorter answers keep the run short on CPU")
    args = ap.parse_args()

    from assistant import Assistant
    from ui.server import launch

    docs = Path(__file__).resolve().parents[1] / "docs"
    with tempfile.TemporaryDirectory() as tmp:
        bot = Assistant.open(Path(tmp) / "ws", max_new_tokens=args.max_new_tokens)
        bot.ingest([docs], progress=False)
        srv = launch(bot, port=0, chat_concurrency=args.server_concurrency)
        modes = {"direct": direct(bot)}
        if "v1" in args.via:
            modes["server /v1"] = via_v1(srv.url)
        if "gradio" in args.via:
            modes["server /ask"] = via_gradio(srv.url)
        for run in modes.values():  # load the model, warm caches and connect clients
            concurrent(run, 1, 1, warm=True)

        rows, results = [], {}
        for n in args.concurrency:
            # Modes take turns round by round, so load from anything else on the machine
            # falls on all of them alike instead of on whichever ran during a busy minute.
            rounds = max(args.rounds, -(-4 // n))  # at least 4 answers per cell
            samples: dict[str, list[Timing]] = {name: [] for name in modes}
            for r in range(rounds):
                for name, run in modes.items():
                    samples[name] += concurrent(run, n, 1, offset=r)
            base = None
            for name, t in samples.items():
                ttft, total = median([x[0] for x in t]), median([x[1] for x in t])
                results.setdefault(str(n), {})[name] = {"median_ttft_ms": ttft, "median_total_ms": total,
                                                        "samples": [list(x) for x in t]}
                base = base or (ttft, total)
                rows.append([n, name, len(t), f"{ttft:.0f}", f"{total:.0f}", f"{ttft / base[0]:.2f}", f"{total / base[1]:.2f}"])
                print(f"  {n} chats, {name}: TTFT {ttft:.0f} ms, total {total:.0f} ms", flush=True)
        srv.close()
        print()
        print(table(["chats", "path", "answers", "median TTFT ms", "median total ms", "TTFT ratio", "total ratio"], rows))
        worst = max(float(r[6]) for r in rows)
        print(f"\nworst server/direct ratio of median total time: {worst:.2f} (target <= 1.10)")
        path = write_result("serve_overhead", {"model": bot.model_name, "max_new_tokens": args.max_new_tokens,
                                               "rounds": args.rounds, "results": results,
                                               "server_concurrency": args.server_concurrency,
                                               "worst_total_ratio": worst, "rows": rows})
        print(f"wrote {path}")
        bot.close()


if __name__ == "__main__":
    main()
