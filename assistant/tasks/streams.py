"""Guards on a token stream: a tiny greedy model loops ("The environment is ... The environment is ..."),
so the orchestrator stops it at the first repeated sentence instead of spending tokens on the loop."""
from __future__ import annotations

import re
from typing import Iterator

from assistant import grounding


def _norm(sentence: str) -> str:
    return re.sub(r"\W+", " ", grounding.strip_citations(sentence).lower()).strip()


def until_repeat(stream: Iterator[str], *, min_chars: int = 12) -> Iterator[str]:
    """Pass pieces through unchanged, and stop reading once a finished sentence repeats an earlier one.

    Pieces are never held back (the first token must not wait); the repeated sentence has then
    been passed on once, which is the price of streaming without delay. Closing `stream` lets the
    generator halt the model.
    """
    text = ""
    seen: set[str] = set()
    checked = 0
    try:
        for piece in stream:
            yield piece
            text += piece
            sentences = grounding.split_sentences(text)
            complete = sentences[:-1]  # the last one may still grow
            for s in complete[checked:]:
                key = _norm(s)
                if len(key) >= min_chars and key in seen:
                    return
                seen.add(key)
            checked = len(complete)
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()


def repeated_tail_cut(text: str) -> str:
    """`text` without sentences that repeat an earlier one (for text generated off-stream)."""
    out, seen = [], set()
    for s in grounding.split_sentences(text):
        key = _norm(s)
        if len(key) >= 12 and key in seen:
            break
        seen.add(key)
        out.append(s)
    return " ".join(out)
