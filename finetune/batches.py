"""Which examples each step trains on, and each rank's share of them: a pure function of the step.

Because the order depends only on (seed, step), resuming needs nothing but the step number, and
N ranks with micro-batch B see exactly the examples one process with micro-batch N*B would.
"""
from __future__ import annotations

import random

from finetune.data import Example


def step_indices(n_examples: int, step: int, global_batch: int, seed: int) -> list[int]:
    """The example indices of global step `step`: a fresh seeded permutation per epoch, read as a stream."""
    out: list[int] = []
    pos = step * global_batch
    while len(out) < global_batch:
        epoch, offset = divmod(pos, n_examples)
        perm = list(range(n_examples))
        random.Random(seed * 1_000_003 + epoch).shuffle(perm)
        take = perm[offset : offset + global_batch - len(out)]
        out.extend(take)
        pos += len(take)
    return out


def micro_batches(train: list[Example], step: int, *, batch_size: int, grad_accum: int, rank: int, world_size: int,
                  seed: int) -> list[list[Example]]:
    """This rank's micro-batches of global step `step` (rank r takes every world_size-th slice)."""
    idx = step_indices(len(train), step, batch_size * grad_accum * world_size, seed)
    b, w = batch_size, world_size
    return [[train[i] for i in idx[(m * w + rank) * b : (m * w + rank + 1) * b]] for m in range(grad_accum)]


def target_count(micro: list[list[Example]]) -> int:
    """Target tokens after the next-token shift (position 0 is never predicted), over all micro-batches."""
    return sum(e.n_targets - (e.labels[0] != -100) for mb in micro for e in mb)
