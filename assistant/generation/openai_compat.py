"""Generation through an OpenAI-compatible HTTP server (vLLM, TGI, llama.cpp server, OpenAI).

Moving generation to a GPU cluster is a configuration change: `backend = "openai"`,
`openai_base_url = "http://vllm:8000/v1"`, `generator = "<the served model name>"`.
The server applies the chat template. The `openai` client parses the event stream, retries
refused connections and 429/5xx answers, and types its errors; we turn those into one line that
names the server.
"""
from __future__ import annotations

import time
from typing import Iterator, Sequence

import openai

from assistant.generation.base import GenerationStats, Messages, cut_at_stop

RETRIES = 2  # the client's own backoff: a restarting server gets a second and third chance


class OpenAICompatibleGenerator:
    def __init__(self, base_url: str, model: str, *, api_key: str = "", context_window: int = 0,
                 timeout_s: float = 600.0):
        self.base_url = base_url.rstrip("/")
        self.name = model
        self.api_key = api_key
        self._context_window = context_window or 8192
        # A local server usually wants no key, but the client insists on one: any string does.
        self._client = openai.OpenAI(base_url=self.base_url, api_key=api_key or "none", timeout=timeout_s,
                                     max_retries=RETRIES)

    @property
    def context_window(self) -> int:
        return self._context_window

    def count_tokens(self, text: str) -> int:
        # The server's tokenizer is not at hand; ~4 characters a token over-counts CJK a little,
        # which only makes the prompt budget safer.
        return max(1, len(text) // 4 + text.count(" ") // 8) if text else 0

    def stream(self, messages: Messages, *, max_new_tokens: int, temperature: float = 0.0,
               stop: Sequence[str] | None = None, stats: GenerationStats | None = None,
               no_repeat_ngram: int = 0) -> Iterator[str]:
        # no_repeat_ngram is a local-decoding guard; servers have their own penalties.
        stats = stats if stats is not None else GenerationStats()
        start = time.perf_counter()
        text = ""
        try:
            with self._client.chat.completions.create(
                model=self.name, messages=messages, max_tokens=max_new_tokens, temperature=temperature,
                stream=True, stream_options={"include_usage": True}, **({"stop": list(stop)} if stop else {}),
            ) as chunks:
                for chunk in chunks:
                    if chunk.usage:
                        stats.tokens_in = chunk.usage.prompt_tokens or stats.tokens_in
                        stats.tokens_out = chunk.usage.completion_tokens or stats.tokens_out
                    for choice in chunk.choices or []:
                        piece = (choice.delta.content if choice.delta else None) or ""
                        if piece:
                            if not stats.ttft_ms:
                                stats.ttft_ms = (time.perf_counter() - start) * 1000
                            text += piece
                            yield piece
        except openai.APIConnectionError as exc:
            raise RuntimeError(
                f"Cannot reach the generation server at {self.base_url} ({exc}). Is it running? "
                "Set ASSISTANT_OPENAI_BASE_URL, or ASSISTANT_BACKEND=local to generate in-process."
            ) from exc
        except openai.APIStatusError as exc:
            raise RuntimeError(
                f"Generation server {self.base_url} answered {exc.status_code}: {str(exc.message)[:500]}"
            ) from exc
        text, _ = cut_at_stop(text, stop)
        if not stats.tokens_out:
            stats.tokens_out = self.count_tokens(text)
        if not stats.tokens_in:
            stats.tokens_in = sum(self.count_tokens(m["content"]) for m in messages)
        stats.duration_ms = (time.perf_counter() - start) * 1000
