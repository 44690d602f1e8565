"""Choosing the device once: cuda, then mps, then cpu, unless one is named."""
from __future__ import annotations


def pick_device(preference: str | None = "auto") -> str:
    """The device name to run on: `preference` when it names one, else the best one present.

    Returns a string ("cuda", "mps", "cpu", or what was asked for, e.g. "cuda:1") so that callers
    that need a `torch.device` wrap it themselves and callers that do not need torch never see it.
    """
    if preference and preference != "auto":
        return preference
    import torch  # here, not at the top: importing torch costs ~1 s and many callers never need it

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"
