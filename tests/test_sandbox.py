"""The sandbox runs generated code in a fenced-in child process: these are the fences."""
from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from assistant.sandbox import run_python


def test_passing_tests_pass():
    code = "def add(a, b):\n    return a + b\n"
    res = run_python(code, "assert add(2, 3) == 5\nprint('ok')")
    assert res.passed, res
    assert res.returncode == 0 and "ok" in res.stdout and not res.timed_out


def test_failing_tests_fail_with_the_reason():
    code = "def add(a, b):\n    return a - b\n"
    res = run_python(code, "assert add(2, 3) == 5, 'add is wrong'")
    assert not res.passed and res.returncode == 1
    assert "AssertionError: add is wrong" in res.error


def test_syntax_error_is_reported():
    res = run_python("def f(:\n  pass")
    assert not res.passed and "SyntaxError" in res.stderr


def test_infinite_loop_is_stopped():
    t0 = time.perf_counter()
    res = run_python("while True:\n    pass\n", timeout_s=1.5)
    assert res.timed_out and not res.passed
    assert time.perf_counter() - t0 < 10
    assert "timed out" in res.error or "CPU" in res.error


def test_child_processes_die_with_it(tmp_path):
    # even a subprocess started before the hook could stop it would belong to the killed group
    res = run_python("import time\ntime.sleep(30)\n", timeout_s=1)
    assert res.timed_out


def test_write_outside_scratch_fails(tmp_path: Path):
    target = tmp_path / "owned.txt"
    res = run_python(f"open({str(target)!r}, 'w').write('pwned')\n")
    assert not res.passed
    assert "PermissionError" in res.stderr
    assert not target.exists()


def test_write_inside_scratch_is_allowed():
    res = run_python("open('notes.txt', 'w').write('x')\nprint(open('notes.txt').read())")
    assert res.passed and res.stdout.strip() == "x"


def test_delete_outside_scratch_fails(tmp_path: Path):
    victim = tmp_path / "keep.txt"
    victim.write_text("precious")
    res = run_python(f"import os\nos.remove({str(victim)!r})\n")
    assert not res.passed and victim.read_text() == "precious"


def test_network_connection_fails():
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
    assert not res.passed
    assert not accepted, "the sandboxed code reached a socket on the host"


def test_subprocess_is_refused():
    res = run_python("import subprocess\nsubprocess.run(['echo', 'hi'])\n")
    assert not res.passed and "not allowed" in res.stderr


def test_memory_limit():
    res = run_python("x = bytearray(800 * 1024 * 1024)\n", memory_mb=256)
    assert not res.passed and ("memory" in res.error.lower() or "MemoryError" in res.stderr)


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError):
        run_python("print(1)", timeout_s=0)
