"""Choosing the device once: cuda, then mps, then cpu, unless one is named."""
from __future__ import annotations

import os
import sys

# What a GPU that torch could use leaves on a Linux machine: the NVIDIA driver's control device and
# /proc entry (also inside containers given GPUs), AMD's ROCm compute device, WSL's GPU bridge.
ACCELERATOR_MARKERS = ("/dev/nvidiactl", "/proc/driver/nvidia", "/dev/kfd", "/dev/dxg")


def pick_device(preference: str | None = "auto") -> str:
    """The device name to run on: `preference` when it names one, else the best one present.

    Returns a string ("cuda", "mps", "cpu", or what was asked for, e.g. "cuda:1") so that callers
    that need a `torch.device` wrap it themselves and callers that do not need torch never see it.
    """
    if preference and preference != "auto":
        return preference
    if no_accelerator_here():
        return "cpu"
    import torch  # here, not at the top: importing torch costs ~1 s and many callers never need it

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def no_accelerator_here() -> bool:
    """True when this is a Linux machine without any GPU driver, so torch could only find the CPU.

    Answering this without importing torch saves about a second of every cold CLI command on a
    laptop (the int8 decoder and embedder do not need torch at all). When torch is already loaded,
    or on another OS (macOS has MPS), the caller asks torch as before.
    """
    if "torch" in sys.modules or not sys.platform.startswith("linux"):
        return False
    return not any(os.path.exists(marker) for marker in ACCELERATOR_MARKERS)


def usable_cpus() -> int:
    """The cores this process may run on: `taskset` and container CPU sets count, unlike os.cpu_count(),
    so a replica held to one core sizes its thread pools to one core (more threads only contend)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)
