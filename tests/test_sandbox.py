"""The sandbox runs generated code in a separate, OS-contained process: its everyday behaviour.

The attacks (escapes tried against it) are in test_attacks_sandbox.py.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from assistant.sandbox import run_python, sandbox_available

AVAILABLE, WHY = sandbox_available()
needs_sandbox = pytest.mark.skipif(not AVAILABLE, reason=f"CODE SANDBOX UNAVAILABLE: {WHY}")


@needs_sandbox
def test_passing_tests_pass():
    code = "def add(a, b):\n    return a + b\n"
    res = run_python(code, "assert add(2, 3) == 5\nprint('ok')")
    assert res.passed, res
    assert res.returncode == 0 and "ok" in res.stdout and not res.timed_out


@needs_sandbox
def test_failing_tests_fail_with_the_reason():
    code = "def add(a, b):\n    return a - b\n"
    res = run_python(code, "assert add(2, 3) == 5, 'add is wrong'")
    assert not res.passed and res.returncode == 1
    assert "AssertionError: add is wrong" in res.error


@needs_sandbox
def test_syntax_error_is_reported():
    res = run_python("def f(:\n  pass")
    assert not res.passed and "SyntaxError" in res.stderr


@needs_sandbox
def test_infinite_loop_is_stopped():
    t0 = time.perf_counter()
    res = run_python("while True:\n    pass\n", timeout_s=1.5)
    assert res.timed_out and not res.passed
    assert time.perf_counter() - t0 < 10
    assert "timed out" in res.error or "CPU" in res.error


@needs_sandbox
def test_sleeping_code_is_stopped():
    t0 = time.perf_counter()
    res = run_python("import time\ntime.sleep(30)\n", timeout_s=1)
    assert res.timed_out and time.perf_counter() - t0 < 10


@needs_sandbox
def test_write_outside_scratch_fails(tmp_path: Path):
    target = tmp_path / "owned.txt"
    res = run_python(f"open({str(target)!r}, 'w').write('pwned')\n")
    assert not res.passed
    assert "FileNotFoundError" in res.stderr  # the host's folders do not exist in there
    assert not target.exists()


@needs_sandbox
def test_write_inside_scratch_is_allowed():
    res = run_python("open('notes.txt', 'w').write('x')\nprint(open('notes.txt').read())")
    assert res.passed and res.stdout.strip() == "x"


@needs_sandbox
def test_delete_outside_scratch_fails(tmp_path: Path):
    victim = tmp_path / "keep.txt"
    victim.write_text("precious")
    res = run_python(f"import os\nos.remove({str(victim)!r})\n")
    assert not res.passed and victim.read_text() == "precious"


@needs_sandbox
def test_subprocesses_run_inside_the_sandbox_too(tmp_path: Path):
    secret = tmp_path / "secret.txt"
    secret.write_text("do not read")
    res = run_python(f"import subprocess\nsubprocess.run(['sh', '-c', 'id -u; cat {secret}'])\n")
    assert res.passed and res.stdout.split() == ["65534"]
    assert "do not read" not in res.stdout + res.stderr


@needs_sandbox
def test_memory_limit():
    res = run_python("x = bytearray(800 * 1024 * 1024)\n", memory_mb=256)
    assert not res.passed and ("memory" in res.error.lower() or "MemoryError" in res.stderr)


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError):
        run_python("print(1)", timeout_s=0)
