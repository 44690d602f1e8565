"""Attacks on the code sandbox: those that got out of the old one (a child process with rlimits and
an in-process audit hook), and a few more. None may get out now.

Every attack runs real code through `run_python` and then checks the HOST: the marker file is not
there, the secret is not in the output, no process is left. Skipped only where the machine cannot
provide the sandbox (then `run_python` must refuse, which the last tests check everywhere).
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import tempfile
import threading
import time
import uuid
import warnings
from pathlib import Path

import pytest

from assistant import sandbox
from assistant.sandbox import PROCESS_LIMIT, run_python, sandbox_available

AVAILABLE, WHY = sandbox_available()
if not AVAILABLE:
    warnings.warn(f"CODE SANDBOX ATTACK TESTS SKIPPED: {WHY}", stacklevel=1)
needs_sandbox = pytest.mark.skipif(not AVAILABLE, reason=f"CODE SANDBOX UNAVAILABLE, attack tests not run: {WHY}")

REPO = Path(__file__).resolve().parents[1]
SENTINEL = "attack-suite-sentinel-3f9c1a"  # in this file only: reading the file would leak it


@pytest.fixture
def workspace(tmp_path: Path) -> tuple[Path, str]:
    """A stand-in for another workspace: config and log with a secret in them."""
    secret = f"secret-{uuid.uuid4().hex}"
    ws = tmp_path / "workspace"
    (ws / "index").mkdir(parents=True)
    (ws / "config.toml").write_text(f'api_key = "{secret}"\n')
    (ws / "log.db").write_bytes(b"SQLite format 3\x00" + secret.encode())
    (ws / "index" / "chunks.jsonl").write_text(f'{{"text": "{secret}"}}\n')
    return ws, secret


def _shell(marker: Path, ws: Path) -> str:
    """What the attacker's /bin/sh did: write outside, read the workspace."""
    return f"mkdir -p {marker.parent} && echo pwned > {marker}; cat {ws}/config.toml {ws}/log.db; id"


def _processes_with(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def _kill_all(pids: list[int]) -> None:
    for pid in pids:  # only if the test failed: do not leave the attacker's processes running
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def _assert_no_survivors(marker: str) -> None:
    deadline = time.monotonic() + 3
    while (left := _processes_with(marker)) and time.monotonic() < deadline:
        time.sleep(0.05)
    _kill_all(left)
    assert not left, f"{len(left)} sandboxed processes survived the run"


def _assert_contained(res, marker: Path, secret: str) -> None:
    assert not marker.exists(), f"the sandboxed code wrote {marker} on the host"
    assert secret not in res.stdout and secret not in res.stderr, "the sandboxed code read the workspace"


@needs_sandbox
def test_fork_exec_without_audit_event(tmp_path, workspace):
    ws, secret = workspace
    marker = tmp_path / "outside" / "fork_exec.txt"
    code = f"""
import _posixsubprocess, os
r, w = os.pipe()
common = ([b"/bin/sh"], True, (), None, None, -1, -1, -1, -1, -1, -1, r, w,
          True, False, -1, None, None, None, -1, None)
args = [b"/bin/sh", b"-c", {_shell(marker, ws).encode()!r}]
try:
    pid = _posixsubprocess.fork_exec(args, *common, False)   # 3.11, 3.12
except TypeError:
    pid = _posixsubprocess.fork_exec(args, *common)          # no allow_vfork
os.close(w)
os.read(r, 100)
print("shell exited", os.waitpid(pid, 0))
"""
    res = run_python(code)
    assert "shell exited" in res.stdout, res  # the shell ran, inside the sandbox...
    assert "uid=65534" in res.stdout  # ...as nobody
    _assert_contained(res, marker, secret)


@needs_sandbox
@pytest.mark.parametrize("how", ["os.system", "subprocess"])
def test_shell_cannot_write_outside_or_read_workspace(tmp_path, workspace, how):
    ws, secret = workspace
    marker = tmp_path / "outside" / f"{how}.txt"
    line = _shell(marker, ws)
    code = (f"import os\nos.system({line!r})\n" if how == "os.system" else
            f"import subprocess\nsubprocess.run(['/bin/sh', '-c', {line!r}])\n")
    res = run_python(code)
    _assert_contained(res, marker, secret)


@needs_sandbox
def test_replacing_the_write_check_does_not_help(tmp_path):
    marker = tmp_path / "main_patch.txt"
    repo_marker = REPO / f".sandbox-escape-{uuid.uuid4().hex}"
    code = f"""
import sys
main = sys.modules['__main__']
main._inside = lambda path: True      # the old in-process check, replaced
for target in ({str(marker)!r}, {str(repo_marker)!r}, '/usr/escape.txt', '/etc/escape.txt', '/escape.txt'):
    try:
        open(target, 'w').write('pwned')
        print('WROTE', target)
    except OSError as exc:
        print('refused', target, type(exc).__name__)
"""
    res = run_python(code)
    try:
        assert "WROTE" not in res.stdout, res.stdout
        assert not marker.exists() and not repo_marker.exists()
    finally:
        repo_marker.unlink(missing_ok=True)


@needs_sandbox
def test_cannot_read_host_secrets(tmp_path, workspace):
    ws, secret = workspace
    probes = [ws / "config.toml", ws / "log.db", ws / "index" / "chunks.jsonl", Path("/etc/shadow"),
              Path(__file__)]
    host_texts = [secret, SENTINEL]  # this very file's text must not leak either
    root_secret = None
    if os.access("/root", os.W_OK):
        root_dir = Path(os.path.realpath("/root")) / f".sandbox-test-{uuid.uuid4().hex}"
        root_dir.mkdir()
        root_secret = f"rootsecret-{uuid.uuid4().hex}"
        (root_dir / "secret.txt").write_text(root_secret)
        probes.append(root_dir / "secret.txt")
        host_texts.append(root_secret)
    try:
        shadow = Path("/etc/shadow").read_text().splitlines()[0]
        host_texts.append(shadow)
    except (OSError, IndexError):
        pass
    code = f"""
import os
for path in {[str(p) for p in probes]!r}:
    try:
        print(open(path, errors='replace').read())
    except OSError as exc:
        print('refused', path, type(exc).__name__)
for folder in ('/root', '/home', {str(ws.parent)!r}, {str(REPO)!r}, '/work'):
    try:
        print(folder, os.listdir(folder))
    except OSError as exc:
        print('refused', folder, type(exc).__name__)
"""
    try:
        res = run_python(code)
        assert res.stdout.count("refused") >= len(probes), res.stdout
        for text in host_texts:
            assert text not in res.stdout and text not in res.stderr, f"leaked: {text[:40]}"
    finally:
        if root_secret:
            (root_dir / "secret.txt").unlink()
            root_dir.rmdir()


@needs_sandbox
def test_environment_is_clean(monkeypatch):
    secret = f"envsecret-{uuid.uuid4().hex}"
    monkeypatch.setenv("ASSISTANT_TEST_API_KEY", secret)
    res = run_python("import os\nprint(dict(os.environ))\n"
                     "try:\n    print(open('/proc/1/environ').read())\nexcept OSError:\n    pass\n")
    assert res.passed and secret not in res.stdout


@needs_sandbox
def test_setsid_children_die_on_timeout():
    tag = f"sbxsurvivor{uuid.uuid4().hex[:12]}"
    code = f"""
import subprocess, time
for _ in range(20):
    subprocess.Popen(['setsid', 'sh', '-c', 'sleep 600; : {tag}'], start_new_session=True)
print('started', flush=True)
time.sleep(600)
"""
    t0 = time.perf_counter()
    res = run_python(code, timeout_s=3)
    assert res.timed_out and "started" in res.stdout, res
    assert time.perf_counter() - t0 < 15
    _assert_no_survivors(tag)


@needs_sandbox
def test_background_children_die_when_the_code_ends():
    tag = f"sbxorphan{uuid.uuid4().hex[:12]}"
    code = f"""
import os, subprocess
subprocess.Popen(['setsid', 'sh', '-c', 'sleep 600; : {tag}'], start_new_session=True)
if os.fork() == 0:            # double fork: the grandchild is nobody's child
    os.setsid()
    if os.fork() == 0:
        os.execv('/bin/sh', ['sh', '-c', 'sleep 600; : {tag}'])
    os._exit(0)
print('leaving them behind')
"""
    res = run_python(code)
    assert res.passed, res
    _assert_no_survivors(tag)


@needs_sandbox
def test_the_process_count_is_bounded_and_cleaned_up():
    tag = f"sbxbomb{uuid.uuid4().hex[:12]}"
    # First a bounded flood (500 sleepers): proves the cap without risking the machine if it fails.
    code = f"""
import os
started = 0
for _ in range(500):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        os.execv('/bin/sh', ['sh', '-c', 'sleep 600; : {tag}'])
    started += 1
print('started', started)
"""
    res = run_python(code, timeout_s=5)
    started = int(res.stdout.split()[-1])
    assert started < PROCESS_LIMIT, f"{started} processes started; the limit is {PROCESS_LIMIT}"
    _assert_no_survivors(tag)
    # Then the real thing: an exponential fork bomb ends within the time limit, leaving nothing.
    t0 = time.perf_counter()
    res = run_python(f"import os, time\n# {tag}\nwhile True:\n    try:\n        os.fork()\n"
                     "    except OSError:\n        time.sleep(0.01)\n", timeout_s=3)
    assert not res.passed and res.timed_out
    assert time.perf_counter() - t0 < 15


@needs_sandbox
def test_runs_as_an_unprivileged_uid_on_the_host():
    """Root must not be root in there: bwrap's own mapping would be host uid 0 (RLIMIT_NPROC exempt,
    global sysctls writable). Look at the sandboxed process from the host side."""
    tag = f"sbxuid{uuid.uuid4().hex[:12]}"
    code = f"import subprocess, time\nsubprocess.Popen(['sh', '-c', 'sleep 30; : {tag}'])\ntime.sleep(30)\n"
    result: list = []
    thread = threading.Thread(target=lambda: result.append(run_python(code, timeout_s=4)))
    thread.start()
    uids = []
    deadline = time.monotonic() + 3.5
    while not uids and time.monotonic() < deadline:
        for pid in _processes_with(tag):
            try:
                status = Path(f"/proc/{pid}/status").read_text()
                uids.append(int(next(ln for ln in status.splitlines() if ln.startswith("Uid:")).split()[1]))
            except (OSError, StopIteration):
                pass
        time.sleep(0.05)
    thread.join()
    _assert_no_survivors(tag)
    assert uids, "did not see the sandboxed process from the host"
    assert all(u != 0 for u in uids), uids
    if os.geteuid() != 0:
        assert all(u == os.geteuid() for u in uids)


@needs_sandbox
def test_no_capabilities_and_no_sysctl_writes():
    code = """
import os
status = open('/proc/self/status').read()
print([ln for ln in status.splitlines() if ln.startswith('CapEff')])
for path in ('/proc/sys/kernel/core_pattern', '/proc/sys/kernel/printk_ratelimit', '/proc/sysrq-trigger'):
    try:
        os.close(os.open(path, os.O_WRONLY))   # opening is enough to prove it; nothing is written
        print('WRITABLE', path)
    except OSError as exc:
        print('refused', path, type(exc).__name__)
"""
    res = run_python(code)
    assert res.passed, res
    assert "CapEff:\\t0000000000000000" in res.stdout
    assert "WRITABLE" not in res.stdout, res.stdout


@needs_sandbox
def test_no_network_to_host_loopback():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(3)
    port = server.getsockname()[1]
    accepted: list[object] = []

    def accept():
        try:
            accepted.append(server.accept())
        except OSError:
            pass

    thread = threading.Thread(target=accept)
    thread.start()
    res = run_python(f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
                     "s.sendall(b'hello')\n")
    thread.join()
    server.close()
    assert not res.passed and ("ConnectionRefused" in res.stderr or "unreachable" in res.stderr), res
    assert not accepted, "the sandboxed code reached a socket on the host"


@needs_sandbox
def test_no_abstract_unix_socket_to_host():
    name = f"\0assistant-sandbox-test-{uuid.uuid4().hex}"
    server = socket.socket(socket.AF_UNIX)
    server.bind(name)
    server.listen(1)
    try:
        res = run_python(f"import socket\ns = socket.socket(socket.AF_UNIX)\ns.connect({name!r})\n")
    finally:
        server.close()
    assert not res.passed and "ConnectionRefused" in res.stderr, res


@needs_sandbox
def test_scratch_is_writable_and_normal_code_passes():
    code = ("import os, tempfile\n"
            "def mean(xs):\n    return sum(xs) / len(xs)\n"
            "open('notes.txt', 'w').write('x')\n"
            "with tempfile.NamedTemporaryFile('w', delete=False) as fh:\n    fh.write('y')\n")
    res = run_python(code, "assert mean([1, 2, 3]) == 2\nassert open('notes.txt').read() == 'x'\nprint('ok')")
    assert res.passed and res.stdout.strip() == "ok", res
    assert res.network_isolated


@needs_sandbox
def test_a_failing_assert_fails():
    res = run_python("def mean(xs):\n    return sum(xs)\n", "assert mean([1, 2, 3]) == 2, 'mean is wrong'")
    assert not res.passed and "AssertionError: mean is wrong" in res.error


# --- without a sandbox: refuse, never run unconfined (these run everywhere) ---


@pytest.fixture
def fresh_setup():
    sandbox._setup.cache_clear()
    yield
    sandbox._setup.cache_clear()


def _refused(tmp_path: Path):
    marker = tmp_path / "ran.txt"
    res = run_python(f"open({str(marker)!r}, 'w').write('ran unconfined')\n")
    assert not res.passed and res.returncode is None
    assert not marker.exists(), "the code ran without a sandbox"
    ok, why = sandbox_available()
    assert not ok and res.error == why
    return res


def test_refuses_without_bwrap(tmp_path, monkeypatch, fresh_setup):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    res = _refused(tmp_path)
    assert "bubblewrap (bwrap) not found" in res.error and "apt-get install bubblewrap" in res.error


def test_refuses_when_namespaces_are_refused(tmp_path, monkeypatch, fresh_setup):
    # a bwrap that fails the way a kernel without user namespaces makes it fail; in a folder the
    # sandbox's unprivileged uid can reach (pytest's tmp_path is private to root)
    folder = Path(tempfile.mkdtemp(prefix="fake-bwrap-"))
    folder.chmod(0o755)
    fake = folder / "bwrap"
    fake.write_text("#!/bin/sh\n[ \"$1\" = --help ] && exit 0\n"
                    "echo 'bwrap: No permissions to creating new namespace, likely because the kernel "
                    "does not allow non-privileged user namespaces.' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}:/usr/bin:/bin")
    try:
        res = _refused(tmp_path)
    finally:
        shutil.rmtree(folder)
    assert "user namespaces" in res.error and "non-privileged user namespaces" in res.error
