"""scripts/start_postgres.sh: safe under `eval`, idempotent, and never fails the run."""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

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
