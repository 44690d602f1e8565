"""The task context the facade hands to a task: the workspace's index, one generator, timings kept.

`assistant.tasks.base.TaskContext` says what a task may use; this is the implementation over a real
workspace. The learning loop builds one too (`assistant.improve.prompts`), so the prompts it
trains on are budgeted with the same tokenizer and context window as the prompts it serves.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Collection, Iterator, Sequence

import numpy as np

from assistant.config import Config
from assistant.generation import GenerationStats, Generator
from assistant.timing import Timings
from assistant.types import Source

if TYPE_CHECKING:
    from index import DocumentIndex


class WorkspaceContext:
    """Retrieval, generation, token counts and embeddings for one answer; `timings` adds them up."""

    def __init__(self, index: DocumentIndex, config: Config, generator: Generator, task: str = "qa", *,
                 max_tokens: int | None = None, stop: Sequence[str] | None = None,
                 collections: Collection[str] | None = None):
        self.index = index
        self.config = config
        self.generator = generator
        self.task = task
        self.timings = Timings()
        self.max_tokens = max_tokens  # the caller's cap over all generation calls of one answer
        self.stop = list(stop or ())  # the caller's stop sequences, added to every call's own
        # What the asking user may read (None: everything). Every passage a task sees comes through
        # `retrieve` or `document_chunks`, so this one value keeps other collections out of every task.
        self.collections = None if collections is None else frozenset(collections)

    def retrieve(self, query: str, k: int, *, path_prefix: str | None = None,
                 file_types: Sequence[str] | None = None) -> list[Source]:
        t0 = time.perf_counter()
        try:
            return self.index.search(query, k, path_prefix=path_prefix, file_types=file_types,
                                     collections=self.collections)
        finally:
            self.timings.retrieval_ms += (time.perf_counter() - t0) * 1000

    def document_chunks(self, name: str) -> list[Source]:
        return self.index.document_chunks(name, self.collections)

    def mentions(self, term: str) -> int:
        return self.index.mentions(term, self.collections)

    def generate_stream(self, messages: list[dict[str, str]], *, max_new_tokens: int | None = None,
                        temperature: float | None = None, stop: Sequence[str] | None = None) -> Iterator[str]:
        call = GenerationStats()
        temp = self.config.temperature if temperature is None else temperature
        budget = max_new_tokens or self.config.max_new_tokens
        if self.max_tokens is not None:
            budget = min(budget, self.max_tokens - self.timings.tokens_out)
            if budget <= 0:
                return
        yield from self.generator.stream(messages, max_new_tokens=budget,
                                         temperature=temp, stop=[*(stop or ()), *self.stop] or None, stats=call,
                                         # code legitimately repeats lines; prose from a small model should not
                                         no_repeat_ngram=0 if self.task == "code" else self.config.no_repeat_ngram)
        self.timings.add_generation(call)

    def count_tokens(self, text: str) -> int:
        return self.generator.count_tokens(text)

    def context_window(self) -> int:
        return self.generator.context_window

    def embed(self, texts: list[str]) -> np.ndarray:
        return self.index.embed(texts)
