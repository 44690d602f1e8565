"""A process killed mid-ingest leaves the previous index loadable, consistent and searchable."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from index import DocumentIndex

REPO = Path(__file__).resolve().parents[1]

# The child ingests folder `new`; it pauses at a chosen point (printing a marker) so the parent can
# SIGKILL it there. "loading" = while reading files; "commit" = new generation fully written to disk,
# just before the pointer file is swapped (the narrowest window).
CHILD = textwrap.dedent("""
    import sys, time, os
    from pathlib import Path
    import index.store as store
    from index import DocumentIndex

    index_dir, folder, where = sys.argv[1], sys.argv[2], sys.argv[3]
    idx = DocumentIndex.open(Path(index_dir))

    def progress(message, done, total):
        print("PROGRESS", message, done, total, flush=True)
        if where == "loading" and message.startswith("Loading") and done >= 2:
            print("PAUSED", flush=True)
            time.sleep(600)

    real_replace = os.replace
    def slow_replace(src, dst):
        if where == "commit" and str(dst).endswith("CURRENT"):
            print("PAUSED", flush=True)
            time.sleep(600)
        return real_replace(src, dst)
    store.os.replace = slow_replace
    idx.ingest([Path(folder)], progress=progress)
    print("DONE", flush=True)
""")


def write_docs(folder: Path, word: str, n: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (folder / f"{word}-{i}.md").write_text(f"# {word.title()} {i}\n\nThe {word} number {i} is kept in drawer {i}.\n")


def run_child_until_paused(index_dir: Path, folder: Path, where: str) -> None:
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(index_dir), str(folder), where],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        deadline = time.monotonic() + 240
        for line in proc.stdout:
            if line.startswith("PAUSED"):
                break
            assert not line.startswith("DONE"), "the child finished before it could be killed"
            assert time.monotonic() < deadline, "child too slow"
        else:
            pytest.fail(f"child exited early with {proc.wait()}")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.parametrize("where", ["loading", "commit"])
def test_kill_mid_ingest_keeps_previous_index(tmp_path, where):
    index_dir = tmp_path / "index"
    write_docs(tmp_path / "old", "teapot", 3)
    write_docs(tmp_path / "new", "lantern", 6)
    idx = DocumentIndex.open(index_dir)
    idx.ingest([tmp_path / "old"], progress=False)
    before = idx.manifest["generation"]

    run_child_until_paused(index_dir, tmp_path / "new", where)

    if where == "commit":  # the killed child had written a complete generation the pointer never named
        assert any(p.name.startswith(("gen-", ".gen-")) and p.name != before for p in index_dir.iterdir())
    after = DocumentIndex.open(index_dir)
    assert after.manifest["generation"] == before and after.count == 3
    hits = after.search("teapot drawer", k=3)
    assert hits and all("teapot" in h.text for h in hits)
    assert not any("lantern" in h.text for h in after.search("lantern", k=5, mode="keyword"))

    # The lock died with the process; the next ingest cleans the leftovers and commits normally.
    report = after.ingest([tmp_path / "new"], progress=False)
    assert len(report.added) == 6 and after.count == 9
    names = sorted(p.name for p in index_dir.iterdir() if p.name.startswith(("gen-", ".gen-")))
    assert not any(n.startswith(".gen-") for n in names) and len(names) <= 2
    assert "lantern" in DocumentIndex.open(index_dir).search("lantern drawer", k=1)[0].text


def test_damaged_current_generation_falls_back_to_the_previous_one(tmp_path, caplog):
    write_docs(tmp_path / "a", "teapot", 2)
    write_docs(tmp_path / "b", "lantern", 2)
    idx = DocumentIndex.open(tmp_path / "index")
    idx.ingest([tmp_path / "a"], progress=False)
    idx.ingest([tmp_path / "b"], progress=False)
    current = tmp_path / "index" / idx.manifest["generation"]
    (current / "chunks.jsonl").write_text("{ damaged")  # e.g. a disk error after the commit
    with caplog.at_level("WARNING"):
        reopened = DocumentIndex.open(tmp_path / "index")
    assert "unreadable" in caplog.text and reopened.count == 2  # the previous generation: teapots only
    assert "teapot" in reopened.search("teapot drawer", k=1)[0].text
    report = reopened.ingest([tmp_path / "b"], progress=False)  # repairs: a new, complete generation
    assert len(report.added) == 2 and DocumentIndex.open(tmp_path / "index").count == 4
