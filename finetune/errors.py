"""How fine-tuning fails: each error's message says what to change, so the CLI prints it as it is."""
from __future__ import annotations


class DataError(ValueError):
    """A malformed training record or file; the message starts with `file:line:`."""


class TrainingError(RuntimeError):
    """Training could not run; the message says what to change."""


class OutOfMemory(TrainingError):
    """The device ran out of memory; the message lists the knobs that lower memory."""
