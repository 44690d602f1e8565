"""Ctrl-C during training: finish the step under way, checkpoint, and stop with a resume hint.

The first Ctrl-C only raises a flag that the loop reads between optimizer steps, so the weights
and optimizer state it checkpoints are those of a whole step. A second Ctrl-C interrupts at once
(the last saved checkpoint stands).
"""
from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


class StopFlag:
    """Set by the first Ctrl-C; read by the training loop after each step."""

    def __init__(self) -> None:
        self.requested = False


@contextlib.contextmanager
def ctrl_c_stops_after_step() -> Iterator[StopFlag]:
    """Within the block, the first SIGINT sets the flag instead of raising KeyboardInterrupt.

    Only in the main thread and when nobody else handles SIGINT (signal handlers can only be set
    there, and a host application's own handler wins); elsewhere the flag simply never rises.
    """
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield flag
        return

    def on_sigint(signum, frame) -> None:
        if flag.requested:  # the second Ctrl-C: the user does not want to wait for the step
            raise KeyboardInterrupt
        flag.requested = True

    signal.signal(signal.SIGINT, on_sigint)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
