"""Question answering with citations, made trustworthy by the orchestrator rather than the model.

1. Retrieve; when nothing is relevant enough, decline without calling the model.
2. Put the passage(s) that best match the question, numbered [1].., into a prompt that fits.
3. Stream the model's words as they come (the first token waits for no check).
4. Check every sentence against the passage it cites (or the one that supports it best when it
   cites none); when no sentence is supported, say so and show the closest passages.
"""
from __future__ import annotations

import re
from typing import Iterator

from assistant import grounding
from assistant.tasks.base import Event, Result, Status, TaskContext, TaskRequest, TextDelta
from assistant.tasks.budget import (
    answer_room,
    closest_list,
    fit_text,
    key_sentences,
    passage_text,
    prompt_budget,
    rank_passages,
    relevance,
)
from assistant.tasks.streams import until_repeat, without_preamble
from assistant.types import Answer, Source
from foundation.text import has_cjk

# Measured on SmolLM2-135M-Instruct (7 questions, one passage each): the passage first and the
# instruction after it answered 6/7 right; a system prompt asking for citations 3/7 and it often
# echoed the passage header. So the model is not asked to cite one passage: the checks attribute.
INSTRUCTION_ONE = "Using only the text above, answer in one sentence: {question}"
INSTRUCTION_MANY = ("Using only the numbered texts above, answer in one or two sentences and end each "
                    "sentence with the number of the text it comes from, like [1]: {question}")
INSTRUCTION_ONE_ZH = "请只根据上面的文字，用一句话回答：{question}"
INSTRUCTION_MANY_ZH = "请只根据上面编号的文字，用一两句话回答，并在每句末尾标注来源编号，如 [1]：{question}"
# How a read-back of those instructions starts ("Using only the text above"): dropped from answers.
INSTRUCTION_ECHOES = tuple(re.split("[,，]", i)[0] for i in
                           (INSTRUCTION_ONE, INSTRUCTION_MANY, INSTRUCTION_ONE_ZH, INSTRUCTION_MANY_ZH))
STOP = ["\n\n\n", "\nQuestion:", "Question:", "\nQ:"]
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
    stream = ctx.generate_stream(messages, max_new_tokens=answer_room(ctx), temperature=req.temperature, stop=STOP)
    for piece in until_repeat(without_preamble(stream, req.text, INSTRUCTION_ECHOES)):
        parts.append(piece)
        yield TextDelta(piece)
    raw = "".join(parts)  # kept as streamed, so the final text equals the concatenated deltas
    text = raw.strip()

    checks = grounding.check_sentences(text, given, ctx.embed)
    cited_by_model = bool(grounding.parse_citations(text))
    if text and not cited_by_model:
        # Show the attributed citations in the text too, appended so the stream stays exact.
        nums = sorted({n for c in checks if c.supported for n in c.citations})
        if nums:
            marks = ("" if raw[-1:].isspace() else " ") + "".join(f"[{n}]" for n in nums)
            yield TextDelta(marks)
            raw += marks
    answer = Answer(text=raw.strip(), sources=sources, task="qa", question=req.text, standalone_query=query,
                    sentences=checks,
                    extra={"relevance": round(best, 4), "context_passages": len(given),
                           "cited_by_model": cited_by_model})
    if not text or not grounding.any_supported_claim(checks):
        # Quote from each passage the sentence closest to the question: the head of a passage
        # rarely holds the answer the model missed.
        note = f"\n\n{UNSUPPORTED_NOTE}\n{closest_list(sources, snippets=key_sentences(ctx, query, sources))}"
        yield TextDelta(note)
        answer.text = (raw + note).strip()
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
    if has_cjk(req.text):
        template = INSTRUCTION_ONE_ZH if len(passages) == 1 else INSTRUCTION_MANY_ZH
    else:
        template = INSTRUCTION_ONE if len(passages) == 1 else INSTRUCTION_MANY
    budget = prompt_budget(ctx) - ctx.count_tokens(template)
    question = fit_text(ctx, " ".join((req.text.strip() or req.query).split()), int(budget * QUESTION_SHARE))
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
        header = f"[{n}] " if len(passages) > 1 else ""
        body = fit_text(ctx, passage_text(source), per_passage - ctx.count_tokens(header) - 2)
        if not body:
            break
        given.append(body)
        blocks.append(header + body)
    user = "\n\n".join(blocks) + "\n\n" + template.format(question=question)
    return [*history, {"role": "user", "content": user}], given
