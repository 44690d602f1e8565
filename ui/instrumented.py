"""The assistant as the server sees it: every answer counted, timed, tied to a request id and durable.

`InstrumentedAssistant` wraps `assistant.Assistant` for the chat page and the API (both call
`stream_events` / `ask` / `ingest`); everything else passes through untouched. Per answer it:
- binds a request id when the HTTP layer did not (Gradio runs answers outside the HTTP request),
  so the JSON log line and the conversation log rows carry the same id;
- records task latency, time to first text, tokens generated and the outcome in `ServerMetrics`;
- counts the answers running, which graceful shutdown waits for (`ui.drain`);
- refuses to ingest on a read-only replica (a cluster has one writer: `assistant.watch`);
- waits for the log's deferred write before handing over the finished answer, so a replica killed
  right after answering has still logged what it said (a few milliseconds per answer).
"""
from __future__ import annotations

import contextvars
import json
import logging
import threading
import time
from typing import Any, Iterator

from assistant.tasks.base import Result, TextDelta
from foundation.request_context import current_request_id, new_request_id, set_request_id
from ui.metrics import ServerMetrics, current_route

log = logging.getLogger("assistant.requests")
_END = object()


class InstrumentedAssistant:
    """`bot` with its answers measured; attribute reads and writes go to `bot`."""

    def __init__(self, bot: Any, metrics: ServerMetrics, *, durable_log: bool = True, read_only: bool = False) -> None:
        object.__setattr__(self, "_bot", bot)
        object.__setattr__(self, "_read_only", read_only)
        object.__setattr__(self, "_metrics", metrics)
        object.__setattr__(self, "_durable", durable_log)
        object.__setattr__(self, "_running", 0)
        object.__setattr__(self, "_idle", threading.Condition())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._bot, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._bot, name, value)

    # --- answers ----------------------------------------------------------------------------

    @property
    def running(self) -> int:
        """Answers being generated now."""
        return self._running

    def wait_idle(self, timeout: float) -> bool:
        """Block until no answer is running (True) or `timeout` seconds pass (False)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._running == 0, timeout)

    def ask(self, question: str, **kwargs: Any) -> Any:
        answer = None
        for event in self.stream_events(question, **kwargs):
            if isinstance(event, Result):
                answer = event.answer
        assert answer is not None
        return answer

    def stream_events(self, question: str, **kwargs: Any) -> Iterator[Any]:
        """The wrapped stream, measured. Gradio resumes a stream from different threads and contexts, so
        the answer runs in a context of its own that holds its request id (the HTTP request's, if any)."""
        ctx = contextvars.copy_context()
        rid = current_request_id() or new_request_id()
        ctx.run(set_request_id, rid)
        inner = self._bot.stream_events(question, **kwargs)
        m, task = self._metrics, str(kwargs.get("task") or "qa")
        origin = "v1" if current_route.get() == "v1_chat" else "chat"
        started, first, outcome, answer = time.perf_counter(), None, "error", None
        self._count(+1)
        m.answers_running.labels(origin).inc()
        try:
            while (event := ctx.run(next, inner, _END)) is not _END:
                if first is None and isinstance(event, TextDelta) and event.text:
                    first = time.perf_counter() - started
                if isinstance(event, Result):
                    answer = event.answer
                    task = str(getattr(answer, "task", "") or task)
                    if self._durable:
                        self._settle_log()
                yield event
            outcome = "complete"
        except GeneratorExit:
            outcome = "incomplete"
            raise
        finally:
            ctx.run(inner.close)  # a reader who left: the log marks the answer incomplete, with its id
            seconds = time.perf_counter() - started
            m.answers_running.labels(origin).dec()
            self._count(-1)
            m.answers.labels(task, outcome).inc()
            m.answer_seconds.labels(task).observe(seconds)
            if first is not None:
                m.first_token_seconds.labels(task).observe(first)
            # the answer's tokens, written or quoted (as the API's usage)
            tokens = int(getattr(getattr(answer, "timings", None), "completion_tokens", 0) or 0)
            if tokens:
                m.tokens.labels(task).inc(tokens)
            log.info(json.dumps({"event": "answer", "request_id": rid, "task": task, "origin": origin,
                                 "outcome": outcome, "seconds": round(seconds, 3), "tokens_out": tokens,
                                 "message_id": getattr(answer, "message_id", None),
                                 "conversation_id": getattr(answer, "conversation_id", None)}))

    def _settle_log(self) -> None:
        clog = getattr(self._bot, "_log", None)  # only a log that is open: never open one here
        if clog is not None and hasattr(clog, "settle"):
            clog.settle()

    def _count(self, delta: int) -> None:
        with self._idle:
            object.__setattr__(self, "_running", self._running + delta)
            self._idle.notify_all()

    # --- ingest -----------------------------------------------------------------------------

    def ingest(self, paths: Any, **kwargs: Any) -> Any:
        """The wrapped ingest, with its files counted and its progress exposed; refused on a read-only replica."""
        if self._read_only:
            raise PermissionError("this server is a read-only replica of a shared index: add documents through "
                                  "the cluster's ingest writer (its watched folder) or `assistant ingest`")
        m, outer = self._metrics, kwargs.get("progress")

        def progress(message: str, done: int, total: int) -> None:
            m.ingest_progress.set(done / total if total else 1.0)
            if callable(outer):
                outer(message, done, total)

        kwargs["progress"] = progress
        m.ingest_progress.set(0)
        try:
            report = self._bot.ingest(paths, **kwargs)
        finally:
            m.ingest_progress.set(1)
        for outcome in ("added", "updated", "skipped", "failed"):
            m.ingest_files.labels(outcome).inc(len(getattr(report, outcome, []) or []))
        return report
