"""Question answering with citations, made trustworthy by the orchestrator rather than the model.

1. Retrieve; when nothing is relevant enough, decline without calling the model. Decline too by the
   rules of `assistant.tasks.answerability`: a term the readable documents never mention, a name
   no window mentions, a quantity asked for that no window states.
2. Narrow: rank the sentences of the best passages by how well they answer, and hand the model
   only the window around the best one (`assistant.tasks.evidence`): the 135M default model
   answers about half of factual questions right from ~120 words, and worse from more.
3. Generate, and check each sentence as it completes against that window (numbers, options and
   identifiers must occur in it); only checked sentences reach the user, and not those that say
   nothing (the question or the instruction read back, a circular one). Under them, the window
   itself is quoted in whole sentences, the one that answers in bold.
4. When the model's first sentence is not supported, try the next passage's window; when no
   candidate is, quote the best sentence itself (cited): the user sees the document's words
   rather than an invention followed by a warning. The model is asked only when windows are
   close (`_close_call`): a window clearly ahead of the others is quoted at once.
5. Chinese questions get the documents' own sentences: the default model cannot write Chinese.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Callable, Iterator

from assistant import grounding
from assistant.tasks.base import Event, Result, Status, TaskContext, TaskRequest, TextDelta
from assistant.tasks.budget import closest_list, fit_text, passage_text, prompt_budget, rank_passages, relevance
from assistant.tasks import answerability, rules
from assistant.tasks.evidence import Evidence, narrow
from assistant.tasks.streams import until_foreign_term, until_repeat, without_preamble
from assistant.types import Answer, SentenceCheck, Source
from index.doc_ranking import bare_title
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
ANSWER_TOKENS = 96  # a one- or two-sentence answer; longer ones are where the small model drifts
MAX_ANSWER_SENTENCES = 2
# A quote is the evidence window (the best sentence and its neighbours), not the sentence alone:
# on the dev set the window held the answer twice as often (51 vs 26 of 103). Capped so a quote
# stays an answer rather than a page.
QUOTE_WORDS = 70
MAX_ANSWER_WORDS = 80  # answer and quote together: an answer, not a page
QUOTE_CHUNK_WORDS = 6
# A line that carries on a sentence begun before it ("$ git commit --amend" + "which will replace
# the old commit ..."): a quote does not start there when it can start later.
_CONTINUES = re.compile(r"^(?:[(,;]|(?:which|and|or|but|so|that|where|whereas|while|because|with|without|to|for|of)\b)")


@dataclass
class Plan:
    """What the QA task will hand the model: the ordered sources and the narrowed evidence."""

    sources: list[Source]
    evidence: list[Evidence]
    relevance: float


def plan(ctx: TaskContext, req: TaskRequest) -> Plan | None:
    """Retrieve, re-rank and narrow; None when nothing relevant enough was found (decline)."""
    query = (req.query or req.text).strip()
    hits = ctx.retrieve(query, req.k, path_prefix=req.path_prefix, file_types=req.file_types)
    best = relevance(ctx, query, hits)
    if not hits or best < ctx.config.min_relevance:
        return Plan(hits, [], best) if hits else None
    order = [i for i, _ in rank_passages(ctx, query, hits)]
    sources = [hits[i] for i in order]
    if not ctx.config.narrow_evidence:
        n_ctx = max(1, min(ctx.config.context_passages, len(sources)))
        whole = [Evidence(i, passage_text(s), "", 1.0) for i, s in enumerate(sources[:n_ctx])]
        return Plan(sources, whole, best)
    return Plan(sources, narrow(ctx, question_for_evidence(req), sources,
                                max_sources=ctx.config.evidence_sources), best)


def question_for_evidence(req: TaskRequest) -> str:
    """The words to match sentences against: the standalone query when there is history."""
    return (req.query or req.text) if req.history else req.text or req.query


def run(ctx: TaskContext, req: TaskRequest) -> Iterator[Event]:
    if not (req.query or req.text).strip():
        raise ValueError("empty question: type a question about your documents")
    yield Status("searching the documents")
    off = rules.disabled(ctx.config.rules_off)
    found = plan(ctx, req)
    chinese = has_cjk(req.text)
    gate = ctx.config.min_evidence_cjk if chinese else ctx.config.min_evidence
    if found is not None and found.evidence:
        verdict, found.evidence = answerability.judge(
            question_for_evidence(req), found.evidence, ctx.mentions,
            vocabulary=ctx.config.decline_by_vocabulary, in_windows=ctx.config.match_named_terms,
            off=off, page_text=_page_texts(ctx, found.sources))
        if verdict is not None:
            yield from _decline(req, found.sources, found.relevance, verdict.rule, note=verdict.note)
            return
    if found is None or not found.evidence or found.evidence[0].score < gate:
        yield from _decline(req, found.sources if found else [], found.relevance if found else 0.0,
                            "no hits" if found is None else ("below min_relevance" if not found.evidence
                                                             else "no sentence answers it"))
        return
    if chinese and not ctx.config.generate_cjk:
        yield from _quote(req, found, reason="chinese", off=off)
        return
    close = _close_call(ctx, found)
    for n, ev in enumerate(found.evidence[:ctx.config.answer_candidates] if close else []):
        sources = _cited_first(found.sources, ev.source)
        checks: list[SentenceCheck] = []
        for event in _checked_answer(ctx, req, ev, checks):
            yield event
        if checks:
            answer = _answer(req, found, sources, checks, candidate=n + 1)
            if ctx.config.quote_evidence:
                quote = _evidence_quote(ev, answer.text, _page_name(req.text, sources[0], answer.text, off))
                if quote:
                    yield TextDelta(quote)
                    answer.text += quote
                    answer.sentences.append(SentenceCheck(grounding.strip_citations(quote.replace("**", "")).strip(" >\n"),
                                                         [1], True, 1.0))
            yield Result(answer)
            return
    if found.evidence[0].score >= ctx.config.min_quote:
        yield from _quote(req, found, reason="unsupported" if close else "clear window", off=off)
    else:  # neither the model nor a strong sentence: most often the documents do not answer it
        yield from _decline(req, found.sources, found.relevance, "no supported answer")


def _close_call(ctx: TaskContext, found: Plan) -> bool:
    """Whether the model is asked: only when another window scores within `Config.model_margin` of
    the best. What the model adds is the choice between close windows (it cannot write a supported
    sentence from the first and can from the second: dev sets git+faq 7 answers gained, 1 lost;
    SQLite 6 / 3); its sentence on the best window never made an answer right that the window's
    quote alone did not. With the margin at 0.10 (bench_ablation, Intel, 2 cores) the model runs
    for 25-43 % of the questions, the median answer takes 57-59 ms instead of 1.8-2.0 s, and
    strict accuracy went git+faq 67 -> 65 right of 103, SQLite 44 -> 43 of 69, handbook 20 -> 21
    of 32 (citations 0.81 -> 0.88), paraphrase unchanged. Replayed from recorded answers, margins
    0.08 / 0.12 / 0.15 gave git+faq 65 / 66 / 65 and the model on 30 / 48 / 57 % of its questions."""
    ev, margin = found.evidence, ctx.config.model_margin
    return margin == float("inf") or (len(ev) > 1 and ev[0].score - ev[1].score < margin)


def _page_texts(ctx: TaskContext, sources: list[Source]) -> Callable[[Evidence], str]:
    """The whole text of the page an evidence window comes from (read once per page, on demand):
    where the decline rules look for a name the window itself does not hold."""
    pages: dict[str, str] = {}

    def text(ev: Evidence) -> str:
        path = sources[ev.source].path
        if path not in pages:
            try:
                chunks = ctx.document_chunks(path)
            except KeyError:  # a page removed since the search: only the window counts
                chunks = []
            pages[path] = " ".join(f"{c.title} {c.heading} {c.text}" for c in chunks)
        return pages[path]
    return text


def _cited_first(sources: list[Source], index: int) -> list[Source]:
    """The sources with the evidence's own first, so that [1] is the passage the answer rests on."""
    return [sources[index]] + [s for i, s in enumerate(sources) if i != index]


def _checked_answer(ctx: TaskContext, req: TaskRequest, ev: Evidence, checks: list[SentenceCheck]) -> Iterator[Event]:
    """Generate from one evidence window; yield each sentence once it is complete and supported.

    Stops at the first unsupported sentence (the model has drifted: nothing after it is shown).
    Supported sentences are appended to `checks`; none means this candidate failed.
    """
    messages, given = build_messages(ctx, req, [ev])
    stream = until_repeat(without_preamble(
        ctx.generate_stream(messages, max_new_tokens=min(ANSWER_TOKENS, ctx.config.max_new_tokens),
                            temperature=req.temperature, stop=STOP),
        req.text, INSTRUCTION_ECHOES))
    if ctx.config.stop_at_foreign_term:
        stream = until_foreign_term(stream, " ".join(given))
    try:
        for sentence in _complete_sentences(stream):
            verdict = _verdict(ctx, sentence, given, checks, req.text)
            if verdict == "stop":
                return
            if verdict == "show":
                yield TextDelta(_shown(checks[-1].text, len(checks)))
                if len(checks) >= MAX_ANSWER_SENTENCES:
                    return
    finally:
        stream.close()


def _complete_sentences(stream: Iterator[str]) -> Iterator[str]:
    """Each sentence of a token stream once it is complete (the last one when the stream ends)."""
    text, done = "", 0
    for piece in stream:
        text += piece
        sentences = grounding.split_sentences(text)
        yield from sentences[done:-1]  # the last one may still grow
        done = max(done, len(sentences) - 1)
    yield from grounding.split_sentences(text)[done:]


def _verdict(ctx: TaskContext, sentence: str, given: list[str], checks: list[SentenceCheck],
             question: str = "") -> str:
    """"show" a supported claim (appended to `checks`), "skip" filler before the answer
    ("Sure.", the question or instruction read back, a circular sentence), "stop" at an
    unsupported claim or at filler after the answer."""
    sentence = grounding.without_read_back(sentence, INSTRUCTION_ONE.format(question=""))
    if not grounding.is_claim(sentence) or grounding.says_nothing(sentence, question, INSTRUCTION_ONE):
        return "stop" if checks else "skip"
    check = grounding.check_sentences(sentence, given, ctx.embed)[0]
    if not check.supported:
        return "stop"
    checks.append(replace(check, text=grounding.strip_citations(sentence), citations=[1]))
    return "show"


def _shown(sentence: str, count: int) -> str:
    return ("" if count == 1 else " ") + grounding.strip_citations(sentence) + " [1]"


def _page_name(question: str, source: Source, answer: str, off: frozenset[str] = frozenset()) -> str:
    """The cited page's name ("git-fsck", "useradd") when the question asks which command, tool or
    file and the answer does not name it yet: on a manual's page about a command, the page's own
    text says what it does, not what it is called. Only a one-word title is a name: a title such
    as "Pragma statements supported by SQLite" describes a page, and quoting it only pushes the
    answer out of the quote (held-out set: one answer lost that way). Rule page-name, unless named
    in `off`."""
    if "page-name" in off:
        return ""
    name = bare_title(source.title)
    if not name or " " in name or not rules.ASKS_FOR_NAME.search(question) or name.lower() in answer.lower():
        return ""
    return name


def _evidence_quote(ev: Evidence, answer: str, page: str = "") -> str:
    """The evidence window under the answer ("> ... [1]"), within the short-answer length.

    The default model rewords, and on the dev set its supported sentences still missed the value
    asked for more often than not; the window the sentence rests on holds it far more often, so
    the user sees both: the model's sentence and the document's own words it was checked against.
    The quote is whole sentences (`quote_sentences`) with the one that answers in bold.
    """
    room = MAX_ANSWER_WORDS - len(answer.split()) - 2 - (1 if page else 0)
    sentences = quote_sentences(ev, room)
    if room < 8 or not sentences or _same_words(" ".join(sentences), answer):
        return ""  # (a quote that repeats the answer word for word adds nothing)
    return "\n\n> " + (f"{page}: " if page else "") + _marked(sentences, answer or ev.sentence) + " [1]"


def quote_sentences(ev: Evidence, room: int) -> list[str]:
    """The window's whole sentences that fit in `room` words, always with its best one.

    A quote cut at a word count began or ended mid-sentence ("memory buffers. The default is …"):
    here the window is cut only between sentences, dropping those after the best one first, then
    the one before it. A sentence the narrowing cut short ("… …", a run-on table line) is left out
    unless it is the best one; a best sentence longer than `room` gives no quote at all. Nor does
    a quote end on a line that introduces more ("Rather, do:") or start on one that carries on a
    sentence ("which will replace ...") when the best sentence comes after it.
    """
    sentences = [grounding.strip_citations(x) for x in grounding.split_sentences(ev.text)]
    sentences = [x for x in sentences if x]
    best = _index_of(sentences, grounding.strip_citations(ev.sentence))
    if best is None or _cut_short(sentences[best]):
        return []
    lo, hi = best, best
    while lo > 0 and not _cut_short(sentences[lo - 1]):  # the window kept these before it: "It"/"This"
        lo -= 1
    while hi + 1 < len(sentences) and not _cut_short(sentences[hi + 1]):
        hi += 1

    def words(a: int, b: int) -> int:
        return sum(len(x.split()) for x in sentences[a:b + 1])

    while hi > best and (words(lo, hi) > room or _dangles(sentences[hi])):
        hi -= 1
    while lo < best and (words(lo, hi) > room or _CONTINUES.match(sentences[lo])):
        lo += 1
    if words(lo, hi) > room:
        return []
    return sentences[lo:hi + 1]


def _same_words(a: str, b: str) -> bool:
    return re.findall(r"\w+", a.lower()) == re.findall(r"\w+", grounding.strip_citations(b).lower())


def _dangles(sentence: str) -> bool:
    """A last sentence that introduces what the quote no longer shows: "Rather, do:", a term of a
    definition list without its definition ("core.commentChar", "forget <pathspec>")."""
    return sentence.endswith(":") or (len(sentence.split()) <= 4 and not sentence.endswith((".", "!", "?", ")")))


def _cut_short(sentence: str) -> bool:
    return sentence.endswith(" …")


def _index_of(sentences: list[str], best: str) -> int | None:
    """Which of `sentences` holds (or starts) the best sentence; None when none does. (The window
    re-split may join the best sentence to a line before it that has no full stop: a definition
    list's term "maintenance.<task>.enabled" + "This boolean config option ...".)"""
    key = " ".join(best.split())[:60]
    for i, sentence in enumerate(sentences):
        flat = " ".join(sentence.split())
        if key in flat or (len(flat) >= 20 and key.startswith(flat[:60])):
            return i
    return None


def _marked(sentences: list[str], answer: str) -> str:
    """The sentences joined, the one that shares most words with `answer` in Markdown bold (the
    answer span: what the chat renders as bold); one sentence alone is not marked."""
    if len(sentences) < 2:
        return " ".join(sentences)
    span = max(range(len(sentences)), key=lambda i: grounding.overlap(answer, sentences[i]))
    return " ".join(f"**{x}**" if i == span else x for i, x in enumerate(sentences))


def _answer(req: TaskRequest, found: Plan, sources: list[Source], checks: list[SentenceCheck],
            *, candidate: int) -> Answer:
    text = " ".join(f"{c.text} [1]" for c in checks)
    return Answer(text=text, sources=sources, task="qa", question=req.text, standalone_query=req.query,
                  sentences=checks, extra={"relevance": round(found.relevance, 4), "context_passages": 1,
                                           "candidate": candidate, "evidence_score": round(found.evidence[0].score, 4)})


def _quote(req: TaskRequest, found: Plan, *, reason: str, off: frozenset[str] = frozenset()) -> Iterator[Event]:
    """The best evidence window itself, cited: the document's words when the model's are not.
    Whole sentences (`quote_sentences`), the best one in bold."""
    best = found.evidence[0]
    chosen = quote_sentences(best, QUOTE_WORDS) or [_words_at_most(grounding.strip_citations(best.sentence), QUOTE_WORDS)]
    sentence = _marked(chosen, best.sentence)
    sources = _cited_first(found.sources, best.source)
    page = _page_name(req.text, sources[0], sentence, off)
    sentence = f"{page}: {sentence}" if page else sentence
    text = f"{sentence} [1]"
    words = text.split(" ")
    for start in range(0, len(words), QUOTE_CHUNK_WORDS):  # streamed like generated text
        yield TextDelta(" ".join(words[start:start + QUOTE_CHUNK_WORDS]) + (" " if start + QUOTE_CHUNK_WORDS < len(words) else ""))
    yield Result(Answer(text=text, sources=sources, task="qa", question=req.text, standalone_query=req.query,
                        sentences=[SentenceCheck(sentence.replace("**", ""), [1], True, 1.0)],
                        extra={"relevance": round(found.relevance, 4), "extracted": True, "reason": reason,
                               "evidence_score": round(best.score, 4)}))


def _words_at_most(text: str, limit: int) -> str:
    words = text.split()
    return text if len(words) <= limit else " ".join(words[:limit]) + " …"


def _decline(req: TaskRequest, hits: list[Source], best: float, reason: str, note: str = "") -> Iterator[Event]:
    text = DECLINE + (f" {note}" if note else "")
    if hits:
        text += " The closest passages are:\n" + closest_list(hits)
    yield TextDelta(text)
    yield Result(Answer(text=text, sources=hits, task="qa", question=req.text,
                        standalone_query=req.query or req.text, declined=True,
                        extra={"relevance": round(best, 4), "reason": reason}))


def build_messages(ctx: TaskContext, req: TaskRequest, passages: list[Evidence] | list[Source]
                   ) -> tuple[list[dict[str, str]], list[str]]:
    """The chat messages and the passage texts actually given, all within the prompt budget."""
    texts = [p.text if isinstance(p, Evidence) else passage_text(p) for p in passages]
    if has_cjk(req.text):
        template = INSTRUCTION_ONE_ZH if len(texts) == 1 else INSTRUCTION_MANY_ZH
    else:
        template = INSTRUCTION_ONE if len(texts) == 1 else INSTRUCTION_MANY
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
    per_passage = max(16, budget // max(1, len(texts)))
    for n, passage in enumerate(texts, 1):
        header = f"[{n}] " if len(texts) > 1 else ""
        body = fit_text(ctx, passage, per_passage - ctx.count_tokens(header) - 2)
        if not body:
            break
        given.append(body)
        blocks.append(header + body)
    user = "\n\n".join(blocks) + "\n\n" + template.format(question=question)
    return [*history, {"role": "user", "content": user}], given
