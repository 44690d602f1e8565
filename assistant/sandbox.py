"""Running untrusted (generated) code: never in the assistant's process, always fenced in.

Layers, each covering what the others miss:
- a separate `python -I -B` process in a fresh scratch directory with a minimal environment;
- its own process group, killed whole on timeout;
- resource limits: address space, CPU seconds, file size, process count, no core dumps;
- a network namespace of its own (`unshare -n`) when the kernel allows it, so there is no network;
- inside the child, an audit hook installed before the code runs that refuses socket connects and
  binds, subprocesses, and file writes/deletes outside the scratch directory. (Audit hooks are not a
  security boundary on their own, which is why they are only one layer.)

`run_python(code, tests)` runs `code`, then `tests` in the same namespace; it passes when the
process exits 0 within the time limit.
"""
from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

OUTPUT_LIMIT = 64 * 1024  # bytes of stdout/stderr kept
FILE_LIMIT = 16 * 1024 * 1024  # bytes any file the code writes may reach


@dataclass
class SandboxResult:
    passed: bool
    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool
    error: str = ""  # one line: why it did not pass ("timed out after 2s", "AssertionError: ...")
    seconds: float = 0.0
    network_isolated: bool = False  # True when the child ran in its own network namespace

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# Runs inside the child before the untrusted code. Kept free of imports that the code could
# have tampered with: it is the first thing the interpreter executes.
_RUNNER = r'''
import os, sys
_SCRATCH = os.path.realpath(os.path.dirname(os.path.abspath(__file__)))
_ALLOWED = (_SCRATCH + os.sep, "/dev/null")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

def _inside(path):
    try:
        if isinstance(path, int):
            return True  # an already-open descriptor
        real = os.path.realpath(os.fsdecode(path))
    except Exception:
        return False
    return real == _SCRATCH or real.startswith(_ALLOWED) or real == "/dev/null"

def _hook(event, args):
    if event == "open":
        path, mode, flags = (list(args) + [None, None, None])[:3]
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or \
                  (isinstance(flags, int) and flags & _WRITE_FLAGS)
        if writing and path is not None and not _inside(path):
            raise PermissionError(f"sandbox: writing outside the scratch directory is not allowed: {path}")
    elif event in ("os.remove", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.truncate",
                   "os.utime", "shutil.rmtree", "os.link", "os.symlink"):
        if args and not _inside(args[0]):
            raise PermissionError(f"sandbox: {event} outside the scratch directory is not allowed")
    elif event in ("os.rename",):
        if not all(_inside(a) for a in args[:2]):
            raise PermissionError("sandbox: rename outside the scratch directory is not allowed")
    elif event in ("socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg",
                   "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr"):
        raise PermissionError(f"sandbox: network access is not allowed ({event})")
    elif event in ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
                   "os.fork", "os.forkpty", "pty.spawn", "ctypes.dlopen", "os.kill", "os.killpg"):
        raise PermissionError(f"sandbox: {event} is not allowed")

sys.addaudithook(_hook)
del _hook
_main = os.path.join(_SCRATCH, "main.py")
with open(_main, encoding="utf-8") as _fh:
    _source = _fh.read()
_globals = {"__name__": "__main__", "__file__": _main, "__builtins__": __builtins__}
exec(compile(_source, _main, "exec"), _globals)
'''


@functools.lru_cache(maxsize=1)
def network_namespace_prefix() -> tuple[str, ...]:
    """`unshare -n` (root) or `unshare -rn` (user namespaces) when either works here; else ()."""
    tool = shutil.which("unshare")
    if tool is None or not sys.platform.startswith("linux"):
        return ()
    for flags in (("-n",), ("-rn",)):
        try:
            ok = subprocess.run([tool, *flags, "true"], capture_output=True, timeout=5).returncode == 0
        except (OSError, subprocess.SubprocessError):
            ok = False
        if ok:
            return (tool, *flags)
    return ()


def _user_process_count() -> int:
    uid = os.getuid()
    count = 0
    try:
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    if entry.stat().st_uid == uid:
                        count += 1
                except OSError:
                    pass
    except OSError:
        return 0
    return count


def _limits(memory_mb: int, cpu_s: int, nproc: int):
    """preexec_fn: applied in the child between fork and exec."""

    def apply() -> None:
        import resource

        def setlimit(kind: int, value: int) -> None:
            try:
                _, hard = resource.getrlimit(kind)
                if hard != resource.RLIM_INFINITY:
                    value = min(value, hard)
                resource.setrlimit(kind, (value, value))
            except (ValueError, OSError):
                pass  # not permitted here: the other layers still hold

        setlimit(resource.RLIMIT_AS, memory_mb * 1024 * 1024)
        setlimit(resource.RLIMIT_CPU, cpu_s)
        setlimit(resource.RLIMIT_FSIZE, FILE_LIMIT)
        setlimit(resource.RLIMIT_CORE, 0)
        if nproc and hasattr(resource, "RLIMIT_NPROC"):
            setlimit(resource.RLIMIT_NPROC, nproc)

    return apply


def run_python(code: str, tests: str = "", *, timeout_s: float = 10, memory_mb: int = 512) -> SandboxResult:
    """Run `code` then `tests` in a fenced-in child process; passed = exit status 0 in time."""
    if not isinstance(code, str) or not isinstance(tests, str):
        raise TypeError("code and tests must be strings")
    if timeout_s <= 0 or memory_mb < 64:
        raise ValueError("timeout_s must be > 0 and memory_mb >= 64")
    scratch = Path(tempfile.mkdtemp(prefix="assistant-sandbox-"))
    outdir = Path(tempfile.mkdtemp(prefix="assistant-sandbox-out-"))
    try:
        program = code if not tests.strip() else f"{code}\n\n# --- tests ---\n{tests}\n"
        (scratch / "main.py").write_text(program, encoding="utf-8")
        (scratch / "_runner.py").write_text(_RUNNER, encoding="utf-8")
        prefix = network_namespace_prefix()
        cmd = [*prefix, sys.executable, "-I", "-B", "-X", "utf8", str(scratch / "_runner.py")]
        env = {"PATH": "/usr/bin:/bin", "HOME": str(scratch), "TMPDIR": str(scratch),
               "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"}
        nproc = _user_process_count() + 16 if os.getuid() != 0 else 0  # root ignores RLIMIT_NPROC anyway
        start = time.perf_counter()
        with open(outdir / "stdout", "wb") as out, open(outdir / "stderr", "wb") as err:
            proc = subprocess.Popen(cmd, cwd=scratch, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=err, start_new_session=True,
                                    preexec_fn=_limits(memory_mb, int(timeout_s) + 1, nproc))
            timed_out = False
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
                _kill_group(proc)
        seconds = time.perf_counter() - start
        stdout, stderr = _read(outdir / "stdout"), _read(outdir / "stderr")
        rc = proc.returncode
        passed = rc == 0 and not timed_out
        return SandboxResult(passed=passed, returncode=rc, stdout=stdout, stderr=stderr, timed_out=timed_out,
                             error="" if passed else _why(rc, stderr, timed_out, timeout_s, memory_mb),
                             seconds=round(seconds, 3), network_isolated=bool(prefix))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(outdir, ignore_errors=True)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.wait()


def _read(path: Path) -> str:
    with open(path, "rb") as fh:
        data = fh.read(OUTPUT_LIMIT + 1)
    text = data[:OUTPUT_LIMIT].decode("utf-8", errors="replace")
    return text + ("\n[output truncated]" if len(data) > OUTPUT_LIMIT else "")


def _why(rc: int | None, stderr: str, timed_out: bool, timeout_s: float, memory_mb: int) -> str:
    if timed_out:
        return f"timed out after {timeout_s:g}s"
    if rc is not None and rc < 0:
        sig = -rc
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        if sig == signal.SIGXCPU:
            return "CPU time limit exceeded"
        if sig == signal.SIGXFSZ:
            return f"file size limit ({FILE_LIMIT // (1024 * 1024)} MB) exceeded"
        return f"killed by {name}"
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    last = lines[-1].strip() if lines else f"exit status {rc}"
    if last.startswith("MemoryError"):
        return f"memory limit ({memory_mb} MB) exceeded"
    return last[:300]
