"""The answer tasks (qa, summarize, code) behind one registry, so the facade dispatches by name."""
from __future__ import annotations

from typing import Callable, Iterator

from assistant.tasks import code, qa, summarize
from assistant.tasks.base import Event, Result, Status, TaskContext, TaskRequest, TextDelta
from assistant.tasks.rewrite import standalone_query
from assistant.tasks.routing import TASK_CHOICES, TASK_NAMES, infer_task

TASKS: dict[str, Callable[[TaskContext, TaskRequest], Iterator[Event]]] = dict(
    zip(TASK_NAMES, (qa.run, summarize.run, code.run), strict=True))

__all__ = ["TASKS", "TASK_CHOICES", "TASK_NAMES", "run_task", "infer_task", "standalone_query", "TaskContext",
           "TaskRequest", "TextDelta", "Status", "Result", "Event"]


def run_task(name: str, ctx: TaskContext, req: TaskRequest) -> Iterator[Event]:
    """Run task `name`, one of TASK_NAMES ("auto" is resolved by the caller: `Assistant.stream_events`)."""
    try:
        runner = TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASK_NAMES)}") from None
    return runner(ctx, req)
