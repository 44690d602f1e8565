"""Question answering with citations, made trustworthy by the orchestrator rather than the model.

1. Retrieve; when nothing is relevant enough, decline without calling the model.
2. Put the passage(s) that best match the question, numbered [1].., into a prompt that fits.
3. Stream the model's words as they come (the first token waits for no check).
4. Check every sentence against the passage it cites (or the one that supports it best when it
   cites none); when no sentence is supported, say so and show the closest passages.
"""
from __future__ import annotations

from typing import Iterator

from assistant import grounding
from assistant.tasks.base import Event, Result, Status, TaskContext, TaskRequest, TextDelta
from assistant.tasks.budget import (
    answer_room,
    closest_list,
    describe,
    fit_text,
    passage_text,
    prompt_budget,
    rank_passages,
    relevance,
)
from assistant.types import Answer, Source

SYSTEM = (
    "You answer questions using only the numbered passage(s) below. "
    "Answer in one or two short sentences, with the facts as the passage states them, "
    "and end each sentence with the number of the passage it comes from, like [1]. "
    "If the passage does not contain the answer, say you don't know."
)
DECLINE = "The documents do not seem to contain an answer to this."
UNSUPPORTED_NOTE = ("Note: the documents may not support this answer; "
                    "check it against the closest passages:")
HISTORY_SHARE = 0.2  # at most this share of the prompt budget goes to earlier turns
QUESTION_SHARE = 0.25  # an over-long question is trimmed to this share


def run(ctx: TaskContext, req: TaskRequest) -> Iterator[Event]:
    query = (req.query or req.text).strip()
    if not query:
        raise ValueError("empty question: type a question about your documents")
    yield Status("searching the documents")
    hits = ctx.retrieve(query, req.k, path_prefix=req.path_prefix, file_types=req.file_types)
    best = relevance(ctx, query, hits)
    if not hits or best < ctx.config.min_relevance:
        yield from _decline(req, hits, best)
        return

    ranked = rank_passages(ctx, query, hits)
    n_ctx = max(1, min(ctx.config.context_passages, len(hits)))
    chosen = [i for i, _ in ranked[:n_ctx]]
    sources = [hits[i] for i in chosen] + [h for i, h in enumerate(hits) if i not in chosen]
    messages, given = build_messages(ctx, req, sources[:n_ctx])

    parts: list[str] = []
    for piece in ctx.generate_stream(messages, max_new_tokens=answer_room(ctx), temperature=req.temperature):
        parts.append(piece)
        yield TextDelta(piece)
    text = "".join(parts).strip()

    checks = grounding.check_sentences(text, given, ctx.embed)
    answer = Answer(text=text, sources=sources, task="qa", question=req.text, standalone_query=query,
                    sentences=checks,
                    extra={"relevance": round(best, 4), "context_passages": len(given),
                           "cited_by_model": bool(grounding.parse_citations(text))})
    if not text or not grounding.any_supported_claim(checks):
        note = f"\n\n{UNSUPPORTED_NOTE}\n{closest_list(sources)}"
        yield TextDelta(note)
        answer.text = text + note
        answer.declined = True
        answer.extra["unsupported"] = True
    yield Result(answer)


def _decline(req: TaskRequest, hits: list[Source], best: float) -> Iterator[Event]:
    text = DECLINE
    if hits:
        text += " The closest passages are:\n" + closest_list(hits)
    yield TextDelta(text)
    yield Result(Answer(text=text, sources=hits, task="qa", question=req.text,
                        standalone_query=req.query or req.text, declined=True,
                        extra={"relevance": round(best, 4), "reason": "below min_relevance" if hits else "no hits"}))


def build_messages(ctx: TaskContext, req: TaskRequest, passages: list[Source]) -> tuple[list[dict[str, str]], list[str]]:
    """The chat messages and the passage texts actually given, all within the prompt budget."""
    budget = prompt_budget(ctx) - ctx.count_tokens(SYSTEM)
    question = fit_text(ctx, req.text.strip() or req.query, int(budget * QUESTION_SHARE))
    budget -= ctx.count_tokens(question) + 8

    history: list[dict[str, str]] = []
    if req.history and req.query.strip() != req.text.strip():  # a follow-up: the last exchange helps
        share = int(budget * HISTORY_SHARE)
        for turn in reversed(req.history[-2:]):
            content = fit_text(ctx, turn.get("content", ""), share // 2, keep="head")
            if content:
                history.insert(0, {"role": turn.get("role", "user"), "content": content})
        budget -= sum(ctx.count_tokens(m["content"]) + 4 for m in history)

    given: list[str] = []
    blocks: list[str] = []
    per_passage = max(16, budget // max(1, len(passages)))
    for n, source in enumerate(passages, 1):
        header = f"[{n}] {describe(source)}\n"
        body = fit_text(ctx, passage_text(source), per_passage - ctx.count_tokens(header))
        if not body:
            break
        given.append(body)
        blocks.append(header + body)
    user = "\n\n".join(blocks) + f"\n\nQuestion: {question}"
    messages = [{"role": "system", "content": SYSTEM}, *history, {"role": "user", "content": user}]
    return messages, given
