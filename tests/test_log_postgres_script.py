"""scripts/start_postgres.sh: safe under `eval`, idempotent, and never fails the run."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "start_postgres.sh"
EXPORT = re.compile(r"^export TEST_POSTGRES_URL=postgresql\+psycopg://\S+:\S+@127\.0\.0\.1:\d+/\w+\n$")


def run(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "ASSISTANT_PG_NO_INSTALL": "1", **env})


def test_prints_only_an_export_line_or_nothing_and_exits_0():
    first, second = run(), run()
    assert first.returncode == second.returncode == 0
    for result in (first, second):
        assert result.stdout == "" or EXPORT.match(result.stdout), result.stdout
    assert first.stdout == second.stdout  # idempotent: the same server, the same URL
    if not first.stdout:
        assert "WARNING" in first.stderr


def test_a_failure_is_a_warning_not_an_error(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    result = run(ASSISTANT_PG_DIR=str(blocked / "pg"), ASSISTANT_PG_PORT="1")
    assert result.returncode == 0 and result.stdout == ""
    assert "WARNING" in result.stderr


def test_eval_exports_the_url():
    result = subprocess.run(["bash", "-c", f'eval "$(bash {SCRIPT} 2>/dev/null)"; echo "url=${{TEST_POSTGRES_URL:-}}"'],
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "ASSISTANT_PG_NO_INSTALL": "1", "TEST_POSTGRES_URL": ""})
    assert result.returncode == 0 and result.stdout.startswith("url=")


def _pg_ctl() -> str | None:
    """The newest Debian cluster's pg_ctl, else one on PATH."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return str(found[-1]) if found else shutil.which("pg_ctl")


def test_a_freshly_started_server_does_not_hold_the_callers_pipe(free_port):
    """CI runs `pg="$(bash start_postgres.sh)"`: the new server must not keep that pipe open,
    or the substitution (and the whole test run) waits forever."""
    pg_ctl = _pg_ctl()
    if pg_ctl is None:
        pytest.skip("no PostgreSQL server binaries on this machine")
    base = Path(tempfile.mkdtemp(prefix="assistant-pg-fresh-", dir="/tmp"))  # reachable by `postgres`
    env = {**os.environ, "ASSISTANT_PG_NO_INSTALL": "1", "ASSISTANT_PG_DIR": str(base),
           "ASSISTANT_PG_PORT": str(free_port)}
    proc = subprocess.Popen(["bash", "-c", f'pg="$(bash {SCRIPT})"; echo "got:$pg"'], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        raise AssertionError("the caller's $(...) did not return: the server holds its pipe")
    finally:
        stop = [pg_ctl, "-D", str(base / "data"), "stop", "-m", "immediate"]
        if os.geteuid() == 0:
            stop = ["runuser", "-u", "postgres", "--", *stop]
        subprocess.run(stop, capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)
    assert proc.returncode == 0
    assert EXPORT.match(out.removeprefix("got:")), (out, err)
