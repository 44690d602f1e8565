"""Failed sign-ins and wrong API keys limited per client address, so neither can be guessed at network speed.

Gradio checks the password at `POST /login` but never sees who is asking, so the limit sits in
front of it as a small ASGI middleware: after `max_failures` wrong passwords within `window_s`
from one address, every sign-in from there is refused with 429 for `lockout_s` — the right
password too, or guessing would go on. Behind a reverse proxy the address is the one the proxy
forwards (uvicorn trusts X-Forwarded-For from 127.0.0.1 only; see docs/security.md).

/v1 checks API keys itself (ui.api), with a LoginThrottle of its own and the same `client_address`.
"""
from __future__ import annotations

import json
import threading
import time
from collections import deque
from typing import Any, Awaitable, Callable

MAX_FAILURES = 5
WINDOW_S = 60.0
LOCKOUT_S = 300.0
LOGIN_PATHS = {"/login", "/login/"}  # Gradio's sign-in route, mounted at "/"
MAX_TRACKED = 10_000  # addresses remembered at once; the oldest are forgotten first


class LoginThrottle:
    """Counts failed sign-ins (or wrong API keys) per address; thread-safe, memory bounded by MAX_TRACKED."""

    def __init__(self, max_failures: int = MAX_FAILURES, window_s: float = WINDOW_S, lockout_s: float = LOCKOUT_S,
                 clock: Callable[[], float] = time.monotonic):
        self.max_failures = max_failures
        self.window_s = window_s
        self.lockout_s = lockout_s
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._locked_until: dict[str, float] = {}
        self._lock = threading.Lock()

    def retry_after(self, client: str) -> float:
        """Seconds until `client` may try again (0 when it may try now)."""
        with self._lock:
            left = self._locked_until.get(client, 0.0) - self._clock()
            if left <= 0:
                self._locked_until.pop(client, None)
                return 0.0
            return left

    def failed(self, client: str) -> None:
        now = self._clock()
        with self._lock:
            recent = self._failures.setdefault(client, deque())
            recent.append(now)
            while recent and recent[0] < now - self.window_s:
                recent.popleft()
            if len(recent) >= self.max_failures:
                self._locked_until[client] = now + self.lockout_s
                recent.clear()
            while len(self._failures) > MAX_TRACKED:
                self._failures.pop(next(iter(self._failures)))
            if len(self._locked_until) > MAX_TRACKED:  # forget lockouts that have run out
                self._locked_until = {c: t for c, t in self._locked_until.items() if t > now}

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)


Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Callable, Callable], Awaitable[None]]


class LoginThrottleMiddleware:
    """Refuses sign-ins from a locked-out address; counts Gradio's answers to the others.

    Every other request passes straight through untouched (streams included).
    """

    def __init__(self, app: ASGIApp, throttle: LoginThrottle):
        self.app = app
        self.throttle = throttle

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST" or scope.get("path") not in LOGIN_PATHS:
            await self.app(scope, receive, send)
            return
        client = client_address(scope)
        wait = self.throttle.retry_after(client)
        if wait > 0:
            await _refuse(send, wait)
            return
        status: dict[str, int] = {}

        async def watch(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        await self.app(scope, receive, watch)
        code = status.get("code", 500)
        if code == 200:
            self.throttle.succeeded(client)
        elif 400 <= code < 500:  # Gradio answers a wrong password with 400
            self.throttle.failed(client)


def client_address(scope: Scope) -> str:
    """Who is asking, as uvicorn saw it: the peer, or the address a proxy on 127.0.0.1 forwarded."""
    return (scope.get("client") or ("unknown", 0))[0]


def retry_after_s(wait: float) -> int:
    """Whole seconds for a Retry-After header: rounded up, so a client that obeys it is let in."""
    return int(wait) + 1


async def _refuse(send: Callable, wait: float) -> None:
    seconds = retry_after_s(wait)
    body = json.dumps({"detail": f"Too many failed sign-ins from this address: try again in {seconds} s."}).encode()
    await send({"type": "http.response.start", "status": 429,
                "headers": [(b"content-type", b"application/json"), (b"retry-after", str(seconds).encode()),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
