"""Running untrusted (generated) code: never in the assistant's process, contained by the kernel.

The boundary is bubblewrap (`bwrap`): the code runs in a separate process inside new user, mount,
pid, network, IPC and UTS namespaces, as an unprivileged uid, with no capabilities:
- the filesystem it sees is /usr (and the /bin, /lib* links or directories), the interpreter's
  prefix and /etc/ld.so.cache, all read-only, plus a fresh scratch directory (at /sandbox, also at
  /tmp) that is the only writable place; nothing else of the host exists in there (no /etc/shadow,
  /root, /home, workspaces, the repository);
- its own /proc and /dev, no network but its own loopback, a clean environment;
- its own pid namespace: when its first process ends, or on timeout, the kernel kills every process
  in it, however they were started (setsid, double fork);
- resource limits: address space, CPU seconds, file size, no core dumps, and a process count.

Which outer uid runs it matters, and is chosen here rather than left to bwrap's defaults. Run as
root, `bwrap --unshare-user --uid 65534` maps the sandbox user to host uid 0: RLIMIT_NPROC then
does not apply (the kernel exempts uid 0) and bwrap leaves /proc/sys writable, global sysctls such
as kernel.core_pattern included. So a root server starts bwrap as a fresh unprivileged uid per run
(uids from DYNAMIC_UID_BASE on, like systemd's DynamicUser), which also makes the process limit
real; a non-root server runs it as itself.

When isolation is not possible here (no bwrap, user namespaces refused, no interpreter an
unprivileged uid can run), `run_python` refuses to run the code and says why; `sandbox_available()`
gives the same verdict up front. It never falls back to running code unconfined.

`run_python(code, tests)` runs `code`, then `tests` in the same module; it passes when the process
exits 0 within the time limit.
"""
from __future__ import annotations

import functools
import json
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

OUTPUT_LIMIT = 64 * 1024  # bytes of stdout/stderr kept
FILE_LIMIT = 16 * 1024 * 1024  # bytes any file the code writes may reach
PROCESS_LIMIT = 64  # processes (threads count too) the code may have at once; bounds fork bombs
SANDBOX_DIR = "/sandbox"  # where the scratch directory appears inside
SANDBOX_UID = 65534  # the uid and gid the code sees (nobody)
DYNAMIC_UID_BASE = 0x70000000  # a root server runs each sandbox as a fresh uid in [base, base + 2**20)
INSTALL_HINT = "install it with `apt-get install bubblewrap`"


@dataclass
class SandboxResult:
    passed: bool
    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool
    error: str = ""  # one line: why it did not pass ("timed out after 2s", "AssertionError: ...")
    seconds: float = 0.0
    network_isolated: bool = False  # True when the code ran (in the sandbox, which has no network)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Setup:
    """How code runs on this machine, found once by `_setup()`."""
    bwrap: str
    python: str  # the interpreter, a path that exists inside the sandbox too
    binds: tuple[str, ...]  # host directories bound read-only at the same path
    drop_uid: bool  # root: start bwrap as a fresh unprivileged uid
    extra_flags: tuple[str, ...]  # flags this bwrap version supports beyond the baseline


def sandbox_available() -> tuple[bool, str]:
    """(True, what runs the code) or (False, why code cannot be run safely here)."""
    setup, why = _setup()
    return setup is not None, why


@functools.lru_cache(maxsize=1)
def _setup() -> tuple[_Setup | None, str]:
    """Find bwrap and an interpreter, then prove the sandbox works by running it once."""
    if not sys.platform.startswith("linux"):
        return None, f"code sandbox unavailable: it needs Linux namespaces (this is {sys.platform})"
    tool = shutil.which("bwrap")
    if tool is None:
        return None, f"code sandbox unavailable: bubblewrap (bwrap) not found; {INSTALL_HINT}"
    root = os.geteuid() == 0
    try:
        helptext = subprocess.run([tool, "--help"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"code sandbox unavailable: cannot run {tool} ({exc})"
    # --disable-userns (bwrap >= 0.8): the code cannot make user namespaces of its own (kernel attack surface)
    extra = ("--disable-userns",) if "--disable-userns" in helptext else ()
    candidates = _interpreters(unprivileged=root)
    if not candidates:
        return None, ("code sandbox unavailable: no Python interpreter that an unprivileged user can run "
                      f"({sys.base_prefix} is not readable by others); install python3 from the system "
                      "packages or put Python in a world-readable prefix")
    failure = ""
    for python, binds in candidates:
        setup = _Setup(tool, python, binds, root, extra)
        probe = _run(setup, "import sys\nprint('ok', sys.version.split()[0])\n", timeout_s=20, memory_mb=512)
        if probe.passed and probe.stdout.startswith("ok"):
            version = probe.stdout.split()[1]
            who = "a fresh unprivileged uid per run" if root else f"uid {os.getuid()}"
            return setup, f"bubblewrap sandbox: {python} (Python {version}), run as {who}"
        failure = (probe.error or probe.stderr.strip() or "no output")[:300]
    return None, ("code sandbox unavailable: bubblewrap cannot set up its namespaces here "
                  f"({failure}); it needs user namespaces (sysctl kernel.unprivileged_userns_clone=1, "
                  "user.max_user_namespaces > 0, and no container seccomp profile that blocks them)")


def _interpreters(unprivileged: bool) -> list[tuple[str, tuple[str, ...]]]:
    """Interpreters to try, best first, each with the host directories it needs bound.

    The base interpreter of this process comes first (the venv is left out: generated code gets the
    standard library, not the server's packages or paths into the repository). When the sandbox runs
    as another, unprivileged uid, an interpreter under a private directory (pyenv under /root) is
    unreachable, so the system's python3 of the same version, or any python3 under /usr, follows.
    """
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    base = Path(sys.base_prefix)
    own = base / "bin" / f"python{version}"
    own_path = str(own) if own.exists() else os.path.realpath(sys.executable)
    found = [(own_path, (os.path.realpath(base),))]
    for name in (f"python{version}", "python3"):
        for folder in ("/usr/local/bin", "/usr/bin"):
            path = os.path.join(folder, name)
            if os.path.exists(path):
                found.append((path, ()))  # /usr is bound anyway
    seen, usable = set(), []
    for python, binds in found:
        binds = tuple(b for b in binds if b != "/usr" and not b.startswith("/usr/"))
        if python in seen or (unprivileged and not all(map(_world_reachable, (python, *binds)))):
            continue
        seen.add(python)
        usable.append((python, binds))
    return usable


def _world_reachable(path: str) -> bool:
    """Every directory on the way is searchable by others, and the target readable or searchable."""
    real = Path(os.path.realpath(path))
    try:
        for parent in reversed(real.parents):
            if not os.stat(parent).st_mode & stat.S_IXOTH:
                return False
        return bool(os.stat(real).st_mode & (stat.S_IXOTH | stat.S_IROTH))
    except OSError:
        return False


def run_python(code: str, tests: str = "", *, timeout_s: float = 10, memory_mb: int = 512) -> SandboxResult:
    """Run `code` then `tests` in the sandbox; passed = exit status 0 in time. Refuses without a sandbox."""
    if not isinstance(code, str) or not isinstance(tests, str):
        raise TypeError("code and tests must be strings")
    if timeout_s <= 0 or memory_mb < 64:
        raise ValueError("timeout_s must be > 0 and memory_mb >= 64")
    setup, why = _setup()
    if setup is None:
        return SandboxResult(passed=False, returncode=None, stdout="", stderr="", timed_out=False, error=why)
    program = code if not tests.strip() else f"{code}\n\n# --- tests ---\n{tests}\n"
    return _run(setup, program, timeout_s=timeout_s, memory_mb=memory_mb)


def _run(setup: _Setup, program: str, *, timeout_s: float, memory_mb: int) -> SandboxResult:
    scratch = Path(tempfile.mkdtemp(prefix="assistant-sandbox-"))
    outdir = Path(tempfile.mkdtemp(prefix="assistant-sandbox-out-"))
    uid = random.SystemRandom().randrange(DYNAMIC_UID_BASE, DYNAMIC_UID_BASE + 2**20) if setup.drop_uid else None
    try:
        (scratch / "main.py").write_text(program, encoding="utf-8")
        if uid is not None:
            os.chown(scratch, uid, uid)
            os.chown(scratch / "main.py", uid, uid)
        # A fresh uid has no other processes, so the limit is exact; otherwise the user's own count.
        nproc = PROCESS_LIMIT if uid is not None else _user_process_count() + PROCESS_LIMIT
        info_r, info_w = os.pipe()
        start = time.perf_counter()
        try:
            with open(outdir / "stdout", "wb") as out, open(outdir / "stderr", "wb") as err:
                try:
                    proc = subprocess.Popen(
                        _command(setup, scratch, info_w), cwd="/", env={}, stdin=subprocess.DEVNULL,
                        stdout=out, stderr=err, pass_fds=(info_w,), start_new_session=True,
                        user=uid, group=uid, extra_groups=[] if uid is not None else None,
                        preexec_fn=_limits(memory_mb, int(timeout_s) + 1, nproc))
                except OSError as exc:  # bwrap missing or not executable by the sandbox uid
                    return SandboxResult(passed=False, returncode=None, stdout="", stderr="", timed_out=False,
                                         error=f"code sandbox failed to start: {exc}")
                os.close(info_w)
                info_w = -1
                timed_out = False
                try:
                    proc.wait(timeout=timeout_s)
                except subprocess.TimeoutExpired:
                    timed_out = True
                    _kill(proc, _child_pid(info_r))
        finally:
            if info_w != -1:
                os.close(info_w)
            os.close(info_r)
        seconds = time.perf_counter() - start
        stdout, stderr = _read(outdir / "stdout"), _read(outdir / "stderr")
        rc = proc.returncode
        passed = rc == 0 and not timed_out
        return SandboxResult(passed=passed, returncode=rc, stdout=stdout, stderr=stderr, timed_out=timed_out,
                             error="" if passed else _why(rc, stderr, timed_out, timeout_s, memory_mb),
                             seconds=round(seconds, 3), network_isolated=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(outdir, ignore_errors=True)


def _command(setup: _Setup, scratch: Path, info_fd: int) -> list[str]:
    cmd = [setup.bwrap,
           "--unshare-all", "--unshare-user", *setup.extra_flags,  # user, mount, pid, net, ipc, uts, cgroup
           "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
           "--die-with-parent", "--new-session", "--cap-drop", "ALL",
           "--info-fd", str(info_fd),
           "--clearenv", "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin", "--setenv", "HOME", SANDBOX_DIR,
           "--setenv", "TMPDIR", SANDBOX_DIR, "--setenv", "LANG", "C.UTF-8", "--setenv", "PYTHONHASHSEED", "0",
           "--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):  # merged /usr: /bin -> usr/bin
            cmd += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            cmd += ["--ro-bind", top, top]
    for path in ("/etc/ld.so.cache", "/etc/alternatives"):
        cmd += ["--ro-bind-try", path, path]
    for path in setup.binds:
        cmd += ["--ro-bind", path, path]
    cmd += ["--proc", "/proc", "--dev", "/dev",
            "--bind", str(scratch), SANDBOX_DIR, "--bind", str(scratch), "/tmp", "--chdir", SANDBOX_DIR,
            "--remount-ro", "/",
            "--", setup.python, "-I", "-B", "-X", "utf8", f"{SANDBOX_DIR}/main.py"]
    return cmd


def _limits(memory_mb: int, cpu_s: int, nproc: int):
    """preexec_fn: applied in the child between fork and exec (after the uid switch); bwrap and
    everything it starts inherit them."""
    import resource  # here, not in apply(): after the uid switch the module may no longer be readable

    def apply() -> None:
        def setlimit(kind: int, value: int) -> None:
            try:
                _, hard = resource.getrlimit(kind)
                if hard != resource.RLIM_INFINITY:
                    value = min(value, hard)
                resource.setrlimit(kind, (value, value))
            except (ValueError, OSError):
                pass  # not permitted here: the namespaces and the timeout still hold

        setlimit(resource.RLIMIT_AS, memory_mb * 1024 * 1024)
        setlimit(resource.RLIMIT_CPU, cpu_s)
        setlimit(resource.RLIMIT_FSIZE, FILE_LIMIT)
        setlimit(resource.RLIMIT_CORE, 0)
        setlimit(resource.RLIMIT_NPROC, nproc)

    return apply


def _user_process_count() -> int:
    uid, count = os.getuid(), 0
    try:
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    count += entry.stat().st_uid == uid
                except OSError:
                    pass
    except OSError:
        pass
    return count


def _child_pid(info_r: int) -> int | None:
    """The host pid of the sandbox's pid 1, from what bwrap wrote to --info-fd."""
    os.set_blocking(info_r, False)
    try:
        return int(json.loads(os.read(info_r, 65536) or b"{}").get("child-pid", 0)) or None
    except (OSError, ValueError, TypeError):
        return None


def _kill(proc: subprocess.Popen, child_pid: int | None) -> None:
    """Kill bwrap and the sandbox's pid 1 (same process group); the kernel then kills every process
    in its pid namespace. Wait until pid 1 is gone, which is when the rest are gone too."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.wait()
    if child_pid is None:
        return
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{child_pid}/stat", "rb") as fh:
                state = fh.read().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            return
        if state in (b"Z", b"X"):
            return
        time.sleep(0.01)


def _read(path: Path) -> str:
    with open(path, "rb") as fh:
        data = fh.read(OUTPUT_LIMIT + 1)
    text = data[:OUTPUT_LIMIT].decode("utf-8", errors="replace")
    return text + ("\n[output truncated]" if len(data) > OUTPUT_LIMIT else "")


def _why(rc: int | None, stderr: str, timed_out: bool, timeout_s: float, memory_mb: int) -> str:
    if timed_out:
        return f"timed out after {timeout_s:g}s"
    # bwrap reports a command killed by signal N as exit status 128 + N
    sig = -rc if rc is not None and rc < 0 else rc - 128 if rc is not None and rc > 128 else 0
    if sig in signal.Signals._value2member_map_:
        if sig == signal.SIGXCPU:
            return "CPU time limit exceeded"
        if sig == signal.SIGXFSZ:
            return f"file size limit ({FILE_LIMIT // (1024 * 1024)} MB) exceeded"
        return f"killed by {signal.Signals(sig).name}"
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    last = lines[-1].strip() if lines else f"exit status {rc}"
    if last.startswith("MemoryError"):
        return f"memory limit ({memory_mb} MB) exceeded"
    return last[:300]
