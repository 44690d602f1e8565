"""The answer tasks (qa, summarize, code) behind one registry, so the facade dispatches by name."""
from __future__ import annotations

from typing import Callable, Iterator

from assistant.tasks import code, qa, summarize
from assistant.tasks.base import Event, Result, Status, TaskContext, TaskRequest, TextDelta
from assistant.tasks.rewrite import standalone_query
from assistant.tasks.routing import infer_task

TASKS: dict[str, Callable[[TaskContext, TaskRequest], Iterator[Event]]] = {
    "qa": qa.run,
    "summarize": summarize.run,
    "code": code.run,
}

__all__ = ["TASKS", "run_task", "infer_task", "standalone_query", "TaskContext", "TaskRequest",
           "TextDelta", "Status", "Result", "Event"]


def run_task(name: str, ctx: TaskContext, req: TaskRequest) -> Iterator[Event]:
    """Run task `name` ("auto" picks one from the request's wording)."""
    if name == "auto":
        name = infer_task(req.text)
    if name in ("summarise", "summary"):
        name = "summarize"
    try:
        runner = TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; choose one of {sorted(TASKS)} or 'auto'") from None
    return runner(ctx, req)
