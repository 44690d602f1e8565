"""Writes that need not hold up an answer: applied in order by one background thread.

The answer path writes the question and an empty `incomplete` answer before generating (so a
crash keeps them), then fills the answer in. That last write happens after the user has the
answer, so the log hands it to this queue instead of adding its round trips to the answer's
latency. Readers call `wait()` first, so whoever reads the log (in this process) sees every
answer it has been given; `wait()` also runs at exit. A process killed before its queue drains
leaves those answers `incomplete`, exactly what a crash mid-answer leaves.
"""
from __future__ import annotations

import atexit
import logging
import queue
import threading
import weakref
from typing import Any, Callable

log = logging.getLogger(__name__)

_LIVE: "weakref.WeakSet[DeferredWrites]" = weakref.WeakSet()


class DeferredWrites:
    """A FIFO of write calls run by one daemon thread, started on first use."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._queue: queue.Queue[tuple[Callable[..., Any], tuple, dict] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        _LIVE.add(self)

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
        self._queue.put((fn, args, kwargs))

    def wait(self) -> None:
        """Return once every write submitted so far has been applied (or has failed and been logged)."""
        if threading.current_thread() is self._thread:
            return  # a deferred write that reads the log must not wait for itself
        self._queue.join()

    def close(self) -> None:
        """Apply what is queued, then let the thread end (a later `submit` starts a new one)."""
        self.wait()
        with self._start_lock:
            if self._thread is not None and self._thread.is_alive():
                self._queue.put(None)
                self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                self._queue.task_done()
                return
            fn, args, kwargs = item
            try:
                fn(*args, **kwargs)
            except Exception:  # noqa: BLE001 - the answer is already delivered: report, keep going
                log.exception("%s: a deferred write failed (%s)", self.name, getattr(fn, "__name__", fn))
            finally:
                self._queue.task_done()


@atexit.register
def _drain_at_exit() -> None:
    for writes in list(_LIVE):
        try:
            writes.wait()
        except Exception:  # noqa: BLE001 - never block interpreter exit on a broken log
            pass
