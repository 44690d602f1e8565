"""Every README snippet, run as written, in order, against a fresh workspace of the bundled docs/.

The blocks run in a scratch folder holding copies of `docs/` and `examples/` (the README says to
run from the repository root), with `ASSISTANT_WORKSPACE` pointing at a new workspace there:
shell blocks with `bash -e`, Python blocks with this interpreter. Blocks that talk to a server
(they name http://127.0.0.1:7860) run against `assistant serve` started here on a free port, whose
address replaces the default one. A block preceded by `<!-- not-tested: REASON -->` is skipped;
only the two `make` targets (CI runs `make test` itself), GPU, torchrun and hub lines, and the
cluster (tests/test_cluster.py runs it) may be, and the test below checks that no other block is.
"""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
DEFAULT_URL = "http://127.0.0.1:7860"
ALLOWED_SKIPS = re.compile(r"\b(make|GPU|torchrun|hub|cluster)\b")


@dataclass
class Block:
    line: int
    lang: str
    body: str
    skip: str  # the not-tested reason, "" when the block runs

    @property
    def needs_server(self) -> bool:
        return DEFAULT_URL in self.body

    @property
    def id(self) -> str:
        return f"README.md:{self.line}-{self.lang}"


def readme_blocks() -> list[Block]:
    blocks = []
    pattern = re.compile(r"(?:<!-- not-tested:(?P<skip>[^>]*)-->[ \t]*\n)?```(?P<lang>\w*)\n(?P<body>.*?)```", re.S)
    for m in pattern.finditer(README):
        line = README.count("\n", 0, m.start("lang")) + 1
        blocks.append(Block(line, m.group("lang"), m.group("body"), (m.group("skip") or "").strip()))
    return blocks


BLOCKS = readme_blocks()
RUNNABLE = [b for b in BLOCKS if not b.skip]


def test_only_gpu_torchrun_hub_and_make_blocks_are_skipped():
    assert len(RUNNABLE) >= 6
    for block in BLOCKS:
        assert block.lang in ("bash", "python"), f"{block.id}: a block this test cannot run"
        if block.skip:
            assert ALLOWED_SKIPS.search(block.skip), f"{block.id} is skipped for {block.skip!r}"


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("readme")
    shutil.copytree(ROOT / "docs", folder / "docs", ignore=shutil.ignore_patterns("images"))
    shutil.copytree(ROOT / "examples", folder / "examples")
    return folder


def environment(scratch: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}
    return env | {"ASSISTANT_WORKSPACE": str(scratch / "workspace"), "HF_HUB_OFFLINE": "1",
                  "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"}


@pytest.fixture(scope="module")
def server(scratch):
    """`assistant serve` on the README's workspace, once the command-line blocks have ingested it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = (scratch / "serve.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "assistant.cli", "serve", "--port", str(port)], cwd=scratch,
                            env=environment(scratch), stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert proc.poll() is None, (scratch / "serve.log").read_text()
        try:
            with urllib.request.urlopen(url + "/health", timeout=5) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(1)
    else:
        pytest.fail("assistant serve did not come up: " + (scratch / "serve.log").read_text()[-2000:])
    yield url
    proc.terminate()
    proc.wait(timeout=60)
    log.close()


@pytest.mark.parametrize("block", RUNNABLE, ids=lambda b: b.id)
def test_readme_block_runs_as_written(block, scratch, request):
    body = block.body
    if block.needs_server:
        body = body.replace(DEFAULT_URL, request.getfixturevalue("server"))
    command = ["bash", "-e", "-c", body] if block.lang == "bash" else [sys.executable, "-c", body]
    out = subprocess.run(command, cwd=scratch, env=environment(scratch), capture_output=True, text=True, timeout=900)
    report = f"{block.id} exited {out.returncode}\n--- stdout\n{out.stdout[-3000:]}\n--- stderr\n{out.stderr[-3000:]}"
    assert out.returncode == 0, report
    assert "Traceback" not in out.stderr, report
    for check in CHECKS.get(first_words(block.body), ()):
        check(out.stdout, scratch)


def first_words(body: str) -> str:
    return " ".join(body.split()[:3])


def _command_line_block(stdout: str, scratch: Path) -> None:
    """What the command-line block promises: cited answers, a follow-up in the same conversation,
    a checked one-sentence summary, JSON, the sandbox's verdict on the tests, the eval tables."""
    from assistant import Assistant

    assert re.search(r"\[1\]", stdout) and "Sources:" in stdout
    assert '"conversation_id"' in stdout  # --json
    assert "Tests: passed." in stdout or "Tests failed" in stdout  # the tests ran in the sandbox
    assert "ndcg@10" in stdout and "strict accuracy" in stdout and "ROUGE-L" in stdout
    bot = Assistant.open(scratch / "workspace")
    try:
        asked = [[m.content for m in bot.log.get_conversation(c.id).messages if m.role == "user"]
                 for c in bot.log.list_conversations()]
        # --conversation last: the follow-up went into the first question's conversation
        assert ["How do I use PostgreSQL for the log?", "and how do I delete old conversations?"] in asked, asked
    finally:
        bot.close()
    assert (scratch / "log.jsonl").stat().st_size > 0  # logs export


def _fine_tuning_block(stdout: str, scratch: Path) -> None:
    assert "docs-lora" in stdout
    registry = (scratch / "workspace" / "models" / "registry.json").read_text()
    assert "docs-lora" in registry


CHECKS = {
    "assistant ingest docs/": (_command_line_block,),
    "assistant finetune --method": (_fine_tuning_block,),
}
