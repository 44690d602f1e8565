"""Decoding speed (issue 14): the assistant's decoder vs plain transformers `generate` of the same weights.

In one run, on the CPU, at three prompt lengths cut from real document text (man pages of the dev
set, else the bundled user guide), each prompt "Summarise ..." in the model's chat template:
  * assistant: `load_generator(Config())`, the decoder the self-check chose on this CPU
    (assistant/generation/selfcheck.py), streamed; first token time and whole-answer tokens/s from
    its `GenerationStats`; then CTranslate2 int8 and float32 forced, whichever was not chosen;
  * assistant, decoder=transformers: the float32 path, the reference for "same as float32"
    (leading tokens each path shares with it on the same prompt);
  * plain: `AutoModelForCausalLM.from_pretrained(path).generate(ids, max_new_tokens=n, min_new_tokens=n)`,
    greedy, forced to the same number of new tokens n the assistant produced; its first token
    time is a separate `generate(..., max_new_tokens=1)`.
Ratio = tokens/s over plain's tokens/s (whole answer, prefill included).

    .venv/bin/python benchmarks/bench_decode.py [--new-tokens 64] [--repeat 2]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from assistant.config import Config  # noqa: E402
from assistant.generation import load_generator  # noqa: E402
from assistant.generation.base import GenerationStats  # noqa: E402
from assistant.generation.selfcheck import cached_verdict  # noqa: E402
from benchmarks._common import median, table, write_result  # noqa: E402
from foundation.machine import describe, fingerprint  # noqa: E402
from foundation.model_paths import resolve_generator  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
LENGTHS = (128, 512, 1536)  # prompt tokens: a question, one passage, several passages


def document_text() -> str:
    pages = sorted((REPO / "benchmarks" / "devset" / "corpus" / "summaries").rglob("*.txt"))
    pages = pages or sorted((REPO / "docs").glob("*.md"))
    return "\n\n".join(p.read_text(errors="replace") for p in pages[:20])


def prompts(tokenizer, text: str) -> list[list[dict[str, str]]]:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    out = []
    for n in LENGTHS:
        passage = tokenizer.decode(ids[: n - 20])
        out.append([{"role": "user", "content": f"{passage}\n\nSummarise the text above in a few sentences."}])
    return out


def assistant_run(gen, messages, new_tokens: int) -> dict:
    stats = GenerationStats()
    "".join(gen.stream(messages, max_new_tokens=new_tokens, stats=stats))
    return {"tokens_in": stats.tokens_in, "tokens_out": stats.tokens_out, "ttft_ms": stats.ttft_ms,
            "seconds": stats.duration_ms / 1000}


def plain_run(tokenizer, model, messages, n: int) -> dict:
    import torch

    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    greedy = dict(do_sample=False, temperature=None, top_p=None, top_k=None, pad_token_id=tokenizer.eos_token_id)
    with torch.inference_mode():
        start = time.perf_counter()
        model.generate(**inputs, max_new_tokens=1, **greedy)
        ttft = time.perf_counter() - start
        start = time.perf_counter()
        out = model.generate(**inputs, max_new_tokens=n, min_new_tokens=n, **greedy)
        seconds = time.perf_counter() - start
    return {"tokens_in": int(inputs["input_ids"].shape[1]), "tokens_out": int(out.shape[1] - inputs["input_ids"].shape[1]),
            "ttft_ms": ttft * 1000, "seconds": seconds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=2, help="runs per cell; the median is reported")
    args = ap.parse_args()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(os.cpu_count() or 1)
    path = resolve_generator("smollm2")
    print(f"CPU: {describe(fingerprint())}")
    fast = load_generator(Config(device="cpu"))
    chosen = fast.decoder_info["decoder"]
    print(f"decoder chosen: {chosen}\n  {fast.decoder_info['reason']}")
    gens = {f"assistant ({chosen}, chosen)": fast}
    for forced in ("ctranslate2-int8", "ctranslate2-float32"):
        if forced != chosen:
            gens[f"assistant, decoder={forced}"] = load_generator(Config(device="cpu", decoder=forced))
    exact_label = "assistant, decoder=transformers"
    gens[exact_label] = load_generator(Config(device="cpu", decoder="transformers"))
    tokenizer = AutoTokenizer.from_pretrained(path)
    plain = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    cases = prompts(tokenizer, document_text())
    for gen in gens.values():
        "".join(gen.stream(cases[0], max_new_tokens=2))  # warm-up: lazy kernels and caches
    rows, raw = [], []
    for messages in cases:
        cells: dict[str, list[dict]] = {name: [] for name in [*gens, "plain transformers generate"]}
        texts = {name: "".join(gen.stream(messages, max_new_tokens=args.new_tokens)) for name, gen in gens.items()}
        for _ in range(args.repeat):
            for name, gen in gens.items():
                cells[name].append(assistant_run(gen, messages, args.new_tokens))
            n = max(2, cells[next(iter(gens))][-1]["tokens_out"])
            cells["plain transformers generate"].append(plain_run(tokenizer, plain, messages, n))
        summary = {}
        for name, runs in cells.items():
            summary[name] = {"tokens_in": runs[0]["tokens_in"], "tokens_out": int(median([r["tokens_out"] for r in runs])),
                             "ttft_ms": median([r["ttft_ms"] for r in runs]),
                             "tokens_per_s": median([r["tokens_out"] / r["seconds"] for r in runs]),
                             "same_as_float32": shared_tokens(tokenizer, texts.get(name), texts[exact_label])}
        base = summary["plain transformers generate"]["tokens_per_s"]
        for name, s in summary.items():
            rows.append([s["tokens_in"], name, s["tokens_out"], s["same_as_float32"], s["ttft_ms"], s["tokens_per_s"],
                         s["tokens_per_s"] / base])
        raw.append(summary)
    print(table(["prompt tokens", "decoder", "new tokens", "same as float32", "first token ms", "tokens/s", "x plain"], rows))
    verdict = cached_verdict(path)
    checks = [c.__dict__ for c in verdict.checks] if verdict else []
    if checks:
        print(table(["self-check path", "agrees", "tokens", "confident flips", "largest logit diff"],
                    [[c["decoder"], c["agrees"], c["positions"], c["confident_flips"], c["max_logit_diff"]] for c in checks]))
    path_out = write_result("bench_decode", {
        "model": path, "cpu": fingerprint(), "decoder": chosen, "reason": fast.decoder_info["reason"],
        "self_check": checks, "new_tokens": args.new_tokens, "repeat": args.repeat,
        "rows": [dict(zip(["prompt_tokens", "decoder", "new_tokens", "same_as_float32", "ttft_ms", "tokens_per_s",
                           "x_plain"], r)) for r in rows],
    })
    print(f"wrote {path_out}")


def shared_tokens(tokenizer, text: str | None, reference: str) -> str:
    """'k/n': how many leading tokens of the float32 path's text `text` reproduces ('-' for plain generate)."""
    if text is None:
        return "-"
    a = tokenizer(text, add_special_tokens=False)["input_ids"]
    b = tokenizer(reference, add_special_tokens=False)["input_ids"]
    same = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    return f"{same}/{len(b)}"


if __name__ == "__main__":
    main()
