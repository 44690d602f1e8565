"""Test doubles for the tasks: a real TaskContext over passages held in memory, a fixed-reply generator.

They live with the tests, not in the product: nothing the assistant runs needs them. Tests and
`benchmarks/bench_code.py` use `MemoryContext` to exercise the task logic with the real generator
and embedder but no ingest: retrieval is exact cosine search over the given passages, generation is any object with
the `Generator` interface (`stream`, `count_tokens`, `context_window`).
"""
from __future__ import annotations

import functools
from dataclasses import replace
from typing import Any, Iterator, Sequence

import numpy as np

from assistant.config import Config
from assistant.types import Source


class MemoryContext:
    def __init__(self, sources: Sequence[Source], generator: Any, embedder: Any, config: Config | None = None):
        self.config = config or Config()
        self.generator = generator
        self._embedder = embedder  # a sentence_transformers.SentenceTransformer
        self.sources = list(sources)
        self.calls: list[list[dict[str, str]]] = []  # the prompts sent, for inspection
        self._vecs = self.embed([s.text or s.snippet for s in self.sources]) if self.sources else None

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self._embedder.encode(list(texts), normalize_embeddings=True,
                                                show_progress_bar=False), dtype=np.float32)

    def mentions(self, term: str) -> int:
        """Passages that hold `term` as written (case aside): the in-memory twin of `DocumentIndex.mentions`."""
        from index.vocabulary import mentioned_in

        return sum(mentioned_in(term, f"{s.title} {s.heading} {s.text or s.snippet}") for s in self.sources)

    def retrieve(self, query: str, k: int, *, path_prefix: str | None = None,
                 file_types: Sequence[str] | None = None) -> list[Source]:
        if self._vecs is None:
            return []
        scores = self._vecs @ self.embed([query])[0]
        hits = []
        for rank, i in enumerate(np.argsort(-scores)):
            s = self.sources[int(i)]
            if path_prefix and not s.path.startswith(path_prefix):
                continue
            if file_types and not s.path.endswith(tuple(file_types)):
                continue
            hits.append(replace(s, score=float(scores[i]), dense_score=float(scores[i]), rank=len(hits) + 1))
            if len(hits) == k:
                break
        return hits

    def document_chunks(self, name: str) -> list[Source]:
        key = name.lower().strip()
        chunks = [s for s in self.sources
                  if key and (key == s.path.lower() or s.path.lower().endswith("/" + key)
                              or key == s.title.lower() or key in s.title.lower())]
        if not chunks:
            raise KeyError(name)
        path = chunks[0].path
        return [s for s in self.sources if s.path == path]

    def generate_stream(self, messages: list[dict[str, str]], *, max_new_tokens: int | None = None,
                        temperature: float | None = None, stop: Sequence[str] | None = None) -> Iterator[str]:
        self.calls.append(messages)
        temp = self.config.temperature if temperature is None else temperature
        yield from self.generator.stream(messages, max_new_tokens=max_new_tokens or self.config.max_new_tokens,
                                    temperature=temp, stop=stop)

    def count_tokens(self, text: str) -> int:
        return self.generator.count_tokens(text)

    def context_window(self) -> int:
        return min(self.generator.context_window, self.config.context_window or self.generator.context_window)


class FixedGenerator:
    """A generator that always answers `reply` (for testing task logic around the model)."""

    def __init__(self, reply: str | Sequence[str], context_window: int = 2048):
        self.replies = [reply] if isinstance(reply, str) else list(reply)
        self.context_window = context_window
        self.prompts: list[list[dict[str, str]]] = []

    def stream(self, messages, *, max_new_tokens: int, temperature: float = 0.0, stop=None) -> Iterator[str]:
        self.prompts.append(messages)
        reply = self.replies[min(len(self.prompts), len(self.replies)) - 1]
        for word in reply.split(" "):
            yield word + " "

    def count_tokens(self, text: str) -> int:
        return len(text.split()) + len(text) // 6  # rough but monotone, enough for budgeting tests


@functools.lru_cache(maxsize=1)
def default_models(device: str = "cpu"):
    """(generator, embedder): the bundled SmolLM2 and all-MiniLM-L6-v2, loaded once per process."""
    from sentence_transformers import SentenceTransformer  # heavy: loaded only by the tests that need models

    from assistant.generation.local import LocalGenerator
    from foundation.model_paths import resolve_embedder, resolve_generator

    embedder = SentenceTransformer(resolve_embedder("all-MiniLM-L6-v2"), device=device)
    generator = LocalGenerator(resolve_generator("smollm2"), name="smollm2", device=device)
    return generator, embedder
