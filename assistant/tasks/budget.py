"""Shared by the tasks: fitting text into the model's context window and picking the best passages.

The prompt must never overflow the window (the model would fail or silently truncate), so every
piece (passages, history, the question itself) is trimmed to a token budget measured with the
context's own tokenizer.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from assistant.grounding import overlap
from assistant.tasks import rules
from assistant.tasks.base import TaskContext
from assistant.types import Source
from foundation.text import has_cjk
from index.doc_ranking import name_words, spelled_out

PROMPT_OVERHEAD = 48  # chat-template tokens around the messages (role markers, BOS, separators)
ELLIPSIS = " …"
NAMED_PAGE = 0.2  # rank_passages: the named page's lead (tuning set: 0.1 and 0.2 both took citations 0.742 -> 0.763)


def answer_room(ctx: TaskContext, max_new_tokens: int | None = None) -> int:
    """Tokens to leave for the answer: the configured maximum, but never more than half the window."""
    want = max_new_tokens or ctx.config.max_new_tokens
    return max(16, min(want, ctx.context_window() // 2))


def prompt_budget(ctx: TaskContext, max_new_tokens: int | None = None) -> int:
    """Tokens available for all prompt text once the answer and template overhead are set aside."""
    return max(32, ctx.context_window() - answer_room(ctx, max_new_tokens) - PROMPT_OVERHEAD)


def longest_fitting(size: int, fits: Callable[[int], bool]) -> int:
    """The largest n <= size for which `fits(n)` holds, `fits` being true up to some n and false
    after it (0 when only 0 fits): a binary search, as tokenizers are not linear in length."""
    lo, hi = 0, size
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def fit_text(ctx: TaskContext, text: str, max_tokens: int, *, keep: str = "head") -> str:
    """`text` cut to at most `max_tokens` tokens (keeping its head or its tail), marked with '…'."""
    if max_tokens <= 0:
        return ""
    if ctx.count_tokens(text) <= max_tokens:
        return text
    def part(n: int) -> str:
        return text[:n] if keep == "head" else text[len(text) - n:]  # (text[-0:] would be all of it)

    piece = part(longest_fitting(len(text), lambda n: ctx.count_tokens(part(n) + ELLIPSIS) <= max_tokens))
    if keep == "head":
        cut = piece.rfind(" ")
        piece = piece[:cut] if cut > len(piece) * 0.8 else piece
        return piece.rstrip() + ELLIPSIS
    return ELLIPSIS.strip() + " " + piece.lstrip()


def rank_passages(ctx: TaskContext, query: str, hits: Sequence[Source]) -> list[tuple[int, float]]:
    """Hits re-ranked for the question: embedding similarity plus lexical overlap with the query.

    Retrieval finds the document; inside it the passage that best matches the question decides
    whether a tiny model answers right, so this second look uses the full passage text.
    """
    if not hits:
        return []
    texts = [passage_text(h) for h in hits]
    vecs = np.asarray(ctx.embed([query] + texts), dtype=np.float32)
    cos = vecs[1:] @ vecs[0]
    lex = np.array([overlap(query, f"{h.title} {h.heading} {t}") for h, t in zip(hits, texts)])
    retr = np.array([max(0.0, 1.0 - 0.05 * i) for i in range(len(hits))])  # trust the retriever a little
    # A passage of the page the question names ("git tag" -> git-tag(1)) keeps the lead search gave it
    # (rule named-page-lead).
    named = np.array([bool(spelled_out(query, name_words(h.title, h.path))) for h in hits], dtype=np.float64)
    # The default embedder reads little Chinese: for a Chinese question, character bigrams lead.
    w_cos, w_lex = (0.25, 0.65) if has_cjk(query) else (0.55, 0.35)
    lead = NAMED_PAGE if "named-page-lead" not in rules.disabled(ctx.config.rules_off) else 0.0
    score = w_cos * cos + w_lex * lex + 0.10 * retr + lead * named
    return sorted(((i, float(s)) for i, s in enumerate(score)), key=lambda x: -x[1])


def passage_text(source: Source) -> str:
    return source.text or source.snippet


def relevance(ctx: TaskContext, query: str, hits: Sequence[Source]) -> float:
    """The best dense score among the hits; computed here when the retriever did not report one."""
    known = [h.dense_score for h in hits if h.dense_score is not None]
    if known:
        return max(known)
    if not hits:
        return 0.0
    vecs = np.asarray(ctx.embed([query] + [passage_text(h) for h in hits]), dtype=np.float32)
    return float(np.max(vecs[1:] @ vecs[0]))


def describe(source: Source) -> str:
    where = f" ({source.locator})" if source.locator else ""
    return f"{source.title or source.path}{where}"


def closest_list(sources: Sequence[Source], limit: int = 3) -> str:
    """Numbered lines "[n] title (locator): snippet"."""
    lines = []
    for n, s in enumerate(sources[:limit], 1):
        snippet = " ".join((s.snippet or s.text).split())
        snippet = snippet[:160] + ("…" if len(snippet) > 160 else "")
        lines.append(f"[{n}] {describe(s)}: {snippet}")
    return "\n".join(lines)
