"""Generation through an OpenAI-compatible HTTP server (vLLM, TGI, llama.cpp server, OpenAI).

Moving generation to a GPU cluster is a configuration change: `backend = "openai"`,
`openai_base_url = "http://vllm:8000/v1"`, `generator = "<the served model name>"`.
The server applies the chat template.
"""
from __future__ import annotations

import json
import time
from typing import Iterator, Sequence

import httpx

from assistant.generation.base import GenerationStats, Messages, cut_at_stop


class OpenAICompatibleGenerator:
    def __init__(self, base_url: str, model: str, *, api_key: str = "", context_window: int = 0,
                 timeout_s: float = 600.0):
        self.base_url = base_url.rstrip("/")
        self.name = model
        self.api_key = api_key
        self._context_window = context_window or 8192
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout_s)

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
        body = {"model": self.name, "messages": messages, "max_tokens": max_new_tokens,
                "temperature": temperature, "stream": True, "stream_options": {"include_usage": True}}
        if stop:
            body["stop"] = list(stop)
        start = time.perf_counter()
        text = ""
        try:
            with self._client.stream("POST", "/chat/completions", json=body) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    raise RuntimeError(
                        f"Generation server {self.base_url} answered {resp.status_code}: {resp.text[:500]}"
                    )
                for line in resp.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    chunk = json.loads(data)
                    usage = chunk.get("usage") or {}
                    if usage:
                        stats.tokens_in = usage.get("prompt_tokens", stats.tokens_in)
                        stats.tokens_out = usage.get("completion_tokens", stats.tokens_out)
                    for choice in chunk.get("choices") or []:
                        piece = (choice.get("delta") or {}).get("content") or ""
                        if piece:
                            if not stats.ttft_ms:
                                stats.ttft_ms = (time.perf_counter() - start) * 1000
                            text += piece
                            yield piece
        except httpx.HTTPError as exc:
            raise RuntimeError(
                f"Cannot reach the generation server at {self.base_url} ({exc}). Is it running? "
                "Set ASSISTANT_OPENAI_BASE_URL, or ASSISTANT_BACKEND=local to generate in-process."
            ) from exc
        text, _ = cut_at_stop(text, stop)
        if not stats.tokens_out:
            stats.tokens_out = self.count_tokens(text)
        if not stats.tokens_in:
            stats.tokens_in = sum(self.count_tokens(m["content"]) for m in messages)
        stats.duration_ms = (time.perf_counter() - start) * 1000
