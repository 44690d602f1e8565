"""Sortable row ids: ULID-shaped (48-bit millisecond time + 80 random bits, Crockford base32).

Ids sort by creation time, so `ORDER BY id` is chronological and ids from different
processes never collide. Within one process ids are strictly increasing even inside the
same millisecond (the random part is incremented), like ULID's monotonic mode.
"""
from __future__ import annotations

import os
import threading
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford: no I, L, O, U
_RANDOM_BITS = 80
_lock = threading.Lock()
_last_ms = -1
_last_rand = 0


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, digit = divmod(value, 32)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))


def new_id() -> str:
    """A 26-character id, e.g. '01JDX3V6Q5T9W2K8M4N7P0R1S3'."""
    global _last_ms, _last_rand
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:  # same millisecond (or clock stepped back): stay monotonic
            ms = _last_ms
            rand = _last_rand + 1
            if rand >= 1 << _RANDOM_BITS:  # 2^80 ids in one ms: borrow the next ms
                ms, rand = ms + 1, int.from_bytes(os.urandom(10), "big")
        else:
            rand = int.from_bytes(os.urandom(10), "big")
        _last_ms, _last_rand = ms, rand
    return _encode(ms, 10) + _encode(rand, 16)

