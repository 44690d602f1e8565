"""Loading files in a separate process that can be killed: each file's time and memory budget.

One loader process is kept for the life of the parent and serves files one at a time over a pipe
(starting Python and importing the loaders costs ~0.5 s: too much to pay per file). The parent
sends (path, bytes, limits); the child answers with the `LoadedDocument` or the reason it failed.
Past `max_file_seconds` the parent kills it and the next file gets a fresh one. While it loads a
file its address space is capped (RLIMIT_AS) at its idle size plus `max_file_memory_mb`, so a file
that wants more fails with MemoryError in the child instead of swapping out the server. The child
runs at a lower CPU priority (nice 10), so on a busy machine chat answers in the parent go first.
Where no process can be started, files are loaded in-process (no time or memory budget) with a warning.
"""
from __future__ import annotations

import atexit
import contextlib
import logging
import os
import pickle
import resource
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, BinaryIO

from index.budget import LoadLimits
from index.loaders import load_document
from index.sections import LoadedDocument, LoadError

log = logging.getLogger(__name__)

_HEADER = struct.Struct("!Q")
_ROOT = Path(__file__).resolve().parents[1]  # the folder holding the `index` package
_START_SECONDS = 120.0  # importing the loaders on a loaded 2-core machine can take several seconds
_RESTART_RSS_KB = 512 * 1024  # a child that grew past this after a file is replaced: memory back to the OS


class LoaderProcess:
    """A persistent child process that loads one file at a time under a `LoadLimits` budget."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._unavailable = ""  # why no child can be started: load in-process instead
        self.peak_rss_mb = 0.0  # the largest peak resident size (VmHWM) any child reached, for tests and reports

    def load(self, path: Path, data: bytes, limits: LoadLimits) -> LoadedDocument:
        """`load_document(path, data, limits)` in the child; LoadError with the reason when it fails or is killed."""
        if limits.max_file_seconds <= 0:
            return load_document(path, data, limits)
        with self._lock:
            if not self._ensure_started():
                return load_document(path, data, limits)
            try:
                _send(self._proc.stdin, (str(path), data, limits))
            except (BrokenPipeError, OSError):
                self._stop(kill=True)  # the idle child had died: start another and send again, once
                if not self._ensure_started():
                    return load_document(path, data, limits)
                _send(self._proc.stdin, (str(path), data, limits))
            return self._answer(limits)

    def _answer(self, limits: LoadLimits) -> LoadedDocument:
        try:
            reply = _recv(self._proc.stdout.fileno(), time.monotonic() + limits.max_file_seconds)
        except TimeoutError:
            self._stop(kill=True)
            raise LoadError(f"took longer than {limits.max_file_seconds:g} s to read (max_file_seconds); "
                            "not indexed") from None
        except EOFError:
            code = self._stop(kill=True)
            raise LoadError(f"the loader process died reading this file ({_describe(code)}); not indexed") from None
        kind, value, rss_kb, peak_kb = reply
        self.peak_rss_mb = max(self.peak_rss_mb, peak_kb / 1024)
        if kind == "memory" or rss_kb > _RESTART_RSS_KB:
            self._stop(kill=kind == "memory")
        if kind == "ok":
            return value
        if kind == "memory":
            raise LoadError(f"needed more than {limits.max_file_memory_mb} MB of memory to read "
                            "(max_file_memory_mb); not indexed")
        raise LoadError(value)

    def _ensure_started(self) -> bool:
        if self._proc is not None and self._proc.poll() is None:
            return True
        if self._proc is not None:
            self._stop(kill=True)
        if self._unavailable:
            return False
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(_ROOT), os.environ.get("PYTHONPATH")])),
               "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        try:
            self._proc = subprocess.Popen([sys.executable, "-c", "from index.worker import serve; serve()"],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                          env=env, cwd=str(_ROOT), close_fds=True)
            ready = _recv(self._proc.stdout.fileno(), time.monotonic() + _START_SECONDS)
            if ready[0] != "ready":
                raise OSError(f"unexpected greeting {ready[0]!r}")
        except (OSError, EOFError, TimeoutError, pickle.PickleError) as exc:
            self._stop(kill=True)
            self._unavailable = f"{type(exc).__name__}: {exc}"
            log.warning("No loader process could be started (%s); files are read in-process, without a "
                        "time or memory limit", self._unavailable)
            return False
        return True

    def _stop(self, *, kill: bool) -> int | None:
        """Record the child's peak memory, end it (politely unless `kill`) and reap it; its exit code."""
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        self.peak_rss_mb = max(self.peak_rss_mb, _peak_kb(proc.pid) / 1024)
        if kill:
            proc.kill()
        else:
            proc.stdin.close()  # EOF: the child leaves its loop and exits
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None and not pipe.closed:
                pipe.close()
        return proc.returncode

    def close(self) -> None:
        """Stop the child; the next `load` starts a new one."""
        with self._lock:
            self._stop(kill=False)


_SHARED: LoaderProcess | None = None
_SHARED_LOCK = threading.Lock()


def shared_loader() -> LoaderProcess:
    """The process-wide loader child, started on the first file that needs it and stopped at exit."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None:
            _SHARED = LoaderProcess()
            atexit.register(_SHARED.close)
        return _SHARED


def _describe(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name}" + (", probably out of memory" if name == "SIGKILL" else "")
    return f"exit code {code}"


# --- the pipe protocol: 8-byte length, then a pickle ------------------------------------------

def _send(stream: BinaryIO, obj: Any) -> None:
    payload = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(payload)) + payload)
    stream.flush()


def _recv(fd: int, deadline: float) -> Any:
    """One message from `fd`; TimeoutError past `deadline` (time.monotonic), EOFError if the writer is gone."""
    def read(n: int) -> bytes:
        chunks, left = [], n
        while left:
            wait = deadline - time.monotonic()
            if wait <= 0 or not select.select([fd], [], [], wait)[0]:
                raise TimeoutError
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                raise EOFError
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    (size,) = _HEADER.unpack(read(_HEADER.size))
    return pickle.loads(read(size))


# --- the child -----------------------------------------------------------------------------------

def serve() -> None:
    """The child's loop: read a request from stdin, load it under the memory cap, answer on stdout."""
    requests, answers = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a library's stray print must not corrupt the pipe
    with contextlib.suppress(OSError):
        os.nice(10)
    _send(answers, ("ready", os.getpid(), 0, 0))
    while True:
        try:
            (size,) = _HEADER.unpack(_read_exact(requests, _HEADER.size))
            path, data, limits = pickle.loads(_read_exact(requests, size))
        except EOFError:
            return
        kind, value = _load_capped(Path(path), data, limits)
        del data
        _send(answers, (kind, value, _rss_kb(), _peak_kb("self")))
        if kind == "memory":
            return  # a heap that hit the cap may be left in pieces: the parent starts a fresh child


def _load_capped(path: Path, data: bytes, limits: LoadLimits) -> tuple[str, Any]:
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = _vm_size() + limits.max_file_memory_mb * 1024 * 1024
    try:
        resource.setrlimit(resource.RLIMIT_AS, (cap if hard == resource.RLIM_INFINITY else min(cap, hard), hard))
        try:
            return "ok", load_document(path, data, limits)
        finally:
            resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    except MemoryError:
        return "memory", ""
    except LoadError as exc:
        return "error", str(exc)
    except RecursionError:
        return "error", "too deeply nested to read"
    except Exception as exc:  # noqa: BLE001 - every failure is a reason in the report, never a dead child
        return "error", f"{type(exc).__name__}: {exc}"


def _read_exact(stream: BinaryIO, n: int) -> bytes:
    data = stream.read(n)
    if len(data) < n:
        raise EOFError
    return data


def _vm_size() -> int:
    """This process's address-space size in bytes (what RLIMIT_AS counts)."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _peak_kb(pid: int | str) -> int:
    """Peak resident memory of this process's own image (VmHWM), 0 if gone. Not ru_maxrss: Linux
    carries the parent's peak across fork and exec into it, so a child of a 1 GB server reads 1 GB."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            return next((int(line.split()[1]) for line in fh if line.startswith("VmHWM:")), 0)
    except OSError:
        return 0


def _rss_kb() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
