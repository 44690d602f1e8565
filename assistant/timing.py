"""Where an answer's time went: one `Timings` record for the backends, the `Answer` and the log.

A backend fills one in per generate call (`GenerationStats`), the task context adds the calls of
one answer together with the retrieval time, and the facade adds the first-token and total times
the user saw. The log stores the same record in its message columns (`assistant.log.records`).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Timings:
    retrieval_ms: float = 0.0  # search (dense + keyword + rerank), all calls of one answer
    ttft_ms: float = 0.0  # to the first token: of one generate call, or of the whole answer as the user saw it
    generation_ms: float = 0.0  # the model's own time
    total_ms: float = 0.0  # the whole answer, question in to last check done
    tokens_in: int = 0
    tokens_out: int = 0  # written by the model
    # the answer's text as the caller got it, written or quoted (by the model's tokenizer): what an
    # OpenAI-style API reports as completion tokens (a quoted answer is text the model did not write)
    tokens_answer: int = 0

    @property
    def completion_tokens(self) -> int:
        """The answer's tokens as usage and metrics report them: `tokens_answer`, or what the model
        wrote where the answer's text was not counted (a record made outside `Assistant.stream_events`)."""
        return self.tokens_answer or self.tokens_out

    @property
    def tokens_per_s(self) -> float:
        return self.tokens_out / (self.generation_ms / 1000) if self.generation_ms else 0.0

    def add_generation(self, call: Timings) -> None:
        """Count one more generate call of the same answer (its first token is the first call's)."""
        if not self.ttft_ms:
            self.ttft_ms = call.ttft_ms
        self.tokens_in += call.tokens_in
        self.tokens_out += call.tokens_out
        self.generation_ms += call.generation_ms
