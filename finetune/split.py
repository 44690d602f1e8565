"""The held-out split: a record's content hash, not a random draw, decides whether it is held out.

So the split is the same on every run and every rank, and adding records never moves the others
between train and validation. This is the one hash split of the product (the learning loop's
held-out questions use it too).
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def hash_fraction(key: str) -> float:
    """A stable number in [0, 1) for `key` (the first 8 bytes of its SHA-1)."""
    return int.from_bytes(hashlib.sha1(key.encode("utf-8")).digest()[:8], "big") / 2**64


def in_validation(key: str, val_fraction: float) -> bool:
    """True when the record with this content key belongs to the held-out share `val_fraction`."""
    return hash_fraction(key) < val_fraction


def split(items: list[T], key: Callable[[T], str], val_fraction: float) -> tuple[list[T], list[T]]:
    """Hash split; with >= 2 items and a positive fraction, validation is never empty."""
    if val_fraction <= 0 or len(items) < 2:
        return list(items), []
    train: list[T] = []
    val: list[T] = []
    for it in items:
        (val if in_validation(key(it), val_fraction) else train).append(it)
    if not val:  # tiny sets: hold out the item with the smallest hash, still deterministic
        pick = min(range(len(train)), key=lambda i: hashlib.sha1(key(train[i]).encode()).hexdigest())
        val.append(train.pop(pick))
    if not train:
        train.append(val.pop())
    return train, val
