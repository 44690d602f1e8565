"""One id per HTTP request, in the response, in every log line and in the conversation log; JSON logs.

The id is the proxy's `X-Request-ID` when it sends a plain one (nginx: `proxy_set_header X-Request-ID
$request_id`), so the proxy's access log, the server's log and the `messages.request_id` column all
name the same request; otherwise the server makes one. With `ASSISTANT_LOG_FORMAT=json` (the cluster
sets it) every log line is one JSON object with `ts`, `level`, `logger`, `request_id` and the
message, whose own JSON fields (our `event` lines) are merged in, ready for a log shipper.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any, Callable

from foundation.request_context import bound_request_id, clean_request_id, current_request_id

access_log = logging.getLogger("assistant.access")
QUIET_ROUTES = ("/health", "/ready", "/metrics")  # scraped every few seconds: not worth a line each


class RequestIdMiddleware:
    """Bind the request's id for everything it runs, echo it as `X-Request-ID`, log one access line."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        sent = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        status = {"code": 500}
        with bound_request_id(clean_request_id(sent)) as rid:
            async def send_with_id(message: dict) -> None:
                if message["type"] == "http.response.start":
                    status["code"] = message["status"]
                    message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", rid.encode())]}
                await send(message)

            started = time.perf_counter()
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                path = scope.get("path", "")
                if not path.startswith(QUIET_ROUTES):
                    access_log.info(json.dumps({"event": "http", "method": scope.get("method"), "path": path,
                                                "status": status["code"],
                                                "seconds": round(time.perf_counter() - started, 3)}))


class JsonFormatter(logging.Formatter):
    """A log record as one JSON line; a message that is itself a JSON object is merged in."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
                               "level": record.levelname.lower(), "logger": record.name,
                               "pid": record.process}
        rid = current_request_id()
        if rid:
            out["request_id"] = rid
        message = record.getMessage()
        try:
            fields = json.loads(message) if message.startswith("{") else None
        except ValueError:
            fields = None
        if isinstance(fields, dict):
            out.update(fields)
        else:
            out["message"] = message
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


JsonFormatter.converter = time.gmtime  # timestamps in UTC, as the trailing Z says


def configure_logs(fmt: str | None = None) -> None:
    """`json` (or `ASSISTANT_LOG_FORMAT=json`): every line on stderr as JSON, requests at INFO."""
    fmt = (fmt or os.environ.get("ASSISTANT_LOG_FORMAT", "")).lower()
    if fmt != "json":
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    for name in ("assistant.requests", "assistant.access"):
        logging.getLogger(name).setLevel(logging.INFO)
