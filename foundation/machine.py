"""What this machine's numeric kernels depend on: the CPU, its instruction sets, the libraries.

Quantised kernels are chosen at run time by the CPU they find: CTranslate2 uses Intel MKL only on
CPUs that say GenuineIntel and oneDNN elsewhere; oneDNN and onnxruntime's MLAS take the VNNI
instructions where they exist and a saturating AVX2 sequence where they do not. The same int8 model
therefore gives other numbers on another CPU (measured: on an AVX2 path the bundled decoder's
logits move up to 14 from float32's, with VNNI up to 5). A verdict about a fast path ("int8 agrees
with float32 here") is only valid for the fingerprint it was measured on: this module makes it.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
from functools import lru_cache
from pathlib import Path
from typing import Iterable

# The flags that change which kernel a library runs (x86 and Arm); the rest of /proc/cpuinfo's
# list (vulnerabilities, power management) changes nothing numeric.
KERNEL_FLAGS = (
    "sse4_1", "sse4_2", "avx", "avx2", "fma", "f16c",
    "avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16",
    "amx_tile", "amx_int8", "amx_bf16",
    "asimd", "asimddp", "i8mm", "sve", "bf16",
)
# Environment variables that make the libraries pick another kernel on the same CPU.
KERNEL_ENV = (
    "CT2_USE_MKL", "CT2_FORCE_CPU_ISA", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA",
    "MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR", "MKL_DEBUG_CPU_TYPE",
)


@lru_cache(maxsize=1)
def cpu() -> dict:
    """The CPU's vendor, model name and kernel-relevant flags (from /proc/cpuinfo on Linux)."""
    vendor, model, flags = "", "", set()
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip().lower(), value.strip()
        if key == "vendor_id" and not vendor:
            vendor = value
        elif key in ("model name", "cpu model", "hardware") and not model:
            model = value
        elif key in ("flags", "features") and not flags:
            flags = set(value.split())
    return {
        "vendor": vendor or platform.processor() or "unknown",
        "model": model or platform.processor() or platform.machine(),
        "arch": platform.machine(),
        "flags": sorted(f for f in KERNEL_FLAGS if f in flags),
    }


def fingerprint(libraries: Iterable[str] = ()) -> dict:
    """The CPU, the versions of `libraries` and the kernel-choosing environment: what a verdict is keyed by."""
    versions = {}
    for name in sorted(set(libraries)):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    env = {k: os.environ[k] for k in KERNEL_ENV if os.environ.get(k)}
    return {**cpu(), "libraries": versions, "env": env}


def fingerprint_key(print_: dict) -> str:
    """A short stable name for a fingerprint (file names of cached verdicts)."""
    return hashlib.sha256(json.dumps(print_, sort_keys=True).encode()).hexdigest()[:16]


def describe(print_: dict) -> str:
    """One line for people: 'AMD EPYC (AuthenticAMD; avx2 avx512_vnni ...)'."""
    flags = " ".join(print_.get("flags") or []) or "no SIMD flags read"
    env = "".join(f", {k}={v}" for k, v in (print_.get("env") or {}).items())
    return f"{print_.get('model')} ({print_.get('vendor')}; {flags}{env})"
