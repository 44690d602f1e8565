"""Bounded load for bench_scale.py: N clients, each looping one kind of request until told to stop.

Kinds, as users send them: `/v1` chat completions streamed and not (httpx, as any OpenAI client),
and Gradio's `/ask` and `/search` through gradio_client (one client each: its own sticky cookie).
Every request becomes a `Call`: when it ran, whether it was answered, and the ids the log should
hold for it, so the run can be checked against PostgreSQL afterwards.
"""
from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from bench_serve import QUESTIONS

KINDS = ("v1", "v1_stream", "ask", "search")


@dataclass
class Call:
    kind: str
    started: float
    ended: float = 0.0
    ok: bool = False
    message_id: str | None = None  # answers only: the row the log must hold
    request_id: str | None = None  # /v1: nginx's id, which the replica stores with the answer
    error: str = ""

    @property
    def seconds(self) -> float:
        return self.ended - self.started

    @property
    def answered(self) -> bool:
        return self.ok and self.message_id is not None


@dataclass
class Load:
    """Clients hitting `url` until `stop()`; `calls` grows as requests finish."""

    url: str
    clients: int = 16
    max_tokens: int = 48
    calls: list[Call] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> "Load":
        for i in range(self.clients):
            t = threading.Thread(target=self._client, args=(mix(i), i), name=f"load-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self, timeout: float = 150) -> None:
        """Stop sending; wait for the requests in flight to end (bounded)."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.1, deadline - time.monotonic()))

    def _client(self, kind: str, n: int) -> None:
        send = None
        questions = itertools.cycle(QUESTIONS[n % len(QUESTIONS):] + QUESTIONS[:n % len(QUESTIONS)])
        while not self._stop.is_set():
            call = Call(kind, time.perf_counter())
            try:
                send = send or self._sender(kind)  # connecting (Gradio's config) can fail under load too
                send(next(questions), call)
            except Exception as exc:  # noqa: BLE001 - every failure is a counted error, never a dead client
                call.ok, call.error = False, f"{type(exc).__name__}: {str(exc)[:200]}"
            call.ended = time.perf_counter()
            with self._lock:
                self.calls.append(call)
            if not call.ok:
                time.sleep(0.5)  # a client that got an error asks again shortly, as people do

    def _sender(self, kind: str) -> Callable[[str, Call], None]:
        if kind in ("v1", "v1_stream"):
            import httpx

            http = httpx.Client(base_url=self.url, timeout=600)
            return lambda q, call: v1(http, q, call, stream=kind == "v1_stream", max_tokens=self.max_tokens)
        from gradio_client import Client

        client = Client(self.url, verbose=False, httpx_kwargs={"timeout": 120})
        return (lambda q, call: ask(client, q, call)) if kind == "ask" else (lambda q, call: search(client, q, call))


def mix(i: int) -> str:
    """Client i's kind: 6 of 16 /v1, 4 streamed /v1, 4 chat /ask, 2 /search (the same shares for any N)."""
    slot = i % 8
    return "v1" if slot in (0, 1, 2) else "v1_stream" if slot in (3, 4) else "ask" if slot in (5, 6) else "search"


def v1(http, question: str, call: Call, *, stream: bool, max_tokens: int) -> None:
    body = {"messages": [{"role": "user", "content": question}], "stream": stream, "max_tokens": max_tokens}
    if not stream:
        r = http.post("/v1/chat/completions", json=body)
        call.request_id = r.headers.get("x-request-id")
        r.raise_for_status()
        data = r.json()
        call.message_id, call.ok = data.get("message_id"), bool(data["choices"][0]["message"]["content"])
        return
    done, final = False, {}
    with http.stream("POST", "/v1/chat/completions", json=body) as r:
        call.request_id = r.headers.get("x-request-id")
        r.raise_for_status()
        for line in r.iter_lines():
            if line == "data: [DONE]":
                done = True
            elif line.startswith("data: {"):
                event = json.loads(line[6:])
                if "error" in event:
                    raise RuntimeError(event["error"].get("message", "in-band error"))
                if event.get("message_id"):
                    final = event
    if not done:
        raise RuntimeError("stream ended without [DONE]")
    call.message_id, call.ok = final.get("message_id"), bool(final)


def ask(client, question: str, call: Call) -> None:
    final = client.predict(question, "qa", api_name="/ask")
    call.message_id, call.ok = final.get("message_id"), bool(final.get("done") and final.get("text"))


def search(client, question: str, call: Call) -> None:
    hits = client.predict(question, 3, "hybrid", api_name="/search")
    call.ok = isinstance(hits, list)
