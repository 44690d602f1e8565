"""Guards on a token stream: a tiny greedy model loops ("The environment is ... The environment is ..."),
so the orchestrator stops it at the first repeated sentence instead of spending tokens on the loop."""
from __future__ import annotations

import re
from typing import Iterator, Sequence

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


def until_foreign_term(stream: Iterator[str], passage: str) -> Iterator[str]:
    """Pass pieces through unchanged, and stop reading once the sentence being written holds a
    number or identifier (an option, a snake_case name, a path) that `passage` does not.

    Such a sentence fails the support check whatever follows (`grounding.foreign_terms`), so the
    rest of it is not worth the model's time: on the default model a sentence costs ~1 s, and an
    answer whose two candidate windows both fail wrote two of them before the quote was shown.
    Only whole words count (the text up to the last space): "90" may still become "900".
    Closing `stream` lets the generator halt the model.
    """
    text = ""
    try:
        for piece in stream:
            yield piece
            text += piece
            sentences = grounding.split_sentences(text)
            writing = sentences[-1] if sentences else ""
            whole = writing.rsplit(None, 1)[0] if len(writing.split()) > 1 else ""
            if whole and grounding.foreign_terms(whole, passage):
                return
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


# What SmolLM2-class models sometimes put before the answer: their own name or a role label (the
# chat template's default system prompt names the model), or the instruction read back.
_LABELS = ("smollm", "smollm2", "assistant", "answer", "回答", "答")
_LABEL = re.compile(r"^\s*(?:" + "|".join(_LABELS) + r")\s*[:：]\s*", re.IGNORECASE)
_LABEL_STARTS = tuple(label + colon for label in _LABELS for colon in ":：")
_SENTENCE_END = re.compile(r"[.!?。！？]\s|[.!?。！？]$|\n")
_MAX_HOLD = 300  # characters: an echo that long is given up on and passed through


def _strip_preamble(text: str, question: str, echoes: tuple[str, ...], final: bool) -> tuple[str, bool] | None:
    """(`text` without a leading label or instruction echo, whether one was removed); None while
    that cannot be decided yet. `echoes` are the instructions' openings, lower-cased."""
    rest, removed = text.lstrip(), False
    while (m := _LABEL.match(rest)) is not None:
        rest, removed = rest[m.end():], True
    low = rest.lower()
    if any(low.startswith(e) for e in echoes):
        tail = " ".join(question.split())[-12:]
        at = rest.find(tail) if tail else -1
        if at >= 0:  # the echo ends with the question read back (quotes and all)
            return rest[at + len(tail):].lstrip(" \"'”」：:\n"), True
        if not final and len(rest) <= min(_MAX_HOLD, 80 + 2 * len(question)):
            return None  # the question may still be read back after the instruction
        end = _SENTENCE_END.search(rest)
        if end is not None:  # no question read back: the echo is the first sentence
            return rest[end.end():].lstrip(), True
        return ("", True) if final or len(rest) > _MAX_HOLD else None
    if not final and (not low.strip() or any(c.startswith(low) for c in (*_LABEL_STARTS, *echoes))):
        return None  # could still become a label or an echo: hold these few characters
    return (rest, True) if removed else (text, False)


def without_preamble(stream: Iterator[str], question: str, echoes: Sequence[str]) -> Iterator[str]:
    """Drop a leading "SmolLM:"-style label, or a read-back of an instruction starting with one of
    `echoes` (the prompt's own instructions, up to their first comma), from an answer stream.

    Only the first characters are held, and only while they could still turn into such a
    preamble, so an answer starting "The ..." streams at once. Closing this closes `stream`.
    """
    echoes = tuple(e.lower() for e in echoes)
    held, passing, trim = "", False, False
    try:
        for piece in stream:
            if not passing:
                held += piece
                decided = _strip_preamble(held, question, echoes, final=False)
                if decided is None:
                    continue
                passing, (piece, trim) = True, decided
            if trim:  # after a removed preamble, the answer starts at its first visible character
                piece = piece.lstrip()
                trim = not piece
            if piece:
                yield piece
        if not passing and held:
            out, _ = _strip_preamble(held, question, echoes, final=True)
            if out:
                yield out
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()
