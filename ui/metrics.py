"""What a server is doing, in Prometheus' text format at `/metrics`.

One `ServerMetrics` per app (its own registry, so two servers in one test process never share
counts). HTTP requests are counted and timed by `MetricsMiddleware` under a handful of route
names (never raw paths: a scanner must not grow the label set); answers are counted and timed per
task by `ui.instrumented`; the index, the Gradio queue and readiness are read when scraped.
Needs `prometheus-client` (pip install 'domain-assistant[serve]').
"""
from __future__ import annotations

import time
from contextvars import ContextVar
from typing import Any, Callable

try:
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
except ImportError as exc:  # pragma: no cover - the serve extra installs it
    raise ImportError("/metrics needs prometheus-client: pip install prometheus-client "
                      "(or pip install 'domain-assistant[serve]')") from exc

# Answers on a CPU take seconds to minutes; HTTP requests other than answers take milliseconds.
ANSWER_BUCKETS = (0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300)
HTTP_BUCKETS = (0.005, 0.025, 0.1, 0.5, 1, 2, 4, 8, 15, 30, 60, 120)

# The route an HTTP request belongs to, for the answers it starts (`ui.instrumented` reads it).
current_route: ContextVar[str] = ContextVar("current_route", default="")


def route_of(path: str) -> str:
    """A bounded name for a request path (the label on HTTP metrics)."""
    if path.startswith("/v1/chat/completions"):
        return "v1_chat"
    if path.startswith("/v1/"):
        return "v1_other"
    if path in ("/health", "/ready", "/metrics"):
        return path.lstrip("/")
    if "/queue/join" in path or "/call/" in path or "/run/" in path:
        return "gradio_submit"
    if "/queue/data" in path or "/heartbeat/" in path:
        return "gradio_stream"
    if path.startswith(("/gradio_api", "/config", "/assets", "/static", "/file=", "/theme.css")):
        return "gradio_other"
    return "page"


class ServerMetrics:
    """The server's metrics; `bind(...)` connects the read-when-scraped gauges to their sources."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.http_requests = Counter("assistant_http_requests", "HTTP requests answered, by route and status",
                                     ["route", "method", "status"], registry=r)
        self.http_seconds = Histogram("assistant_http_request_duration_seconds", "HTTP request time to the last byte",
                                      ["route"], buckets=HTTP_BUCKETS, registry=r)
        self.http_in_flight = Gauge("assistant_http_requests_in_flight", "HTTP requests being served", ["route"],
                                    registry=r)
        self.answers = Counter("assistant_answers", "answers finished, by task and outcome (complete, error, "
                               "incomplete: the reader left)", ["task", "outcome"], registry=r)
        self.answer_seconds = Histogram("assistant_answer_duration_seconds", "time to a whole answer, by task",
                                        ["task"], buckets=ANSWER_BUCKETS, registry=r)
        self.first_token_seconds = Histogram("assistant_answer_first_token_seconds", "time to the first text, by task",
                                             ["task"], buckets=ANSWER_BUCKETS, registry=r)
        self.tokens = Counter("assistant_tokens_generated", "answer tokens given (written by the model or quoted), by task",
                              ["task"], registry=r)
        self.answers_running = Gauge("assistant_answers_running", "answers being generated now", ["origin"],
                                     registry=r)
        self.queue_depth = Gauge("assistant_queue_depth", "answers asked for and waiting for a worker", ["queue"],
                                 registry=r)
        self.index_generation = Gauge("assistant_index_generation", "the committed index generation this "
                                      "server searches (its number; it rises with each ingest)", registry=r)
        self.index_chunks = Gauge("assistant_index_chunks", "chunks in the index this server searches", registry=r)
        self.index_documents = Gauge("assistant_index_documents", "documents in the index this server searches",
                                     registry=r)
        self.ingest_files = Counter("assistant_ingest_files", "files handled by ingests in this process, by outcome",
                                    ["outcome"], registry=r)
        self.ingest_progress = Gauge("assistant_ingest_progress_ratio", "share of the running ingest's files done "
                                     "(1 when none is running)", registry=r)
        self.ingest_progress.set(1)
        self.ready = Gauge("assistant_ready", "1 when the index and the model are loaded and not draining", registry=r)
        self.draining = Gauge("assistant_draining", "1 after SIGTERM: finishing answers, refusing new ones", registry=r)

    def bind(self, *, index_stats: Callable[[], dict[str, float]], gradio_queue: Callable[[], int],
             ready: Callable[[], bool], draining: Callable[[], bool]) -> None:
        """Gauges read at scrape time: index numbers, queue lengths, readiness."""
        self.index_generation.set_function(lambda: index_stats().get("generation", 0))
        self.index_chunks.set_function(lambda: index_stats().get("chunks", 0))
        self.index_documents.set_function(lambda: index_stats().get("documents", 0))
        self.queue_depth.labels("gradio").set_function(lambda: float(gradio_queue()))
        self.queue_depth.labels("v1").set_function(self._v1_waiting)
        self.ready.set_function(lambda: float(ready() and not draining()))
        self.draining.set_function(lambda: float(draining()))

    def _v1_waiting(self) -> float:
        """/v1 answers asked for and not yet started: requests in flight less answers running for them."""
        asked = self.http_in_flight.labels("v1_chat")._value.get()
        running = self.answers_running.labels("v1")._value.get()
        return max(0.0, asked - running)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Counts, times and tracks in-flight HTTP requests per route (plain ASGI: streaming stays streaming)."""

    def __init__(self, app: Any, metrics: ServerMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        route = route_of(scope.get("path", ""))
        status = {"code": 500}

        async def send_seen(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        m, started, token = self.metrics, time.perf_counter(), current_route.set(route)
        m.http_in_flight.labels(route).inc()
        try:
            await self.app(scope, receive, send_seen)
        finally:
            m.http_in_flight.labels(route).dec()
            m.http_seconds.labels(route).observe(time.perf_counter() - started)
            m.http_requests.labels(route, scope.get("method", ""), str(status["code"])).inc()
            current_route.reset(token)


def index_stats(bot: Any) -> dict[str, float]:
    """The searched index's generation number, chunks and documents (reloading it if another process committed)."""
    try:
        index = bot.index
        manifest = index.manifest  # reads CURRENT: a newer commit is loaded first
        generation = str(getattr(index, "_pointer", "") or manifest.get("generation", ""))
        return {"generation": float(_generation_number(generation)), "chunks": float(index.count),
                "documents": float(len(index.documents()))}
    except Exception:  # noqa: BLE001 - a scrape never fails because one source cannot report
        return {}


def _generation_number(name: str) -> int:
    """`gen-000042` -> 42; 0 when there is no committed generation."""
    digits = "".join(c for c in name.rsplit("-", 1)[-1] if c.isdigit())
    return int(digits) if digits else 0
