"""GPU check: FAISS (or exact torch) search, fp16 embedding throughput, bf16 training tokens/s and MFU, one answer.

Needs only torch with CUDA: the models are written here in plain torch (random weights of the
real configurations), so the check runs on a bare GPU machine with no network. FAISS is used when
importable with GPU support (`benchmarks/gpu_check.sh` unpacks a carried bundle), else the GPU
row is exact torch matmul + top-k. One answer goes through the assistant's local backend when
transformers and the default model are present, else the row says why it was skipped.

    python benchmarks/gpu_check.py            # on a GPU machine; prints "no GPU" and exits 0 elsewhere
    GPU_CHECK_TINY=1 python benchmarks/gpu_check.py   # tiny sizes on the CPU: checks the code paths
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

REPO = Path(__file__).resolve().parents[1]
TINY = os.environ.get("GPU_CHECK_TINY") == "1"
# Dense bf16 peak FLOP/s by card name, for MFU (nanoGPT's estimate_mfu divides by the same figure).
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12, "L4": 121e12}


@dataclass
class LlamaShape:
    """The shapes that set the cost of a Llama-style model (weights are random)."""

    name: str
    vocab: int
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int


SMOLLM2_135M = LlamaShape("SmolLM2-135M (LlamaConfig)", 49152, 576, 30, 9, 3, 1536)
HALF_B = LlamaShape("0.5B-class (Qwen2.5-0.5B shapes)", 151936, 896, 24, 14, 2, 4864)
TINY_SHAPE = LlamaShape("tiny", 512, 64, 2, 4, 2, 128)


class Block(nn.Module):
    """One Llama decoder layer: RMSNorm, grouped-query attention with rotary positions, SwiGLU."""

    def __init__(self, s: LlamaShape):
        super().__init__()
        self.s, hd = s, s.hidden // s.heads
        self.norm1, self.norm2 = nn.RMSNorm(s.hidden), nn.RMSNorm(s.hidden)
        self.q = nn.Linear(s.hidden, s.heads * hd, bias=False)
        self.k = nn.Linear(s.hidden, s.kv_heads * hd, bias=False)
        self.v = nn.Linear(s.hidden, s.kv_heads * hd, bias=False)
        self.o = nn.Linear(s.heads * hd, s.hidden, bias=False)
        self.gate = nn.Linear(s.hidden, s.intermediate, bias=False)
        self.up = nn.Linear(s.hidden, s.intermediate, bias=False)
        self.down = nn.Linear(s.intermediate, s.hidden, bias=False)

    def forward(self, x, cos, sin):
        B, T, _ = x.shape
        hd = self.s.hidden // self.s.heads
        h = self.norm1(x)
        q = self.q(h).view(B, T, self.s.heads, hd).transpose(1, 2)  # (B, nh, T, hd)
        k = self.k(h).view(B, T, self.s.kv_heads, hd).transpose(1, 2)
        v = self.v(h).view(B, T, self.s.kv_heads, hd).transpose(1, 2)
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        x = x + self.o(a.transpose(1, 2).reshape(B, T, -1))
        h = self.norm2(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


def rotate(x, cos, sin):
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


class Llama(nn.Module):
    def __init__(self, s: LlamaShape):
        super().__init__()
        self.s = s
        self.embed = nn.Embedding(s.vocab, s.hidden)
        self.blocks = nn.ModuleList(Block(s) for _ in range(s.layers))
        self.norm = nn.RMSNorm(s.hidden)
        self.head = nn.Linear(s.hidden, s.vocab, bias=False)
        self.head.weight = self.embed.weight  # tied, as SmolLM2 and Qwen2.5-0.5B are

    def forward(self, ids):
        T, hd = ids.shape[1], self.s.hidden // self.s.heads
        freqs = 1.0 / (10000 ** (torch.arange(0, hd, 2, device=ids.device).float() / hd))
        ang = torch.outer(torch.arange(T, device=ids.device).float(), freqs)
        cos, sin = torch.cat((ang.cos(), ang.cos()), -1), torch.cat((ang.sin(), ang.sin()), -1)
        x = self.embed(ids)
        for b in self.blocks:
            x = b(x, cos.to(x.dtype), sin.to(x.dtype))
        return self.head(self.norm(x))


class LoRA(nn.Module):
    """A frozen linear layer plus a trainable low-rank update (rank r, scale alpha / r)."""

    def __init__(self, base: nn.Linear, r: int = 16, alpha: int = 32):
        super().__init__()
        self.base, self.scale = base, alpha / r
        self.a = nn.Parameter(torch.randn(r, base.in_features, device=base.weight.device, dtype=base.weight.dtype) / r)
        self.b = nn.Parameter(torch.zeros(base.out_features, r, device=base.weight.device, dtype=base.weight.dtype))

    def forward(self, x):
        return self.base(x) + (x @ self.a.t() @ self.b.t()) * self.scale


def add_lora(model: Llama) -> None:
    for p in model.parameters():
        p.requires_grad_(False)
    for b in model.blocks:
        for name in ("q", "k", "v", "o", "gate", "up", "down"):
            setattr(b, name, LoRA(getattr(b, name)))


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def peak_flops(device: str) -> float | None:
    if os.environ.get("GPU_PEAK_TFLOPS"):
        return float(os.environ["GPU_PEAK_TFLOPS"]) * 1e12
    if device != "cuda":
        return None
    name = torch.cuda.get_device_name(0)
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


def train_rate(shape: LlamaShape, method: str, device: str, batch: int, seq: int, steps: int) -> dict:
    """Tokens/s of bf16 training steps (AdamW) and MFU: 6N FLOPs a token for full, 4N for LoRA
    (no weight gradients of the frozen base), plus 12*L*d*T for attention (nanoGPT's formula)."""
    torch.manual_seed(0)
    if device == "cuda":
        torch.cuda.empty_cache()  # the previous run's model and optimiser are gone by now
        torch.cuda.reset_peak_memory_stats()
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    model = Llama(shape).to(device=device, dtype=dtype)
    n_params = sum(p.numel() for p in model.parameters())
    if method == "lora":
        add_lora(model)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, fused=device == "cuda")
    ids = torch.randint(0, shape.vocab, (batch, seq + 1), device=device)

    def step() -> None:
        logits = model(ids[:, :-1])
        loss = F.cross_entropy(logits.float().view(-1, shape.vocab), ids[:, 1:].reshape(-1))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()  # warm-up: kernels chosen, memory allocated
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    seconds = time.perf_counter() - start
    tokens_s = batch * seq * steps / seconds
    per_token = (6 if method == "full" else 4) * n_params + 12 * shape.layers * shape.hidden * seq
    peak = peak_flops(device)
    mem = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else 0.0
    return {"what": f"{method} fine-tuning, {shape.name}", "params_M": round(n_params / 1e6, 1),
            "tokens_per_s": round(tokens_s), "mfu": round(per_token * tokens_s / peak, 3) if peak else None,
            "batch": batch, "seq": seq, "steps": steps, "peak_mem_GiB": round(mem, 1)}


def search_rows(device: str, n: int, nq: int, d: int = 384, k: int = 10) -> list[dict]:
    """Exact ground truth by torch; FAISS flat on CPU; FAISS flat on the GPU when it loads, else torch exact."""
    g = torch.Generator().manual_seed(0)
    xb = F.normalize(torch.randn(n, d, generator=g), dim=1)
    xq = F.normalize(torch.randn(nq, d, generator=g), dim=1)
    rows = []

    def timed(fn):
        fn(xq[:10])
        sync(device)
        s = time.perf_counter()
        out = fn(xq)
        sync(device)
        return out, time.perf_counter() - s

    xb_dev = xb.to(device)
    torch_exact = lambda q: torch.topk(q.to(device) @ xb_dev.T, k, dim=1).indices.cpu()  # noqa: E731
    truth, secs = timed(torch_exact)
    rows.append({"what": f"exact torch matmul + top-k on {device}", "n": n, "queries": nq,
                 "recall@10": 1.0, "queries_per_s": round(nq / secs)})
    try:
        import faiss
    except ImportError:
        rows.append({"what": "FAISS", "skipped": "faiss not importable here"})
        return rows

    def recall(ids) -> float:
        ids = torch.as_tensor(ids)
        return round(sum(len(set(a.tolist()) & set(b.tolist())) for a, b in zip(ids, truth)) / (nq * k), 4)

    cpu = faiss.IndexFlatIP(d)
    cpu.add(xb.numpy())
    (_, ids), secs = timed(lambda q: cpu.search(q.numpy(), k))
    rows.append({"what": "FAISS flat, CPU", "n": n, "queries": nq, "recall@10": recall(ids),
                 "queries_per_s": round(nq / secs)})
    if device == "cuda" and hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0:
        try:
            res = faiss.StandardGpuResources()
            co = faiss.GpuClonerOptions()
            co.use_cuvs = False
            gpu = faiss.index_cpu_to_gpu(res, 0, cpu, co)
            (_, ids), secs = timed(lambda q: gpu.search(q.numpy(), k))
            rows.append({"what": "FAISS flat, GPU", "n": n, "queries": nq, "recall@10": recall(ids),
                         "queries_per_s": round(nq / secs)})
            ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, 1024, faiss.METRIC_INNER_PRODUCT)
            ivf.train(xb[:100_000].numpy())
            ivf.add(xb.numpy())
            ivf.nprobe = 32
            givf = faiss.index_cpu_to_gpu(res, 0, ivf, co)
            (_, ids), secs = timed(lambda q: givf.search(q.numpy(), k))
            rows.append({"what": "FAISS IVF1024 nprobe 32, GPU", "n": n, "queries": nq, "recall@10": recall(ids),
                         "queries_per_s": round(nq / secs)})
        except Exception as exc:  # noqa: BLE001 - a trimmed bundle that does not load: say so, keep the torch row
            rows.append({"what": "FAISS GPU", "skipped": f"{type(exc).__name__}: {exc}"[:200]})
    else:
        rows.append({"what": "FAISS GPU", "skipped": "no GPU build of faiss here (the torch row stands in)"})
    return rows


def embed_rate(device: str, batch: int, seq: int, batches: int) -> dict:
    """Sentences/s of a random-initialised MiniLM-L6-shaped BERT encoder (384 wide, 6 layers, 12 heads) + mean pooling."""
    torch.manual_seed(0)
    dtype = torch.float16 if device == "cuda" else torch.float32
    layer = nn.TransformerEncoderLayer(384, 12, 1536, activation="gelu", batch_first=True, dropout=0.0)
    model = nn.Sequential(nn.Embedding(30522, 384), nn.TransformerEncoder(layer, 6, enable_nested_tensor=False))
    model = model.to(device=device, dtype=dtype).eval()
    ids = torch.randint(0, 30522, (batch, seq), device=device)
    with torch.inference_mode():
        F.normalize(model(ids).mean(1), dim=-1)
        sync(device)
        s = time.perf_counter()
        for _ in range(batches):
            F.normalize(model(ids).mean(1), dim=-1)
        sync(device)
    secs = time.perf_counter() - s
    return {"what": f"embedding, MiniLM-L6 shape, {str(dtype).replace('torch.', '')}", "batch": batch, "seq": seq,
            "sentences_per_s": round(batch * batches / secs)}


def one_answer(device: str) -> dict:
    """One answer through the assistant's local backend (the real default model) on this device."""
    sys.path.insert(0, str(REPO))
    try:
        from assistant.generation.base import GenerationStats
        from assistant.generation.local import LocalGenerator
        from foundation.model_paths import resolve_generator

        gen = LocalGenerator(resolve_generator("smollm2"), name="smollm2", device=device)
    except Exception as exc:  # noqa: BLE001 - a bare GPU box has no transformers or weights: report, don't fail
        return {"what": "one answer, local backend", "skipped": f"{type(exc).__name__}: {exc}"[:200]}
    stats = GenerationStats()
    text = "".join(gen.stream([{"role": "user", "content": "What is FAISS used for? One sentence."}],
                              max_new_tokens=48, stats=stats))
    return {"what": f"one answer, local backend on {device}", "ttft_ms": round(stats.ttft_ms),
            "tokens_per_s": round(stats.tokens_out / max(stats.duration_ms / 1000, 1e-6), 1), "text": text[:120]}


def fmt(row: dict) -> str:
    skip = row.get("skipped")
    if skip:
        return f"| {row['what']:<52} | skipped: {skip}"
    keys = [k for k in row if k != "what"]
    return f"| {row['what']:<52} | " + ", ".join(f"{k}={row[k]}" for k in keys)


def main() -> int:
    if not torch.cuda.is_available() and not TINY:
        print("no GPU: torch.cuda.is_available() is False; nothing to check (GPU_CHECK_TINY=1 runs tiny sizes on the CPU)")
        return 0
    device = "cuda" if torch.cuda.is_available() else "cpu"
    started = time.perf_counter()
    rows: list[dict] = []
    n, nq = (20_000, 100) if TINY else (1_000_000, 1000)
    rows += search_rows(device, n, nq)
    rows.append(embed_rate(device, *((8, 32, 2) if TINY else (512, 128, 20))))
    shapes = [TINY_SHAPE] if TINY else [SMOLLM2_135M, HALF_B]
    for shape in shapes:
        for method in ("lora", "full"):
            batch, seq, steps = (2, 32, 2) if TINY else ((16, 1024, 10) if shape is SMOLLM2_135M else (8, 1024, 10))
            rows.append(train_rate(shape, method, device, batch, seq, steps))
    rows.append(one_answer(device))
    name = torch.cuda.get_device_name(0) if device == "cuda" else "cpu (tiny sizes)"
    print(f"GPU check on {name}, torch {torch.__version__}, {time.perf_counter() - started:.0f} s")
    print("\n".join(fmt(r) for r in rows))
    out = {"benchmark": "gpu_check", "device": name, "torch": torch.__version__, "tiny": TINY,
           "seconds": round(time.perf_counter() - started, 1), "rows": rows}
    results = REPO / "benchmarks" / "results"
    results.mkdir(parents=True, exist_ok=True)
    path = results / ("gpu_check_tiny.json" if TINY else "gpu_check.json")
    path.write_text(json.dumps(out, indent=2))
    if os.environ.get("OUT"):  # the device tool brings back what is written under $OUT
        Path(os.environ["OUT"], path.name).write_text(json.dumps(out, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
