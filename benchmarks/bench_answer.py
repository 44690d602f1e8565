"""Orchestration overhead: `Assistant.ask` end to end against the model's own generate on the same prompt.

For each question we record the exact messages the QA task sent to the model, then replay them
straight into the same generator. The difference is what retrieval, prompting, grounding checks
and logging cost. Target: the assistant adds <= 15 % to the median latency on CPU.

    python benchmarks/bench_answer.py [--repeat 1]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import median, table, write_result  # noqa: E402

QUESTIONS = [
    "Which environment variable makes the conversation log use PostgreSQL?",
    "How do I make the assistant serve a fine-tuned model?",
    "What happens to a corrupt file during ingest?",
    "How many passages are retrieved by default?",
    "Which command shows the share of declined questions?",
    "What does --allow-public-share do?",
    "How is source code split into chunks?",
    "How long does the first start take?",
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    from assistant import Assistant
    from assistant.generation import GenerationStats

    docs = Path(__file__).resolve().parents[1] / "docs"
    with tempfile.TemporaryDirectory() as tmp:
        bot = Assistant.open(Path(tmp) / "ws")
        bot.ingest([docs], progress=False)
        gen = bot.generator()
        captured: list = []
        real_stream = gen.stream

        def recording_stream(messages, **kw):
            captured.append((messages, kw))
            return real_stream(messages, **kw)

        gen.stream = recording_stream
        bot.warm_up()  # as `assistant serve` does: models and the log are loaded before the first question
        bot.ask("warm-up: what is the workspace?", log=False)
        rows, ask_ms, raw_ms, ttft_ask, ttft_raw = [], [], [], [], []
        for _ in range(args.repeat):
            for q in QUESTIONS:
                captured.clear()
                t0 = time.perf_counter()
                ans = bot.ask(q)
                t_ask = (time.perf_counter() - t0) * 1000
                if not captured:  # declined without calling the model: nothing to compare
                    rows.append([q[:48], "declined", "", "", ""])
                    continue
                messages, kw = captured[-1]
                stats = GenerationStats()
                t0 = time.perf_counter()
                "".join(real_stream(messages, **{**kw, "stats": stats}))
                t_raw = (time.perf_counter() - t0) * 1000
                ask_ms.append(t_ask)
                raw_ms.append(t_raw)
                ttft_ask.append(ans.timings.ttft_ms)
                ttft_raw.append(stats.ttft_ms)
                rows.append([q[:48], f"{t_ask:.0f}", f"{t_raw:.0f}", f"{ans.timings.ttft_ms:.0f}", f"{t_ask / t_raw:.2f}"])
        print(table(["question", "ask ms", "generate ms", "ask TTFT ms", "ratio"], rows))
        overhead = median(ask_ms) / median(raw_ms) - 1 if raw_ms else 0.0
        print(f"\nmedian ask {median(ask_ms):.0f} ms, median generate {median(raw_ms):.0f} ms, "
              f"overhead {overhead * 100:+.1f} % (target <= +15 %); median TTFT ask {median(ttft_ask):.0f} ms "
              f"vs generate {median(ttft_raw):.0f} ms")
        path = write_result("answer_overhead", {
            "median_ask_ms": median(ask_ms), "median_generate_ms": median(raw_ms), "overhead": overhead,
            "median_ttft_ask_ms": median(ttft_ask), "median_ttft_generate_ms": median(ttft_raw),
            "rows": rows, "model": bot.model_name,
        })
        print(f"wrote {path}")
        bot.close()


if __name__ == "__main__":
    main()
