"""Training examples in exactly the shape the QA task sends to the model.

The served model only ever sees "passage + instruction + question" (see `assistant.tasks.qa`),
so a model tuned on bare questions would learn a format it is never asked in. This module
replays the QA task's own steps (`qa.plan`: retrieve, relevance gate, re-rank, narrow; `build_messages`) and keeps
the messages it would have sent; the accepted answer becomes the assistant's reply.
"""
from __future__ import annotations

from typing import Any

from assistant.context import WorkspaceContext
from index.collections import SHARED
from assistant.tasks.base import TaskRequest
from assistant.tasks.qa import build_messages, plan


def qa_messages(bot, question: str, *, model: str | None = None) -> list[dict[str, str]] | None:
    """The messages the QA task would send for `question`, or None when it would decline unasked."""
    # As served (same budget, same tokenizer), from `shared` passages only: what the prompt holds is learnt.
    ctx = WorkspaceContext(bot.index, bot.config, bot.generator(model), collections={SHARED})
    query = " ".join(question.split())
    request = TaskRequest(text=query, query=query, k=bot.config.top_k)
    found = plan(ctx, request)
    if found is None or not found.evidence or found.evidence[0].score < bot.config.min_evidence:
        return None
    messages, _given = build_messages(ctx, request, [found.evidence[0]])
    return messages


def training_record(bot, question: str, answer: str, *, model: str | None = None) -> tuple[dict[str, Any], str]:
    """A `{"messages": [...]}` SFT record and its format: "rag" (as served) or "closed_book".

    A question the QA task declines before calling the model (nothing relevant indexed) cannot
    be learnt in the served format, so it is kept closed-book: it still teaches the fact.
    """
    messages = qa_messages(bot, question, model=model)
    if messages is None:
        return {"messages": [{"role": "user", "content": question},
                             {"role": "assistant", "content": answer}]}, "closed_book"
    return {"messages": [*messages, {"role": "assistant", "content": answer}]}, "rag"
