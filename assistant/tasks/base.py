"""What every task (qa, summarize, code) receives and emits.

A task is a generator: it reads what it needs through `TaskContext` (retrieval, generation,
token counting, embeddings) and yields `TextDelta`s as the answer streams, `Status` lines for
long work, and one final `Result` holding the `Answer`. The facade (`assistant.core`) owns
conversation history, logging and timing; tasks own prompting and checking.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Protocol, Sequence

import numpy as np

from assistant.config import Config
from assistant.types import Answer, Source


@dataclass
class TaskRequest:
    text: str  # what the user typed
    query: str  # the standalone query (rewritten from history for follow-ups)
    history: list[dict[str, str]] = field(default_factory=list)  # earlier turns, oldest first
    k: int = 4
    temperature: float | None = None
    tests: str = ""  # code task: user-supplied tests to run against the generated code
    path_prefix: str | None = None
    file_types: Sequence[str] | None = None


@dataclass
class TextDelta:
    text: str


@dataclass
class Status:
    text: str


@dataclass
class Result:
    answer: Answer


Event = TextDelta | Status | Result


class TaskContext(Protocol):
    config: Config

    def retrieve(self, query: str, k: int, *, path_prefix: str | None = None,
                 file_types: Sequence[str] | None = None) -> list[Source]: ...

    def document_chunks(self, name: str) -> list[Source]:
        """All passages of one document in order; raises KeyError when no document matches."""
        ...

    def mentions(self, term: str) -> int:
        """How many passages the asker may read mention `term` (a few at most; 0: none does)."""
        ...

    def generate_stream(self, messages: list[dict[str, str]], *, max_new_tokens: int | None = None,
                        temperature: float | None = None, stop: Sequence[str] | None = None) -> Iterator[str]: ...

    def count_tokens(self, text: str) -> int: ...

    def context_window(self) -> int: ...

    def embed(self, texts: list[str]) -> np.ndarray:
        """L2-normalised embeddings (rows), for grounding checks."""
        ...


def generate_text(ctx: TaskContext, messages: list[dict[str, str]], **kwargs) -> str:
    return "".join(ctx.generate_stream(messages, **kwargs))


TaskRunner = "Callable[[TaskContext, TaskRequest], Iterator[Event]]"
