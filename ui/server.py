"""Running the chat page and the HTTP API on one local server, with optional logins and share link.

One FastAPI app holds `/health`, `/ready`, `/metrics` and `/v1/...` and mounts the Gradio page at
`/`; uvicorn runs it in a background thread so `launch()` returns at once (tests, benchmarks) and
`serve()` just waits on it, draining gracefully on SIGTERM (`ui.drain`). Every answer goes through
`ui.instrumented` (metrics, request ids, a log write committed before the answer is handed over). A public share link needs Gradio's tunnel service on the internet: when it cannot
be reached we say so plainly and keep serving locally rather than failing.
"""
from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import threading
import time
import webbrowser
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import gradio as gr
import uvicorn
from fastapi import FastAPI, Response
from gradio import networking

from ui.api import api_router
from ui.app import CHAT_CONCURRENCY, CSS, JS, build_app
from ui.drain import DEFAULT_GRACE_S, Drain, DrainMiddleware, drain_then_stop, on_sigterm
from ui.instrumented import InstrumentedAssistant
from ui.login_limit import LoginThrottle, LoginThrottleMiddleware
from ui.metrics import MetricsMiddleware, ServerMetrics, index_stats
from ui.request_log import RequestIdMiddleware, configure_logs
from ui.security import (
    LOOPBACK_HOSTS, AccessPolicy, UploadPolicy, check_login, exposure_warnings, resolve_access,
)

log = logging.getLogger(__name__)
SHARE_TIMEOUT_S = 20.0  # Gradio's tunnel request waits 30 s on its own; offline we want to know sooner


@dataclass
class RunningServer:
    """A server started by `launch()`: its local `url`, the public `share_url` (or why not), `close()`."""

    url: str
    host: str
    port: int
    app: Any
    share_url: str | None = None
    share_error: str | None = None
    _server: Any = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def shutdown_gracefully(self, grace_s: float = DEFAULT_GRACE_S) -> bool:
        """Stop taking answers, finish the ones in flight (at most `grace_s`), then stop; what SIGTERM does.
        True when every answer in flight finished."""
        drain, bot, metrics = self.app.state.drain, self.app.state.bot, self.app.state.metrics
        if not drain.start():
            return False
        busy = metrics.http_in_flight
        return drain_then_stop(drain, bot.wait_idle,
                               lambda: busy.labels("v1_chat")._value.get() + busy.labels("gradio_submit")._value.get(),
                               self.close, grace_s)

    def close(self, timeout: float = 10.0) -> None:
        # Browsers and gradio_client keep a heartbeat stream open that never ends by itself;
        # uvicorn cancels it after the grace period and logs that as an error. It is not one.
        quiet = logging.getLogger("uvicorn.error")
        level = quiet.level
        quiet.setLevel(logging.CRITICAL)
        try:
            if self._server is not None:
                self._server.should_exit = True
            if self._thread is not None:
                self._thread.join(timeout)
        finally:
            quiet.setLevel(level)

    def wait(self) -> None:
        """Block until the server stops (Ctrl+C stops it)."""
        try:
            while self._thread is not None and self._thread.is_alive():
                self._thread.join(0.5)
        except KeyboardInterrupt:
            print("\nStopping…")
            self.close()

    def __enter__(self) -> "RunningServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def create_app(bot: Any, access: AccessPolicy, *, uploads: UploadPolicy | None = None,
               allow_folder_ingest: bool = True, chat_concurrency: int | None = None,
               login_throttle: LoginThrottle | None = None, api_key_throttle: LoginThrottle | None = None,
               read_only: bool = False):
    """The FastAPI app: `/health`, `/ready`, `/metrics`, `/v1/*` and the Gradio page (with logins when configured).

    Failed sign-ins and wrong API keys are limited per client address, each on its own count
    (`login_throttle`, `api_key_throttle`: 5 a minute by default, then 5 minutes locked out).
    """
    uploads = uploads or UploadPolicy.for_workspace(bot.workspace)
    metrics, drain = ServerMetrics(), Drain()
    bot = InstrumentedAssistant(bot, metrics, read_only=read_only)
    app = FastAPI(title="Domain Assistant", docs_url=None, redoc_url=None, openapi_url=None)
    _add_operations_routes(app, bot, metrics, drain)
    app.include_router(api_router(bot, access, max_concurrent=chat_concurrency or CHAT_CONCURRENCY,
                                  key_throttle=api_key_throttle))  # before the mount at "/", which catches the rest
    demo = build_app(bot, uploads=uploads, allow_folder_ingest=allow_folder_ingest,
                     chat_concurrency=chat_concurrency or CHAT_CONCURRENCY)
    auth = (lambda u, p: check_login(access.logins, u, p)) if access.auth_on else None
    app = gr.mount_gradio_app(
        app, demo, path="/", auth=auth, auth_message="Sign in to the Domain Assistant",
        allowed_paths=[], blocked_paths=[str(Path(bot.workspace).resolve())],
        max_file_size=uploads.max_bytes, css=CSS, js=JS, footer_links=["api"], ssr_mode=False,
        show_error=True, mcp_server=False,
    )
    # Gradio only checks that a file input was really uploaded (and is not, say, /etc/shadow named
    # in a hand-written API call) once `has_launched` is set, which only Blocks.launch() does.
    # Mounted apps must set it themselves; tests/test_ui_server.py guards this.
    demo.has_launched = True
    if hasattr(bot, "collections"):  # who is in which group: the logins say (collections are granted to groups)
        bot.collections.memberships = dict(access.groups)
    if access.auth_on:
        app.add_middleware(LoginThrottleMiddleware, throttle=login_throttle or LoginThrottle())
    metrics.bind(index_stats=lambda: index_stats(bot), gradio_queue=lambda: _gradio_queued(demo),
                 ready=lambda: is_ready(bot), draining=lambda: drain.draining)
    app.add_middleware(DrainMiddleware, drain=drain)  # the last added runs first: id, timing, then refusals
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(RequestIdMiddleware)
    app.state.bot, app.state.metrics, app.state.drain = bot, metrics, drain
    return app


def _add_operations_routes(app: FastAPI, bot: Any, metrics: ServerMetrics, drain: Drain) -> None:
    """`/ready` for load balancers (503 until loaded, and while draining) and `/metrics` for Prometheus."""
    @app.get("/ready")
    def ready() -> Response:
        ok = is_ready(bot) and not drain.draining
        body = {"ready": ok, "draining": drain.draining, **index_stats(bot)}
        return Response(json.dumps(body), status_code=200 if ok else 503, media_type="application/json")

    @app.get("/metrics")
    def scrape() -> Response:
        data, content_type = metrics.render()
        return Response(data, media_type=content_type)


def is_ready(bot: Any) -> bool:
    """The index is open with its embedder loaded and the served model is loaded: the first question waits
    for nothing. Assistants without these parts (test doubles) count as ready."""
    try:
        index = bot.index
        embedder_loaded = index.embedder_status().get("loaded", True) if hasattr(index, "embedder_status") else True
        generator = bot.loaded_generator() if hasattr(bot, "loaded_generator") else True
        return bool(embedder_loaded and generator is not None)
    except Exception:  # noqa: BLE001 - not ready is the answer whatever broke
        return False


def _gradio_queued(demo: Any) -> int:
    queue = getattr(demo, "_queue", None)
    try:
        return len(queue) if queue is not None else 0
    except Exception:  # noqa: BLE001 - Gradio internals: report 0 rather than fail a scrape
        return 0


def launch(bot: Any, *, host: str = "127.0.0.1", port: int | None = 7860, share: bool = False,
           auth: Iterable[str | tuple[str, str]] | None = None, auth_file: str | Path | None = None,
           allow_public_share: bool = False, api_keys: Iterable[str] | None = None,
           api_keys_file: str | Path | None = None, open_browser: bool = False,
           max_upload_mb: float | None = None, chat_concurrency: int | None = None,
           login_throttle: LoginThrottle | None = None,
           api_key_throttle: LoginThrottle | None = None, read_only: bool | None = None) -> RunningServer:
    """Start serving in a background thread and return once requests are answered.

    `port=0` (or None) picks a free port. `read_only` (default: `ASSISTANT_READ_ONLY=1`) refuses ingests: a
    replica of a shared index, which one writer keeps (`assistant.watch`). Raises `AuthConfigError` for unsafe combinations
    (sharing without logins unless `allow_public_share`), `OSError` when the port is taken.
    """
    access = resolve_access(auth=auth, auth_file=auth_file, api_keys=api_keys, api_keys_file=api_keys_file,
                            share=share, allow_public_share=allow_public_share)
    uploads = UploadPolicy.for_workspace(bot.workspace)
    if max_upload_mb:
        uploads.max_bytes = int(max_upload_mb * 1024 * 1024)
    # Indexing an arbitrary server folder is fine for the person at the keyboard, not for visitors.
    local_only = host in LOOPBACK_HOSTS and not share and not access.auth_on
    if read_only is None:
        read_only = os.environ.get("ASSISTANT_READ_ONLY", "") not in ("", "0", "false")
    app = create_app(bot, access, uploads=uploads, allow_folder_ingest=local_only, chat_concurrency=chat_concurrency,
                     login_throttle=login_throttle, api_key_throttle=api_key_throttle, read_only=read_only)
    port = port or _free_port(host)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=3))
    thread = threading.Thread(target=server.run, name=f"assistant-server-{port}", daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise OSError(f"could not start the server on {host}:{port} (is the port already in use?)")
        time.sleep(0.05)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    running = RunningServer(url=f"http://{shown}:{port}", host=host, port=port, app=app, _server=server, _thread=thread)
    if share:
        running.share_url, running.share_error = _share_link(port)
    _announce(running, access, share)
    if open_browser:
        webbrowser.open(running.share_url or running.url)
    return running


def serve(bot: Any, *, host: str = "127.0.0.1", port: int = 7860, share: bool = False, auth=None, auth_file=None,
          allow_public_share: bool = False, api_keys=None, api_keys_file=None, open_browser: bool = False,
          grace_s: float | None = None, **kw) -> None:
    """Serve until interrupted (the CLI's `assistant serve`); SIGTERM drains first (`ASSISTANT_GRACE_S`,
    default 120 s, bounds the wait for answers in flight)."""
    configure_logs()
    running = launch(bot, host=host, port=port, share=share, auth=auth, auth_file=auth_file,
                     allow_public_share=allow_public_share, api_keys=api_keys, api_keys_file=api_keys_file,
                     open_browser=open_browser, **kw)
    grace = grace_s if grace_s is not None else float(os.environ.get("ASSISTANT_GRACE_S", DEFAULT_GRACE_S))
    on_sigterm(lambda: running.shutdown_gracefully(grace))
    running.wait()


def _share_link(port: int, timeout: float = SHARE_TIMEOUT_S) -> tuple[str | None, str | None]:
    """Ask Gradio's tunnel service for a public URL; (url, None) or (None, why it failed)."""
    result: dict[str, Any] = {}

    def attempt() -> None:
        try:
            result["url"] = networking.setup_tunnel("127.0.0.1", port, secrets.token_urlsafe(32), None, None)
        except Exception as exc:  # any failure means "no link"; the cause is reported below
            cause = exc.__cause__ or exc
            result["error"] = f"{exc} ({type(cause).__name__}: {cause})" if cause is not exc else f"{type(exc).__name__}: {exc}"

    t = threading.Thread(target=attempt, daemon=True)
    t.start()
    t.join(timeout)
    if "url" in result:
        return result["url"], None
    why = result.get("error") or f"no answer from Gradio's share service within {timeout:.0f} s"
    return None, f"{why}. A share link needs internet access to {networking.GRADIO_API_SERVER}."


def _announce(running: RunningServer, access: AccessPolicy, share: bool) -> None:
    lines = [f"Domain Assistant running at {running.url}  (API: {running.url}/v1, health: {running.url}/health, "
             f"ready: {running.url}/ready, metrics: {running.url}/metrics)"]
    if share and running.share_url:
        lines.append(f"Public share link: {running.share_url}")
    elif share:
        lines.append(f"Share link could NOT be created: {running.share_error}")
        lines.append(f"Still serving locally at {running.url}.")
    keys = (f"/v1 needs one of {len(access.api_keys)} API key(s), acting as "
            f"{', '.join(sorted(set(access.api_keys.values())))}")
    if access.auth_on:
        api = keys if access.api_keys else "/v1 is closed until you add --api-key KEY:USER"
        lines.append(f"Sign-in required ({len(access.logins)} user(s)); {api}.")
    elif access.api_keys:
        lines.append(f"{keys}.")
    for line in lines:
        print(line, flush=True)
        log.info(line)
    for warning in exposure_warnings(running.host, running.port, access, share):
        print(warning, flush=True)
        log.warning(warning)


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host if host not in ("0.0.0.0", "localhost") else "127.0.0.1", 0))
        return s.getsockname()[1]
