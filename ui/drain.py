"""Graceful shutdown: after SIGTERM, finish the answers in flight and refuse new ones.

A replica being stopped (a deploy, a scale-down) first turns not-ready (`/ready` answers 503, so a
proxy's health check takes it out), answers new questions with 503 and `Retry-After` (nginx retries
those on another replica), lets every answer already started run to its end (a streamed answer
keeps streaming), and only then stops the HTTP server. `grace_s` bounds the wait.
"""
from __future__ import annotations

import json
import logging
import signal
import threading
import time
from typing import Any, Callable

from ui.metrics import route_of

log = logging.getLogger("assistant.requests")

NEW_WORK = {"v1_chat", "gradio_submit"}  # requests that start an answer: refused while draining
DEFAULT_GRACE_S = 120.0  # the longest answer we wait for; a CPU summary of a long page can take this long


class Drain:
    """Whether this server is draining, shared by the middleware, `/ready` and the shutdown thread."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.started_at: float | None = None

    @property
    def draining(self) -> bool:
        return self._event.is_set()

    def start(self) -> bool:
        """Begin draining; False when it had already begun."""
        if self._event.is_set():
            return False
        self.started_at = time.monotonic()
        self._event.set()
        return True


class DrainMiddleware:
    """While draining, requests that would start an answer get 503 (the connection closes after it)."""

    def __init__(self, app: Any, drain: Drain) -> None:
        self.app, self.drain = app, drain

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if (scope["type"] == "http" and self.drain.draining and scope.get("method") == "POST"
                and route_of(scope.get("path", "")) in NEW_WORK):
            body = json.dumps({"error": {"message": "this server is shutting down; ask again (another replica "
                                         "answers)", "type": "server_shutting_down", "code": "draining"}}).encode()
            await send({"type": "http.response.start", "status": 503,
                        "headers": [(b"content-type", b"application/json"), (b"retry-after", b"2"),
                                    (b"connection", b"close"), (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


def drain_then_stop(drain: Drain, answers_idle: Callable[[float], bool], requests_in_flight: Callable[[], float],
                    stop: Callable[[], None], grace_s: float = DEFAULT_GRACE_S) -> bool:
    """Wait for the running answers and their HTTP responses to end (at most `grace_s`), then `stop()`.
    True when everything finished in time."""
    deadline = time.monotonic() + grace_s
    finished = answers_idle(grace_s)
    while finished and requests_in_flight() > 0 and time.monotonic() < deadline:
        time.sleep(0.05)  # the last chunks of a streamed answer, Gradio's result message
    finished = finished and requests_in_flight() <= 0
    time.sleep(0.5)  # Gradio sends a finished event's result over its own stream just after
    log.info(json.dumps({"event": "shutdown", "finished_in_flight": finished,
                         "seconds": round(time.monotonic() - (drain.started_at or time.monotonic()), 3)}))
    stop()
    return finished


def on_sigterm(begin: Callable[[], None]) -> None:
    """Run `begin` (in a new thread, never inside the signal handler) on SIGTERM; main thread only."""
    def handler(signum: int, frame: Any) -> None:
        threading.Thread(target=begin, name="graceful-shutdown", daemon=True).start()

    signal.signal(signal.SIGTERM, handler)
