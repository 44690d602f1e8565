"""The OpenAI-compatible HTTP API (`/v1/chat/completions`, `/v1/models`) and `/health`.

Any OpenAI client can talk to the assistant: the last user message is the question, earlier
user/assistant messages are the history (handed to the facade as `history=` when it accepts
one), and the reply carries the passages it cites in an extra `sources` field (the text cites
them as [1], [2]…) plus the logged `conversation_id`, which a client may send back to continue
the logged conversation. Extra request fields: `task`, `conversation_id`, `k`.
"""
from __future__ import annotations

import asyncio
import inspect
import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, AsyncIterator, Callable, Iterator

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from assistant.tasks import TASKS
from assistant.tasks.base import Result, TextDelta
from ui import render
from ui.model_choice import current_model, model_arg, model_choices
from ui.security import AccessPolicy, check_api_key

TASK_NAMES = ("auto", *TASKS)  # "auto" picks one of the registered tasks from the wording


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
    max_tokens: int | None = None
    user: str | None = None
    task: str = "qa"
    conversation_id: str | None = None
    k: int | None = None


def api_router(bot: Any, access: AccessPolicy, max_concurrent: int = 4) -> APIRouter:
    """Routes bound to one assistant; /v1 needs a bearer key whenever logins or keys are set.

    At most `max_concurrent` answers are generated at once; more wait their turn. On a small
    CPU machine running 8 at once is slower for everyone than 4 at a time (bench_serve.py).
    """
    router = APIRouter()
    # A fixed pool runs the answers; waiting requests hold no thread, only a place in its queue.
    workers = ThreadPoolExecutor(max_concurrent, thread_name_prefix="v1-answer")

    def require_key(request: Request) -> None:
        if not access.api_needs_key:
            return
        if not access.api_keys:
            raise HTTPException(401, "this server has logins but no API keys: start it with --api-key KEY")
        if not check_api_key(access.api_keys, request.headers.get("authorization")):
            raise HTTPException(401, "missing or wrong API key: send 'Authorization: Bearer KEY'",
                                headers={"WWW-Authenticate": "Bearer"})

    @router.get("/health")
    def health() -> dict:
        return {"status": "ok", "model": str(getattr(bot, "model_name", "")), "auth": access.auth_on}

    @router.get("/v1/models", dependencies=[Depends(require_key)])
    def models() -> dict:
        names = model_choices(bot)
        return {"object": "list", "data": [{"id": n, "object": "model", "created": 0, "owned_by": "domain-assistant"} for n in names]}

    @router.post("/v1/chat/completions", dependencies=[Depends(require_key)])
    async def chat_completions(req: ChatRequest):
        question, history = _split_messages(req.messages)
        kwargs = _ask_kwargs(bot, req, history)
        cid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        if req.stream:
            events = _events_from_pool(workers, lambda: bot.stream_events(question, **kwargs))
            return StreamingResponse(_sse(events, cid, req.model or _model_name(bot)),
                                     media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        try:
            answer = await asyncio.get_running_loop().run_in_executor(workers, lambda: bot.ask(question, **kwargs))
        except (ValueError, KeyError) as exc:  # empty question, unknown conversation
            raise HTTPException(400, str(exc).strip("'\"")) from exc
        return _completion(answer, cid, req.model or _model_name(bot))

    return router


def _split_messages(messages: list[ChatMessage]) -> tuple[str, list[dict[str, str]]]:
    last_user = max((i for i, m in enumerate(messages) if m.role == "user"), default=None)
    if last_user is None or not messages[last_user].text().strip():
        raise HTTPException(400, "messages must contain a non-empty user message (the question)")
    history = [{"role": m.role, "content": m.text()} for m in messages[:last_user] if m.role in ("user", "assistant")]
    return messages[last_user].text().strip(), history


def _ask_kwargs(bot: Any, req: ChatRequest, history: list[dict[str, str]]) -> dict[str, Any]:
    if req.task not in TASK_NAMES:
        raise HTTPException(400, f"task must be one of {', '.join(TASK_NAMES)}")
    kw: dict[str, Any] = {"task": req.task, "user": req.user}
    if req.conversation_id:
        kw["conversation_id"] = req.conversation_id
    if req.temperature is not None:
        kw["temperature"] = req.temperature
    if req.k:
        kw["k"] = req.k
    if req.model and req.model not in model_choices(bot) and req.model not in ("default", "domain-assistant"):
        raise HTTPException(404, f"model {req.model!r} is not served here; see /v1/models")
    chosen = model_arg(bot, req.model if req.model in model_choices(bot) else None)
    if chosen:
        kw["model"] = chosen
    if history and "history" in inspect.signature(bot.stream_events).parameters:
        kw["history"] = history  # older facades without a history argument answer standalone
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

    loop.run_in_executor(pool, work)
    try:
        while (item := await queue.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


async def _sse(events: AsyncIterator[Any], cid: str, model: str) -> AsyncIterator[str]:
    created = int(time.time())

    def chunk(delta: dict, finish: str | None = None, **extra) -> str:
        body = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
        return f"data: {json.dumps(body)}\n\n"

    yield chunk({"role": "assistant"})
    try:
        async for ev in events:
            if isinstance(ev, TextDelta) and ev.text:
                yield chunk({"content": ev.text})
            elif isinstance(ev, Result):
                d = render.answer_dict(ev.answer)
                yield chunk({}, "stop", sources=d["sources"], conversation_id=d["conversation_id"],
                            message_id=d["message_id"], supported=d["supported"])
    except Exception as exc:  # the status line is already sent: report the error in-band
        yield f"data: {json.dumps({'error': {'message': str(exc), 'type': type(exc).__name__}})}\n\n"
    yield "data: [DONE]\n\n"


def _completion(answer: Any, cid: str, model: str) -> dict[str, Any]:
    d = render.answer_dict(answer)
    t = answer.timings
    return {
        "id": cid, "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": t.tokens_in, "completion_tokens": t.tokens_out, "total_tokens": t.tokens_in + t.tokens_out},
        "sources": d["sources"], "conversation_id": d["conversation_id"], "message_id": d["message_id"],
        "supported": d["supported"], "declined": d["declined"],
    }


def _model_name(bot: Any) -> str:
    return current_model(bot)
