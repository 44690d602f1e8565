"""Fine-tuning throughput: our recipe (`finetune.train`) against a plain Hugging Face `Trainer`.

Same model, same packed data (fixed-length blocks, so padding plays no part), same micro-batch,
same optimizer family; both timed per optimizer step after warm-up, in the same run.

- CPU (always): seconds per step, LoRA on the bundled SmolLM2-135M.
- GPU (only when `torch.cuda.is_available()`): tokens/s, MFU (nanoGPT's estimate, H200 bf16
  dense peak 989 TFLOP/s) and peak memory for SmolLM2-135M's config and a Qwen2.5-0.5B-sized
  Llama config, random init, full and LoRA.

    .venv/bin/python benchmarks/bench_finetune.py [--steps 6] [--batch-size 4] [--max-length 128]

Prints a table and writes benchmarks/results/finetune.json. The figure to read is the ratio
Trainer/ours in the same run (>1 = ours faster), not absolute numbers; on a shared, loaded CPU
the per-step median swings, so the best step of each is reported too.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from finetune.data import load_documents, pack_documents  # noqa: E402
from finetune.runtime import flops_per_token, estimate_mfu  # noqa: E402
from finetune.train import TrainConfig, train  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
# Qwen2.5-0.5B's shape as a Llama config (494M parameters with its 151936-token vocabulary).
QWEN05_LIKE = dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                   num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True)


def docs_text_dir() -> Path:
    """The bundled sample docs; Python's own help topics when they are missing."""
    docs = REPO / "docs"
    if docs.exists() and any(docs.glob("*.md")):
        return docs
    from pydoc_data.topics import topics

    tmp = Path(tempfile.mkdtemp()) / "topics"
    tmp.mkdir()
    for k, v in list(topics.items())[:40]:
        (tmp / f"{k}.txt").write_text(v)
    return tmp


def median_after_warmup(times: list[float], warmup: int = 1) -> float:
    rest = times[warmup:] or times
    return statistics.median(rest)


def run_ours(base: str, method: str, blocks_dir: Path, args, workdir: Path, device: str) -> dict:
    steps: list = []
    gpu = device == "cuda"
    if gpu:
        torch.cuda.reset_peak_memory_stats()
    cfg = TrainConfig(base=base, method=method, docs=[blocks_dir], max_length=args.max_length, batch_size=args.batch_size,
                      max_steps=args.steps, val_fraction=0.0, eval_qa_examples=0, register=False, progress=False,
                      output=workdir / f"ours-{method}", lora_rank=16, device=device, callbacks=[steps.append])
    train(cfg)
    secs = [s.seconds for s in steps]
    out = {"s_per_step": median_after_warmup(secs), "s_per_step_min": min(secs[1:] or secs), "tokens_per_s": statistics.median([s.tokens / s.seconds for s in steps[1:] or steps]),
           "final_loss": steps[-1].loss}
    mfus = [s.mfu for s in steps[1:] if s.mfu is not None]
    if mfus:
        out["mfu"] = statistics.median(mfus)
    if gpu:
        out["peak_mem_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return out


def run_trainer(base: str, method: str, blocks, args, workdir: Path, device: str) -> dict:
    """The baseline: transformers.Trainer on the same blocks, batch and learning rate."""
    from transformers import AutoModelForCausalLM, Trainer, TrainerCallback, TrainingArguments

    gpu = device == "cuda"
    dtype = torch.bfloat16 if (gpu and method == "lora") else torch.float32
    model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype, attn_implementation="sdpa")
    model.config.use_cache = False
    if method == "lora":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM"))

    class Blocks(torch.utils.data.Dataset):
        def __len__(self):
            return len(blocks)

        def __getitem__(self, i):
            ids = torch.tensor(blocks[i].input_ids)
            return {"input_ids": ids, "labels": ids.clone(), "attention_mask": torch.ones_like(ids)}

    times: list[float] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, *a, **k):
            if gpu:
                torch.cuda.synchronize()
            self.t = time.perf_counter()

        def on_step_end(self, *a, **k):
            if gpu:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - self.t)

    if gpu:
        torch.cuda.reset_peak_memory_stats()
    targs = TrainingArguments(
        output_dir=str(workdir / f"trainer-{method}"), per_device_train_batch_size=args.batch_size, max_steps=args.steps,
        learning_rate=2e-4 if method == "lora" else 2e-5, save_strategy="no", report_to="none", logging_steps=10**6,
        use_cpu=not gpu, bf16=gpu, dataloader_num_workers=0, disable_tqdm=True, optim="adamw_torch_fused" if gpu else "adamw_torch",
    )
    Trainer(model=model, args=targs, train_dataset=Blocks(), callbacks=[Timer()]).train()
    s = median_after_warmup(times)
    out = {"s_per_step": s, "s_per_step_min": min(times[1:] or times), "tokens_per_s": args.batch_size * args.max_length / s}
    if gpu:
        out["peak_mem_gib"] = torch.cuda.max_memory_allocated() / 2**30
        cfg = model.config
        n = sum(p.numel() for p in model.parameters())
        frac = sum(p.numel() for p in model.parameters() if p.requires_grad) / n
        fpt = flops_per_token(n, cfg.num_hidden_layers, cfg.hidden_size, args.max_length, frac)
        out["mfu"] = estimate_mfu(fpt, out["tokens_per_s"], torch.device("cuda"))
    del model
    return out


def random_model_dir(name: str, overrides: dict, tokenizer_src: str, workdir: Path) -> str:
    """A randomly initialised Llama of the given shape, saved with the default tokenizer."""
    from transformers import AutoConfig, AutoTokenizer, LlamaForCausalLM

    cfg = AutoConfig.from_pretrained(tokenizer_src)
    for k, v in overrides.items():
        setattr(cfg, k, v)
    path = workdir / name
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(path)
    AutoTokenizer.from_pretrained(tokenizer_src).save_pretrained(path)
    return str(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=6, help="optimizer steps per run (the first is warm-up, not counted)")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--gpu-steps", type=int, default=20)
    ap.add_argument("--gpu-batch-size", type=int, default=8)
    ap.add_argument("--gpu-max-length", type=int, default=1024)
    ap.add_argument("--skip-cpu", action="store_true")
    args = ap.parse_args()

    from transformers import AutoTokenizer

    from foundation.model_paths import resolve_generator

    smol = resolve_generator("smollm2")
    tok = AutoTokenizer.from_pretrained(smol)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        text_dir = docs_text_dir()
        if not args.skip_cpu:
            blocks = pack_documents(tok, load_documents([text_dir]), args.max_length)
            blocks = [b for b in blocks if len(b.input_ids) == args.max_length]
            print(f"CPU: LoRA on SmolLM2-135M, {args.steps} steps, batch {args.batch_size} x {args.max_length} tokens, "
                  f"{len(blocks)} packed blocks, {torch.get_num_threads()} threads")
            ours = run_ours(smol, "lora", text_dir, args, work, "cpu")
            base = run_trainer(smol, "lora", blocks, args, work, "cpu")
            rows.append({"device": "cpu", "model": "smollm2-135m", "method": "lora", "ours": ours, "trainer": base,
                         "speedup": base["s_per_step"] / ours["s_per_step"],
                         "speedup_best_step": base["s_per_step_min"] / ours["s_per_step_min"]})
        if not torch.cuda.is_available():
            print("GPU part: no GPU (torch.cuda.is_available() is False); skipped")
        else:
            gargs = argparse.Namespace(steps=args.gpu_steps, batch_size=args.gpu_batch_size, max_length=args.gpu_max_length)
            gdir = work / "gpu-docs"
            gdir.mkdir()
            for i in range(10):  # enough packed blocks for a full micro-batch of long sequences
                for f in sorted(text_dir.glob("*.*")):
                    (gdir / f"{i}-{f.name}").write_text(f.read_text(encoding="utf-8"))
            gblocks = pack_documents(tok, load_documents([gdir]), args.gpu_max_length)
            gblocks = [b for b in gblocks if len(b.input_ids) == args.gpu_max_length]
            shapes = {"smollm2-135m (random)": {}, "qwen2.5-0.5b-like (random)": QWEN05_LIKE}
            for label, shape in shapes.items():
                path = random_model_dir(label.split()[0], shape, smol, work)
                for method in ("full", "lora"):
                    print(f"GPU: {label} {method}")
                    ours = run_ours(path, method, gdir, gargs, work, "cuda")
                    base = run_trainer(path, method, gblocks, gargs, work, "cuda")
                    rows.append({"device": torch.cuda.get_device_name(), "model": label, "method": method, "ours": ours,
                                 "trainer": base, "speedup": base["s_per_step"] / ours["s_per_step"],
                                 "speedup_best_step": base["s_per_step_min"] / ours["s_per_step_min"]})
    print_table(rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "finetune.json"
    out.write_text(json.dumps({"machine": platform.platform(), "torch": torch.__version__, "args": vars(args), "rows": rows}, indent=2))
    print(f"wrote {out}")


def print_table(rows: list[dict]) -> None:
    head = (f"{'device':<14} {'model':<28} {'method':<5} {'ours s/step':>11} {'Trainer s/step':>14} {'speedup':>8} "
            f"{'best-step':>9} {'ours tok/s':>10} {'MFU':>6} {'peak GiB':>9}")
    print(head)
    print("-" * len(head))
    for r in rows:
        o, b = r["ours"], r["trainer"]
        mfu = f"{o['mfu']:.1%}" if o.get("mfu") is not None else "-"
        mem = f"{o['peak_mem_gib']:.1f}/{b['peak_mem_gib']:.1f}" if "peak_mem_gib" in o else "-"
        print(f"{r['device'][:14]:<14} {r['model']:<28} {r['method']:<5} {o['s_per_step']:>11.3f} {b['s_per_step']:>14.3f} "
              f"{r['speedup']:>7.2f}x {r.get('speedup_best_step', float('nan')):>8.2f}x {o['tokens_per_s']:>10.0f} {mfu:>6} {mem:>9}")


if __name__ == "__main__":
    main()
