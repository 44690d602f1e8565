"""A file's budget while it is loaded: seconds, memory, and how much a zip may unpack to.

Hostile or broken files must cost a bounded amount: a DOCX is a zip, so its central directory is
read (sizes only, nothing inflated) and the file is refused before anything is unpacked when the
parts add up to more than `max_unpacked_mb` or one part inflates suspiciously far. Time and memory
are enforced by the loader process (`index.worker`), which is killed past its deadline.
"""
from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass

from index.sections import LoadError

_RATIO_FLOOR = 1 << 20  # parts smaller than 1 MB unpacked may compress as well as they like


@dataclass(frozen=True)
class LoadLimits:
    """Per-file limits; the defaults fit a 2-core, few-GB machine and real office documents."""

    max_file_seconds: float = 60.0  # wall clock per file in the loader process; 0 = load in-process, unbounded
    max_file_memory_mb: int = 1024  # memory the loader may add for one file; more = bigger files, less for chat
    max_unpacked_mb: int = 256  # DOCX: all zip parts together, uncompressed; real documents are a few MB
    max_ratio: int = 200  # one part may inflate at most this much (text XML reaches ~20-50x; bombs ~1000x)
    max_zip_parts: int = 10_000  # real DOCX files have tens of parts


def check_zip(data: bytes, limits: LoadLimits, what: str) -> None:
    """Refuse a zip (`what`: "DOCX") that would unpack past the limits, from its central directory alone."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            parts = zf.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise LoadError(f"unreadable {what}: {exc}") from exc
    if len(parts) > limits.max_zip_parts:
        raise LoadError(f"{what} has {len(parts)} zip parts (more than {limits.max_zip_parts}); not unpacked")
    total = sum(p.file_size for p in parts)
    if total > limits.max_unpacked_mb * 1e6:
        raise LoadError(f"{what} would unpack to {total / 1e6:.0f} MB (more than max_unpacked_mb = "
                        f"{limits.max_unpacked_mb}); not unpacked")
    for part in parts:
        ratio = part.file_size / max(1, part.compress_size)
        if part.file_size > _RATIO_FLOOR and ratio > limits.max_ratio:
            raise LoadError(f"{what} part {part.filename} inflates {ratio:.0f}x ({part.compress_size / 1e6:.1f} MB "
                            f"-> {part.file_size / 1e6:.0f} MB; more than {limits.max_ratio}x looks like a zip bomb); "
                            "not unpacked")
