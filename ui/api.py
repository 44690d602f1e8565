"""The OpenAI-compatible HTTP API (`/v1/chat/completions`, `/v1/models`) and `/health`.

Any OpenAI client can talk to the assistant: the last user message is the question, earlier
user/assistant messages are the history, and the reply carries the passages it cites in an extra
`sources` field (the text cites them as [1], [2]…) plus the logged `conversation_id`, which a
client may send back to continue the conversation. Extra request fields: `task`, `conversation_id`, `k`.

Who is asking comes from the API key alone (each key acts as one user, like a login); the body's
`user` field is accepted for compatibility and ignored. Every numeric input is range-checked
(`ui.limits`) and every refusal uses OpenAI's error shape, so clients show the message.
"""
from __future__ import annotations

import asyncio
import contextvars
import json
import re
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, AsyncIterator, Callable, Iterator

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field

from assistant.doctor import runtime_report
from assistant.generation.base import cut_at_stop, held_back
from assistant.tasks import TASK_CHOICES
from assistant.tasks.base import Result, TextDelta
from ui import limits, render
from ui.login_limit import LoginThrottle, client_address, retry_after_s
from ui.model_choice import UnknownModel, current_model, model_arg, model_choices
from ui.ownership import NotYourConversation, own_conversation
from ui.security import AccessPolicy, UploadPolicy, api_key_user


class APIError(Exception):
    """A refusal in OpenAI's shape: {"error": {"message", "type", "param", "code"}}."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 type: str = "invalid_request_error", headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.type = status, message, param, code, type
        self.headers = headers

    def response(self) -> JSONResponse:
        body = {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}
        return JSONResponse(body, status_code=self.status, headers=self.headers)


class OpenAIErrors(APIRoute):
    """Routes whose every refusal (validation, auth, bad values) is answered in OpenAI's error shape."""

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def handle(request: Request):
            try:
                return await handler(request)
            except APIError as exc:
                return exc.response()
            except RequestValidationError as exc:
                first = exc.errors()[0] if exc.errors() else {}
                param = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
                msg = f"{param}: {first.get('msg', 'invalid value')}" if param else first.get("msg", "invalid request body")
                return APIError(400, msg, param=param, code="invalid_value").response()
            except HTTPException as exc:
                return APIError(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None)).response()

        return handle


class ChatMessage(BaseModel):
    role: str
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):  # OpenAI "content parts": keep the text ones
            return "".join(p.get("text", "") for p in self.content if p.get("type") == "text")
        return self.content or ""


class ChatRequest(BaseModel):
    model: str = ""
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None  # OpenAI's newer name for max_tokens
    stop: str | list[str] | None = None
    n: int | None = None
    user: str | None = None  # accepted for compatibility, never trusted: the API key says who asks
    task: str = "qa"
    conversation_id: str | None = None
    k: int | None = None


def api_router(bot: Any, access: AccessPolicy, max_concurrent: int = 4,
               key_throttle: LoginThrottle | None = None) -> APIRouter:
    """Routes bound to one assistant; /v1 needs a bearer key whenever logins or keys are set.

    At most `max_concurrent` answers are generated at once; more wait their turn. On a small
    CPU machine running 8 at once is slower for everyone than 4 at a time (bench_serve.py).
    Wrong keys are limited per client address like sign-ins (`key_throttle`, 5 a minute by default).
    """
    router = APIRouter(route_class=OpenAIErrors)
    key_throttle = key_throttle or LoginThrottle()
    # A fixed pool runs the answers; waiting requests hold no thread, only a place in its queue.
    workers = ThreadPoolExecutor(max_concurrent, thread_name_prefix="v1-answer")
    uploads_root = UploadPolicy.for_workspace(bot.workspace).root if hasattr(bot, "workspace") else ""

    def roots() -> list[str]:
        """Where documents were ingested from: sources are shown relative to it, never as server paths."""
        return render.reader_roots(bot, uploads_root)

    def caller(request: Request) -> str | None:
        """The user the bearer key acts as; None on a server without logins or keys."""
        if not access.api_needs_key:
            return None
        if not access.api_keys:
            raise APIError(401, "this server has logins but no API keys: start it with --api-key KEY:USER",
                           code="invalid_api_key")
        client = client_address(request.scope)
        wait = key_throttle.retry_after(client)
        if wait > 0:  # the right key waits too, or guessing would go on
            seconds = retry_after_s(wait)
            raise APIError(429, f"Too many wrong API keys from this address: try again in {seconds} s.",
                           code="rate_limit_exceeded", type="rate_limit_error", headers={"Retry-After": str(seconds)})
        header = request.headers.get("authorization")
        user = api_key_user(access.api_keys, header)
        if user is None:
            if header:  # a key was tried; a request without one guesses nothing
                key_throttle.failed(client)
            raise APIError(401, "missing or wrong API key: send 'Authorization: Bearer KEY'",
                           code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})
        key_throttle.succeeded(client)
        return user

    @router.get("/health")
    def health() -> dict:
        """Alive, which model answers, and which decoder and embedder paths run on this CPU and why."""
        out = {"status": "ok", "model": str(getattr(bot, "model_name", "")), "auth": access.auth_on}
        try:
            report = runtime_report(bot)
            out.update(decoder=report["decoder"], embedder=report["embedder"], cpu=report["machine"]["description"])
        except Exception as exc:  # noqa: BLE001 - health must answer even when a part cannot report
            out["runtime_error"] = type(exc).__name__
        return json.loads(_PATHS.sub(lambda m: m.group(0).rsplit("/", 1)[-1], json.dumps(out)))

    @router.get("/v1/models", dependencies=[Depends(caller)])
    def models() -> dict:
        names = model_choices(bot)
        return {"object": "list", "data": [{"id": n, "object": "model", "created": 0, "owned_by": "domain-assistant"} for n in names]}

    @router.post("/v1/chat/completions")
    async def chat_completions(req: ChatRequest, user: str | None = Depends(caller)):
        question, history = _split_messages(req.messages)
        kwargs = _ask_kwargs(bot, req, history, user)
        if req.conversation_id:  # a database read: off the event loop, but not behind the answers
            await asyncio.get_running_loop().run_in_executor(None, _check_owner, bot, req.conversation_id, user)
        cid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        model = req.model or current_model(bot)
        if req.stream:
            events = _events_from_pool(workers, lambda: bot.stream_events(question, **kwargs))
            return StreamingResponse(_sse(events, cid, model, kwargs.get("stop"), kwargs.get("max_tokens"), roots),
                                     media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        try:
            answer = await asyncio.get_running_loop().run_in_executor(  # the context carries the request id
                workers, contextvars.copy_context().run, lambda: bot.ask(question, **kwargs))
        except (ValueError, KeyError) as exc:  # empty question, unknown conversation
            raise APIError(400, str(exc).strip("'\"")) from exc
        return _completion(answer, cid, model, kwargs.get("stop"), kwargs.get("max_tokens"), roots())

    return router


# Absolute paths inside /health's reasons (a cache folder named in a fallback reason): only their last part is
# shown, since /health answers without a login and must not map the server's file system.
_PATHS = re.compile(r"(?<![\w.])(?:/[\w.+@-]+){2,}")


def _check_owner(bot: Any, conversation_id: str, user: str | None) -> None:
    try:
        own_conversation(bot, conversation_id, user)
    except NotYourConversation as exc:
        raise APIError(404, str(exc), param="conversation_id", code="conversation_not_found") from None


def _split_messages(messages: list[ChatMessage]) -> tuple[str, list[dict[str, str]]]:
    last_user = max((i for i, m in enumerate(messages) if m.role == "user"), default=None)
    if last_user is None or not messages[last_user].text().strip():
        raise APIError(400, "messages must contain a non-empty user message (the question)", param="messages")
    history = [{"role": m.role, "content": m.text()} for m in messages[:last_user] if m.role in ("user", "assistant")]
    return messages[last_user].text().strip(), history


def _ask_kwargs(bot: Any, req: ChatRequest, history: list[dict[str, str]], user: str | None) -> dict[str, Any]:
    """The facade's arguments for this request, every value checked against `ui.limits`."""
    if req.task not in TASK_CHOICES:
        raise APIError(400, f"task must be one of {', '.join(TASK_CHOICES)}", param="task", code="invalid_value")
    if req.n not in (None, 1):
        raise APIError(400, "only n=1 is supported: one answer per request", param="n", code="invalid_value")
    kw: dict[str, Any] = {"task": req.task, "user": user}
    try:
        if req.temperature is not None:
            kw["temperature"] = limits.check_temperature(req.temperature)
        if req.top_p is not None:
            limits.check_top_p(req.top_p)  # accepted for compatibility: sampling is set by temperature
        if req.k is not None:
            kw["k"] = limits.check_k(req.k)
        limit = req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
        if limit is not None:
            kw["max_tokens"] = limits.check_max_tokens(
                limit, "max_completion_tokens" if req.max_completion_tokens is not None else "max_tokens")
        if req.stop is not None and (stop := limits.check_stop(req.stop)):
            kw["stop"] = stop
    except limits.InvalidParam as exc:
        raise APIError(400, str(exc), param=exc.param, code="invalid_value") from None
    if req.conversation_id:
        kw["conversation_id"] = req.conversation_id
    try:  # only the names /v1/models lists: never a path or hub id from the network
        chosen = model_arg(bot, req.model)
    except UnknownModel as exc:
        raise APIError(404, str(exc), param="model", code="model_not_found") from None
    if chosen:
        kw["model"] = chosen
    if history:
        kw["history"] = history
    return kw


_END = object()


async def _events_from_pool(pool: ThreadPoolExecutor, start: Callable[[], Iterator[Any]]) -> AsyncIterator[Any]:
    """Run a blocking event stream on the pool and hand its events to the event loop as they come.

    When the client goes away the loop stops reading and the worker closes the stream at its
    next event, so the log marks the answer incomplete instead of generating for nobody.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    stop = threading.Event()

    def work() -> None:
        stream = start()
        try:
            for ev in stream:
                loop.call_soon_threadsafe(queue.put_nowait, ev)
                if stop.is_set():
                    break
        except BaseException as exc:  # handed to the reader, which reports it in-band
            loop.call_soon_threadsafe(queue.put_nowait, exc)
        finally:
            close = getattr(stream, "close", None)
            if close:
                close()
            loop.call_soon_threadsafe(queue.put_nowait, _END)

    loop.run_in_executor(pool, contextvars.copy_context().run, work)  # the request id goes with the work
    try:
        while (item := await queue.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


class _StopFilter:
    """Text deltas up to (not including) the first stop sequence, as OpenAI's API returns them.

    Generation already stops there; this also covers text the assistant appends afterwards
    (citation marks, the note on an unsupported answer).
    """

    def __init__(self, stop: list[str] | None):
        self.stop = stop or []
        self.text, self.sent, self.stopped = "", 0, False

    def feed(self, piece: str) -> str:
        if self.stopped or not self.stop:
            return "" if self.stopped else piece
        self.text += piece
        cut, self.stopped = cut_at_stop(self.text, self.stop)
        safe = len(cut) if self.stopped else len(cut) - held_back(cut, self.stop)
        out, self.sent = cut[self.sent:safe], max(self.sent, safe)
        return out

    def flush(self) -> str:
        if self.stopped or not self.stop:
            return ""
        cut, _ = cut_at_stop(self.text, self.stop)
        out, self.sent = cut[self.sent:], len(cut)
        return out


def _finish_reason(answer: Any, max_tokens: int | None) -> str:
    cut = answer.extra.get("cut") == "max_tokens" or (max_tokens and answer.timings.tokens_out >= max_tokens)
    return "length" if cut else "stop"


def _usage(answer: Any) -> dict[str, int]:
    """Completion tokens are the answer's, written or quoted (a quoted answer is text too)."""
    t = answer.timings
    return {"prompt_tokens": t.tokens_in, "completion_tokens": t.completion_tokens,
            "total_tokens": t.tokens_in + t.completion_tokens}


async def _sse(events: AsyncIterator[Any], cid: str, model: str, stop: list[str] | None,
               max_tokens: int | None, roots: Callable[[], list[str]]) -> AsyncIterator[str]:
    created = int(time.time())
    cutter = _StopFilter(stop)

    def chunk(delta: dict, finish: str | None = None, **extra) -> str:
        body = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
        return f"data: {json.dumps(body)}\n\n"

    yield chunk({"role": "assistant"})
    try:
        async for ev in events:
            if isinstance(ev, TextDelta) and ev.text and (text := cutter.feed(ev.text)):
                yield chunk({"content": text})
            elif isinstance(ev, Result):
                if tail := cutter.flush():
                    yield chunk({"content": tail})
                d = render.answer_dict(render.with_shown_paths(ev.answer, roots()))
                yield chunk({}, _finish_reason(ev.answer, max_tokens), sources=d["sources"],
                            conversation_id=d["conversation_id"], message_id=d["message_id"],
                            supported=d["supported"], usage=_usage(ev.answer))
    except Exception as exc:  # the status line is already sent: report the error in-band
        yield f"data: {json.dumps({'error': {'message': str(exc), 'type': type(exc).__name__}})}\n\n"
    yield "data: [DONE]\n\n"


def _completion(answer: Any, cid: str, model: str, stop: list[str] | None, max_tokens: int | None,
                roots: list[str]) -> dict[str, Any]:
    d = render.answer_dict(render.with_shown_paths(answer, roots))
    text, _ = cut_at_stop(answer.text, stop)
    return {
        "id": cid, "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                     "finish_reason": _finish_reason(answer, max_tokens)}],
        "usage": _usage(answer),
        "sources": d["sources"], "conversation_id": d["conversation_id"], "message_id": d["message_id"],
        "supported": d["supported"], "declined": d["declined"],
    }
