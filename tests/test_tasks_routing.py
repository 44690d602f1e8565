"""task="auto": the wording decides between qa, summarize and code, in English and Chinese."""
from __future__ import annotations

import pytest

from assistant.tasks import TASKS, infer_task, run_task
from assistant.tasks.base import TaskRequest


@pytest.mark.parametrize("text, task", [
    ("How do I rotate API keys?", "qa"),
    ("What does the code of conduct say about reporting?", "qa"),
    ("How do I implement rate limiting with the gateway?", "qa"),
    ("Summarise the release notes", "summarize"),
    ("summarize docs/install.md", "summarize"),
    ("TL;DR of the security policy", "summarize"),
    ("Give me an overview of the fine-tuning guide", "summarize"),
    ("总结一下发布说明", "summarize"),
    ("请概括这篇文档", "summarize"),
    ("Write a function that parses the config file", "code"),
    ("implement a retry decorator", "code"),
    ("Generate a bash script to back up the workspace", "code"),
    ("写一个函数计算平均值", "code"),
    ("用 Python 写代码读取配置", "code"),
    ("Write a function that summarises text", "code"),
    ("Summarise this script for me", "summarize"),
    ("Give me a short summary of the release notes", "summarize"),
    ("Summary of docs/install.md please", "summarize"),
    ("What is the summary field in the report?", "qa"),
    ("Where do I find the summaries table?", "qa"),
])
def test_infer_task(text, task):
    assert infer_task(text) == task


def test_registry_and_unknown_task():
    assert set(TASKS) == {"qa", "summarize", "code"}
    with pytest.raises(ValueError, match="unknown task"):
        run_task("translate", None, TaskRequest(text="x", query="x"))
