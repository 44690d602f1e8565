"""Where training runs: device, precision, processes (torchrun / DDP / FSDP) and FLOP accounting.

Chosen once, up front, like nanoGPT: bf16 autocast + SDPA on a GPU, fp32 on CPU. Under
`torchrun --nproc_per_node=N` (or `accelerate launch`) the usual RANK / WORLD_SIZE / LOCAL_RANK
variables are set and we join the process group: NCCL on GPUs, gloo on CPU (which is how the
tests exercise the multi-process path on a laptop).
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch

from foundation.devices import pick_device as choose_device

# Dense bf16 peak TFLOP/s per GPU, from the vendors' data sheets (without sparsity).
PEAK_BF16_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 125e12, "L4": 121e12}
DEFAULT_PEAK = 989e12  # H200: the GPU this project plans for


@dataclass
class Runtime:
    device: torch.device
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    autocast_dtype: torch.dtype | None = None  # bf16 on GPUs that support it, else None (fp32)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def barrier(self) -> None:
        if self.distributed:
            torch.distributed.barrier()

    def all_reduce_sum(self, value: float) -> float:
        if not self.distributed:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self.device if self.device.type == "cuda" else "cpu")
        torch.distributed.all_reduce(t)
        return float(t.item())


def pick_device(requested: str = "auto") -> torch.device:
    """The training device as a `torch.device` (the choice itself is `foundation.devices`)."""
    return torch.device(choose_device(requested))


def setup_runtime(requested_device: str = "auto", precision: str = "auto") -> Runtime:
    """Join the process group when launched by torchrun, pick this process's device and precision."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(requested_device)
    if device.type == "cuda":
        device = torch.device("cuda", local if world > 1 else (device.index or 0))
        torch.cuda.set_device(device)
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend=backend, device_id=device if device.type == "cuda" else None)
    if precision == "auto":
        bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        dtype = torch.bfloat16 if bf16 else None
    elif precision == "bf16":
        dtype = torch.bfloat16
    elif precision == "fp32":
        dtype = None
    else:
        raise ValueError(f"precision must be auto, bf16 or fp32, got {precision!r}")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return Runtime(device, rank, local, world, dtype)


def teardown(rt: Runtime) -> None:
    if rt.distributed and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def describe(rt: Runtime) -> str:
    if rt.device.type == "cuda":
        where = f"{torch.cuda.get_device_name(rt.device)} x{rt.world_size}"
    else:
        where = f"{rt.device.type} x{rt.world_size} (no GPU)" if rt.device.type == "cpu" else rt.device.type
    prec = "bf16 autocast" if rt.autocast_dtype == torch.bfloat16 else "fp32"
    return f"{where}, {prec}"


def flops_per_token(n_params: int, n_layers: int, hidden: int, seq_len: int, trainable_fraction: float = 1.0) -> float:
    """Training FLOPs per token, PaLM appendix B / nanoGPT's estimate_mfu.

    Forward 2N, backward 4N when every weight gets a gradient; with LoRA the frozen weights only
    pass activation gradients back (2N), so backward is ~2N + 2N*trainable_fraction. Attention adds
    12 * layers * hidden * seq_len (QK^T and AV, forward and backward).
    """
    dense = (4 + 2 * trainable_fraction) * n_params
    return dense + 12 * n_layers * hidden * seq_len


def peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16_FLOPS.items() if k in name), DEFAULT_PEAK)


def estimate_mfu(flops_token: float, tokens_per_s: float, device: torch.device, world_size: int = 1) -> float | None:
    """Model FLOPs utilisation: achieved / (peak x GPUs). None on CPU, where it means little."""
    peak = peak_flops(device)
    if peak is None:
        return None
    return flops_token * tokens_per_s / (peak * world_size)
