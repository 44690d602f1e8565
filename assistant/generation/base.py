"""One interface for every way of generating text: in-process transformers or an HTTP server."""
from __future__ import annotations

from typing import Iterator, Protocol, Sequence

from assistant.timing import Timings

Messages = list[dict[str, str]]


class GenerationStats(Timings):
    """The `Timings` of one generate call, filled in by a backend while it streams.

    Backends call the call's generation time `duration_ms` (their name for `generation_ms`).
    """

    @property
    def duration_ms(self) -> float:
        return self.generation_ms

    @duration_ms.setter
    def duration_ms(self, value: float) -> None:
        self.generation_ms = value


class Generator(Protocol):
    name: str

    def stream(self, messages: Messages, *, max_new_tokens: int, temperature: float = 0.0,
               stop: Sequence[str] | None = None, stats: GenerationStats | None = None,
               no_repeat_ngram: int = 0) -> Iterator[str]:
        """Yield the answer's text as it is produced (the chat template is the backend's job)."""
        ...

    def count_tokens(self, text: str) -> int: ...

    @property
    def context_window(self) -> int: ...


def cut_at_stop(text: str, stop: Sequence[str] | None) -> tuple[str, bool]:
    """Truncate `text` at the first stop sequence; report whether one was found."""
    if not stop:
        return text, False
    cuts = [text.find(s) for s in stop if s and s in text]
    if not cuts:
        return text, False
    return text[: min(cuts)], True


def held_back(text: str, stop: Sequence[str] | None) -> int:
    """How many trailing characters could be the start of a stop sequence (not yet safe to emit)."""
    longest = 0
    for s in stop or ():
        for n in range(min(len(s) - 1, len(text)), 0, -1):
            if text.endswith(s[:n]):
                longest = max(longest, n)
                break
    return longest


def plain_chat_prompt(messages: Messages) -> str:
    """The prompt for a model without a chat template: "role: content" turns, then "assistant:"."""
    return "\n\n".join(f"{m['role']}: {m['content']}" for m in messages) + "\n\nassistant:"


def unreleased(text: str, sent: int, stop: Sequence[str] | None) -> str:
    """At the end of a stream: what `releasable` held back that the finished text still has
    (a tail that could have grown into a stop sequence but did not), up to any stop sequence."""
    final, _ = cut_at_stop(text, stop)
    return final[sent:]


def releasable(text: str, sent: int, stop: Sequence[str] | None) -> tuple[str, int, bool]:
    """What of the text generated so far may be streamed now: (new piece, new sent, stopped).

    Text up to a stop sequence is released; a tail that could still grow into one is held back.
    """
    cut, stopped = cut_at_stop(text, stop)
    safe = len(cut) if stopped else len(cut) - held_back(cut, stop)
    return (cut[sent:safe], safe, stopped) if safe > sent else ("", sent, stopped)
