"""Two ingest writers on one shared index: the writer lock makes them take turns, so neither loses the
other's documents, and a reader that stays open sees each commit without reopening.

Real processes, real models: the test holds the lock itself until both writers are waiting on it,
so they start from the same committed generation, the case an unlocked index would corrupt.
"""
from __future__ import annotations

import fcntl
import subprocess
import sys
import time
from pathlib import Path

from index.document_index import DocumentIndex
from index.store import current_generation

REPO = Path(__file__).resolve().parents[1]

WRITER = """
import sys
from assistant import Assistant
bot = Assistant.open(sys.argv[1])
bot.index.token_counter()  # load what can load before the lock, so the race is over the commit
print("ready", flush=True)
report = bot.ingest([sys.argv[2]], progress=False)
print("done", len(report.added), report.failed, flush=True)
"""


def _docs(folder: Path, topic: str, n: int) -> Path:
    folder.mkdir(parents=True)
    for i in range(n):
        (folder / f"{topic}-{i}.md").write_text(
            f"# {topic.title()} note {i}\n\nThe {topic} procedure number {i} needs step {i * 7} done first.\n")
    return folder


def test_two_writers_take_turns_and_both_commits_survive(tmp_path):
    workspace = tmp_path / "ws"
    first = _docs(tmp_path / "a", "rotation", 6)
    second = _docs(tmp_path / "b", "backup", 6)
    index_dir = workspace / "index"
    index_dir.mkdir(parents=True)
    with open(index_dir / ".lock", "a+") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)  # a third writer "ingesting": both must wait for it
        procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(workspace), str(d)], cwd=REPO,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for d in (first, second)]
        for p in procs:
            assert p.stdout.readline().strip() == "ready", p.stderr.read()
        time.sleep(1.0)  # both are now inside ingest, blocked on the lock with the same (empty) base
        assert current_generation(index_dir) is None
        reader = DocumentIndex.open(index_dir)  # a serving replica, opened before any commit
        assert reader.count == 0
        fcntl.flock(held.fileno(), fcntl.LOCK_UN)
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-2000:]
        assert out.splitlines()[-1] == "done 6 []", out
    assert current_generation(index_dir) == "gen-000002"  # two commits, one after the other
    names = {Path(d.path).name for d in reader.documents()}  # the open reader swapped without a restart
    assert names == {f"rotation-{i}.md" for i in range(6)} | {f"backup-{i}.md" for i in range(6)}
    hits = reader.search("backup procedure number 3", k=3)
    assert hits and Path(hits[0].path).name == "backup-3.md"
