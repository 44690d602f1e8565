"""Code generation: extract one block, refuse to pass off broken Python, run user tests in the sandbox."""
from __future__ import annotations

import pytest

from assistant.tasks import code
from assistant.tasks.base import Result, Status, TaskRequest, TextDelta
from doubles import FixedGenerator, MemoryContext, default_models
from assistant.types import Source

DOCS = [Source(path="acme/util.py", title="util.py", locator="lines 1-4", snippet="def slugify", score=0.0,
               text="def slugify(text: str) -> str:\n    \"\"\"Lower-case, words joined by '-'.\"\"\"\n"
                    "    return '-'.join(text.lower().split())\n")]
BROKEN = "```python\ndef add(a, b)\n    return a + b\n```"
FIXED = "```python\ndef add(a, b):\n    return a + b\n```"


@pytest.fixture(scope="module")
def models():
    return default_models()


def collect(ctx, text, tests=""):
    events = list(code.run(ctx, TaskRequest(text=text, query=text, tests=tests)))
    assert isinstance(events[-1], Result)
    answer = events[-1].answer
    assert "".join(e.text for e in events if isinstance(e, TextDelta)).strip() == answer.text
    return answer, [e.text for e in events if isinstance(e, Status)]


def test_extract_code():
    assert code.extract_code("Here:\n```py\nx = 1\n```\nDone") == ("x = 1", "python")
    assert code.extract_code("```js\nlet x = 1;\n```\n```python\ny = 2\n```") == ("y = 2", "python")
    assert code.extract_code("def f():\n    return 1") == ("def f():\n    return 1", "python")
    assert code.extract_code("I cannot help with that.") == ("", "python")
    assert code.extract_code("```python\ndef f():\n    return 1") == ("def f():\n    return 1", "python")  # unclosed


def test_requested_language():
    assert code.requested_language("write a bash script that backs up /data") == "bash"
    assert code.requested_language("Write a function in JavaScript to debounce") == "javascript"
    assert code.requested_language("Write a function to parse dates") == "python"


def test_stub_is_completed():
    stub = "from typing import List\n\ndef total(xs: List[int]) -> int:\n    \"\"\"Sum of xs.\"\"\"\n"
    assert code.complete_with_stub("    return sum(xs)", stub).startswith("from typing import List")
    full = code.complete_with_stub("def total(xs: List[int]) -> int:\n    return sum(xs)", stub)
    assert full.splitlines()[0] == "from typing import List" and code.syntax_error(full) is None


def test_salvage_cuts_loops_and_truncation():
    looping = "import os\n\ndef f():\n    return 1\n\ndef f():\n    return f()\n\ndef g():\n    return 'ab"
    assert code.salvage(looping) == "import os\n\ndef f():\n    return 1"
    assert code.salvage("def add(a, b)\n    return a + b") is None


def test_truncated_loop_is_salvaged_without_a_retry(models):
    _, emb = models
    reply = "```python\ndef add(a, b):\n    return a + b\n\ndef add(a, b):\n    return add(a, b)\n\ndef add(a, b):\n    return ("
    gen = FixedGenerator(reply)
    answer, _ = collect(MemoryContext(DOCS, gen, emb), "Write add(a, b)", tests="assert add(1, 2) == 3")
    assert len(gen.prompts) == 1 and answer.extra["salvaged"] and "syntax_error" not in answer.extra
    assert answer.extra["code"] == "def add(a, b):\n    return a + b"
    assert answer.extra["tests"]["passed"]


def test_syntax_error_is_retried_then_reported(models):
    _, emb = models
    gen = FixedGenerator([BROKEN, BROKEN])
    answer, _ = collect(MemoryContext(DOCS, gen, emb), "Write a function add(a, b) that returns the sum")
    assert answer.extra["attempts"] == 2 and len(gen.prompts) == 2
    assert answer.extra["syntax_error"].startswith("line 1")
    assert "syntax error" in gen.prompts[1][-1]["content"]
    assert "still has a syntax error" in answer.text


def test_retry_repairs_the_code_and_tests_pass(models):
    _, emb = models
    gen = FixedGenerator([BROKEN, FIXED])
    answer, status = collect(MemoryContext(DOCS, gen, emb), "Write a function add(a, b) that returns the sum",
                             tests="assert add(2, 3) == 5")
    assert "syntax_error" not in answer.extra and answer.extra["attempts"] == 2
    assert answer.extra["code"] == "def add(a, b):\n    return a + b"
    assert answer.extra["tests"]["passed"] and "running your tests in the sandbox" in status
    assert answer.text.endswith("Tests: passed.")


def test_failing_tests_are_reported(models):
    _, emb = models
    wrong = "```python\ndef add(a, b):\n    return a - b\n```"
    answer, _ = collect(MemoryContext(DOCS, FixedGenerator(wrong), emb), "Write add(a, b)",
                        tests="assert add(2, 3) == 5, 'wrong sum'")
    assert answer.extra["tests"]["passed"] is False
    assert "wrong sum" in answer.extra["tests"]["error"] and "Tests failed" in answer.text


def test_relevant_code_is_in_the_prompt(models):
    _, emb = models
    gen = FixedGenerator("```python\nfrom acme.util import slugify\nprint(slugify('A B'))\n```")
    answer, _ = collect(MemoryContext(DOCS, gen, emb), "Write a script that slugifies a title with our slugify helper")
    assert "def slugify" in gen.prompts[0][-1]["content"]
    assert answer.sources[0].path == "acme/util.py" and "syntax_error" not in answer.extra


def test_real_model_writes_code_that_passes_tests(models):
    gen, emb = models
    answer, _ = collect(MemoryContext(DOCS, gen, emb), "Write a Python function add(a, b) that returns the sum of a and b.",
                        tests="assert add(2, 3) == 5\nassert add(-1, 1) == 0")
    assert answer.extra["language"] == "python" and "def add" in answer.extra["code"]
    assert answer.extra["tests"]["passed"], answer.extra["tests"]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
def test_an_unlabelled_code_block_is_labelled_while_it_streams(size):
    reply = "Here:\n```\ndef f():\n    return '```'\n```\n\nThen ```inline``` text.\n```\nx = 1\n```"
    pieces = [reply[i:i + size] for i in range(0, len(reply), size)]
    out = "".join(code.label_fences(iter(pieces), "python"))
    assert out == ("Here:\n```python\ndef f():\n    return '```'\n```\n\nThen ```inline``` text.\n"
                   "```python\nx = 1\n```")
    labelled = "```js\nlet a = 1\n```\n"
    assert "".join(code.label_fences(iter([labelled]), "python")) == labelled  # a label the model gave stays
