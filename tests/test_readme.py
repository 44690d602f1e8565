"""README snippets stay true, cheaply: every `assistant ...` line parses with the real CLI, every
linked doc exists, and docs/formats.md shows exactly the files in examples/.

tests/test_readme_snippets.py runs every block for real; this file fails in a second, not minutes.
"""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from assistant.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCK = re.compile(r"(<!-- not-tested:[^>]*-->\s*)?```(\w*)\n(.*?)```", re.S)


def _cli_lines() -> list[str]:
    lines = []
    for skip, lang, body in BLOCK.findall(README):
        if skip or lang != "bash":
            continue
        for raw in body.replace("\\\n", " ").splitlines():
            for part in raw.split("#", 1)[0].split(";"):
                words = shlex.split(part)
                while words and "=" in words[0]:  # leading VAR=value settings
                    words.pop(0)
                if ">" in words:  # a shell redirection, not an argument
                    words = words[:words.index(">")]
                if words[:1] == ["assistant"] and "..." not in part and "|" not in part:
                    lines.append(" ".join(shlex.quote(w) for w in words[1:]))
    return lines


def test_readme_has_cli_lines():
    assert len(_cli_lines()) >= 10


@pytest.mark.parametrize("line", _cli_lines())
def test_readme_cli_line_parses(line):
    build_parser().parse_args(shlex.split(line))


def test_readme_links_exist():
    for target in re.findall(r"\]\(((?:docs/)[^)#]+)\)", README):
        assert (ROOT / target).exists(), target


def test_formats_doc_shows_the_example_files():
    """Each example in docs/formats.md is the file of that name in examples/ (which the README runs)."""
    formats = (ROOT / "docs" / "formats.md").read_text(encoding="utf-8")
    shown = {}
    for heading, body in re.findall(r"## `([\w.]+)`.*?```\w*\n(.*?)```", formats, re.S):
        shown[heading] = body
    for name in ("questions.jsonl", "pairs.jsonl", "answers.jsonl", "summaries.jsonl"):
        assert shown[name] == (ROOT / "examples" / name).read_text(encoding="utf-8"), name
    tests_block = re.search(r"## The `--tests` file.*?```python\n(.*?)```", formats, re.S).group(1)
    assert tests_block == (ROOT / "examples" / "slug_tests.py").read_text(encoding="utf-8")
