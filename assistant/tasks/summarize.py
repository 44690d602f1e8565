"""Summaries of a named document (by path or title) or of what retrieval finds for a topic.

A document longer than one prompt is summarised map-reduce: sections are packed into parts that
fit (a small model summarises short inputs best, so parts stay small), each part is summarised
with a `Status("summarising part i/n")`, then the part summaries are combined. The final summary
streams sentence by sentence, each sentence followed by the [n] of the section it best matches,
so the streamed text and the answer's text are the same.

Ctrl-C while part k+1 of n is being summarised stops there: the answer is the k finished parts'
summaries, cited, after a note saying which sections they cover, and `extra` marks it partial
("stopped_after": k, "parts": n); it is logged like any other answer. Before the first part is
done, or while the parts are being combined, Ctrl-C stops the summary as it stops anything else.
"""
from __future__ import annotations

import re
import time
from typing import Iterator, Sequence

from assistant import grounding
from assistant.tasks.base import Event, Result, Status, TaskContext, TaskRequest, TextDelta, generate_text
from assistant.tasks.budget import answer_room, closest_list, fit_text, passage_text, prompt_budget, relevance
from assistant.tasks.streams import repeated_tail_cut, until_repeat
from assistant.tasks.summary_shape import OVERVIEW_POINTS, Shape, boilerplate, requested_shape, shaped_summary
from assistant.types import Answer, SentenceCheck, Source

PART_TOKENS = 600  # tokens of source text per map step; the 135M model loses the thread past this
PART_ANSWER_TOKENS = 96
MAP_PROMPT = "{text}\n\nSummarise the text above in two or three sentences."
REDUCE_PROMPT = ("{text}\n\nThese are notes on the parts of one document, in order. "
                 "Write a short summary of the whole document in three to five sentences.")
ONE_PROMPT = "{text}\n\nSummarise the text above in three to five sentences."
STOP = ["\n\n\n"]
EXTRACTIVE_NOTE = "Note: parts of this summary may not match the document. Key sentences from it:"
KEY_POINTS = 4

_EXT = r"(?:md|markdown|rst|txt|pdf|html?|docx|py|js|ts|java|go|rs|c|cpp|h|json|ya?ml|toml|ipynb)"
_PATH_RE = re.compile(rf"([\w./\\-]+\.{_EXT})\b", re.IGNORECASE)
_QUOTED_RE = re.compile(r"[\"“'‘《「](.+?)[\"”'’》」]")
_AFTER_VERB_RE = re.compile(
    r"(?:summari[sz]e|summary of|summarising|summarizing|tl;?\s?dr(?: of)?|overview of|recap(?: of)?|"
    r"gist of|key points of|key points in)\s*[:,]?\s+(.+)", re.IGNORECASE)
_AFTER_VERB_ZH = re.compile(r"(?:总结|概括|摘要|概述|归纳)(?:一下|下)?(.+)")
_TRIM_WORDS = re.compile(
    r"^(?:the|this|that|our|my|its|a|an|please|me)\s+|\s+(?:document|doc|docs|file|page|for me|please|"
    r"in (?:a few|a short|a single|\w+)(?: short)? (?:sentences?|lines?|bullets?|bullet points?|points|words|paragraphs?))$",
    re.IGNORECASE)
# "manual page for fstab", "man page of ls", "reference page on VACUUM", "Python module sched": the
# name is what follows
_PAGE_OF = re.compile(r"^(?:(?:manual|man|reference|help|documentation|doc)\s+)?page\s+(?:for|of|about|on)\s+|"
                      r"^(?:python\s+)?module\s+(?=\S+$)", re.IGNORECASE)
_PAGE_IN_BRACKETS = re.compile(r"(?:(?:manual|man|reference|help|documentation)\s+)?page\s*\(([^()]+)\)", re.IGNORECASE)
_TRIM_ZH = re.compile(r"^(?:这篇|这份|这个|那篇|一下)|(?:的手册页|的手册|手册页|的文档|文档|文件|这篇文档)$")
_PAGE_NAME = re.compile(r"(?<![\w.-])([A-Za-z_][\w.+:-]*\(\d\w{0,4}\))")  # "fstab(5)", "printf(3p)": a manual page
# A page or module named in a question rather than after "summarise": "what is the tokenize module
# for?", "the Python module sched", "the manual page of head", "the ls manual page".
_NAMED_IN_QUESTION = [re.compile(p, re.IGNORECASE) for p in (
    r"\bmodule\s+([A-Za-z_]\w*(?:\.\w+)*)", r"\b([A-Za-z_]\w*(?:\.\w+)*)\s+module\b",
    r"\b(?:manual|man)\s+page\s+(?:for|of)\s+([\w.+:-]*\w)", r"\b([\w.+:-]*\w)(?:'s)?\s+(?:manual|man)\s+page\b",
    r"^\s*(?:what|how)\s+(?:does|do|is)\s+([\w.+:-]*\w)\s+(?:do|for|work)\b.*\b(?:its|the)\s+(?:manual|man)\s+page\b",
    r"^(?:[^,?]*,\s*)?what\s+is\s+([\w.+:-]*\w)\s+for\b.*\b(?:its|the)\s+(?:manual|man)\s+page\b",
)]
_NOT_A_NAME = frozenset("the this that its a an my our python each every one for of in to on about".split())


def document_names(text: str) -> list[str]:
    """Candidate document names in a request, most specific first ("docs/install.md", "release notes")."""
    names: list[str] = []
    names += _PATH_RE.findall(text)
    names += _PAGE_NAME.findall(text)
    names += [q.strip() for q in _QUOTED_RE.findall(text)]
    for rx, trim in ((_AFTER_VERB_RE, _TRIM_WORDS), (_AFTER_VERB_ZH, _TRIM_ZH)):
        m = rx.search(text)
        if m:
            name = m.group(1)
            for _ in range(4):
                name = trim.sub("", name.strip().rstrip(".?!。？！,，;:")).strip()
                name = _PAGE_OF.sub("", name).strip()
            if bracketed := _PAGE_IN_BRACKETS.fullmatch(name):  # "this manual page (ln)"
                name = bracketed.group(1).strip()
            if name:
                names.append(name)
    names += [m.group(1) for rx in _NAMED_IN_QUESTION for m in rx.finditer(text) if m.group(1).lower() not in _NOT_A_NAME]
    generic = re.compile(r"\s+(?:guide|manual|documentation|docs?|page|file|handbook|reference|chapter)$", re.IGNORECASE)
    names += [generic.sub("", n) for n in names if generic.search(n)]  # "fine-tuning guide" -> fine-tuning.md
    variants: list[str] = []
    for n in names:
        for v in (n, n.replace(" ", "-"), n.replace(" ", "_")):
            if v and v.lower() not in {x.lower() for x in variants}:
                variants.append(v)
    return variants


def find_document(ctx: TaskContext, text: str) -> tuple[str, list[Source]] | None:
    for name in document_names(text):
        try:
            chunks = ctx.document_chunks(name)
        except KeyError:
            continue
        if chunks:
            return name, chunks
    return None


SUMMARY_STYLES = ("checked", "generated")


def run(ctx: TaskContext, req: TaskRequest) -> Iterator[Event]:
    found = find_document(ctx, req.text) or (find_document(ctx, req.query) if req.query != req.text else None)
    if not found and req.path_prefix:  # a caller (or `eval summaries`) naming the document outright
        found = find_document(ctx, f'"{req.path_prefix}"')
    if found:
        name, sources = found
        yield Status(f"summarising {sources[0].title or sources[0].path} ({len(sources)} sections)")
    else:
        query = (req.query or req.text).strip()
        yield Status("searching the documents")
        sources = ctx.retrieve(query, req.k, path_prefix=req.path_prefix, file_types=req.file_types)
        best = relevance(ctx, query, sources)
        if not sources or best < ctx.config.min_relevance:
            text = "I found no document or passages matching that to summarise."
            if sources:
                text += " The closest passages are:\n" + closest_list(sources)
            yield TextDelta(text)
            yield Result(Answer(text=text, sources=sources, task="summarize", question=req.text,
                                declined=True, extra={"relevance": round(best, 4)}))
            return
        name = ""
    shape = requested_shape(req.text)
    if ctx.config.summary_style not in SUMMARY_STYLES:
        raise ValueError(f"summary_style must be one of {', '.join(SUMMARY_STYLES)}, not {ctx.config.summary_style!r}")
    if shape is None and ctx.config.summary_style == "checked":
        shape = Shape("overview", OVERVIEW_POINTS)  # no form asked for: its opening sentences and key points, quoted
    if shape is not None:
        yield Status(f"writing a summary as {shape.kind}")
        text, checks = shaped_summary(ctx, req, sources, shape)
        yield TextDelta(text)
        yield Result(Answer(text=text, sources=sources, task="summarize", question=req.text,
                            standalone_query=req.query, sentences=checks,
                            extra={"document": name, "form": shape.kind, "count": shape.count}))
        return
    yield from summarise_sources(ctx, req, sources, document=name)


def _time_left(started: float, done: int, total: int) -> str:
    """", about 40 s left" from the parts done so far (nothing before the first is done)."""
    if done == 0:
        return ""
    left = (time.perf_counter() - started) / done * (total - done)
    return f", about {left:.0f} s left" if left < 120 else f", about {left / 60:.0f} min left"


def _plain(text: str) -> str:
    """Markdown heading markers removed: the model copies them into the summary otherwise."""
    return re.sub(r"(?m)^#{1,6}\s*", "", text)


def pack(ctx: TaskContext, texts: Sequence[str], limit: int) -> list[list[int]]:
    """Consecutive texts grouped so each group's token count stays within `limit`."""
    groups: list[list[int]] = []
    used = 0
    for i, t in enumerate(texts):
        n = ctx.count_tokens(t) + 2
        if groups and used + n <= limit:
            groups[-1].append(i)
            used += n
        else:
            groups.append([i])
            used = n
    return groups


def summarise_sources(ctx: TaskContext, req: TaskRequest, sources: list[Source], *, document: str = "") -> Iterator[Event]:
    final_room = answer_room(ctx)
    limit = min(PART_TOKENS, prompt_budget(ctx, final_room) - 32)
    texts = [fit_text(ctx, _plain(passage_text(s)), limit) for s in sources]
    groups = pack(ctx, texts, limit)
    temperature = req.temperature
    if len(groups) == 1:
        prompt = ONE_PROMPT.format(text="\n\n".join(texts))
        parts: list[str] = []
    else:
        parts = []
        started = time.perf_counter()
        for i, group in enumerate(groups, 1):
            yield Status(f"summarising part {i}/{len(groups)}" + _time_left(started, i - 1, len(groups)))
            body = "\n\n".join(texts[j] for j in group)
            try:
                out = generate_text(ctx, [{"role": "user", "content": MAP_PROMPT.format(text=body)}],
                                    max_new_tokens=PART_ANSWER_TOKENS, temperature=temperature, stop=STOP)
            except KeyboardInterrupt:
                if not parts:  # nothing finished to show: stop as any other Ctrl-C does
                    raise
                # Ctrl-C: the finished parts' summaries are the answer (a second Ctrl-C still exits)
                yield from stopped_summary(ctx, req, sources, texts, groups, parts, document=document)
                return
            parts.append(repeated_tail_cut(" ".join(out.split())) or texts[group[0]][:200])
        notes = parts
        level = 1
        while True:  # reduce until the notes fit one prompt
            joined = "\n".join(f"- {p}" for p in notes)
            if ctx.count_tokens(joined) <= limit or len(notes) <= 1:
                break
            level += 1
            note_groups = pack(ctx, notes, limit)
            merged = []
            for i, g in enumerate(note_groups, 1):
                yield Status(f"combining summaries {i}/{len(note_groups)} (level {level})")
                merged.append(repeated_tail_cut(" ".join(generate_text(
                    ctx, [{"role": "user", "content": REDUCE_PROMPT.format(text="\n".join(f"- {notes[j]}" for j in g))}],
                    max_new_tokens=PART_ANSWER_TOKENS, temperature=temperature, stop=STOP).split())))
            notes = merged
        yield Status("writing the summary")
        prompt = REDUCE_PROMPT.format(text=fit_text(ctx, joined, limit))

    stream = until_repeat(ctx.generate_stream([{"role": "user", "content": prompt}], max_new_tokens=final_room,
                                              temperature=temperature, stop=STOP))
    checks: list[SentenceCheck] = []
    out: list[str] = []
    for piece in cite_stream(ctx, stream, texts, checks):
        out.append(piece)
        yield TextDelta(piece)
    yield from _finished(ctx, req, sources, texts, "".join(out), checks,
                         {"document": document, "parts": len(groups), "part_summaries": parts,
                          "map_reduce": len(groups) > 1})


def stopped_summary(ctx: TaskContext, req: TaskRequest, sources: list[Source], texts: list[str],
                    groups: list[list[int]], parts: list[str], *, document: str = "") -> Iterator[Event]:
    """The answer when Ctrl-C stops the map step after k of n parts: a note saying which sections
    it covers, then the k part summaries, each claim cited with the covered section it best matches.
    Marked partial in `extra` ("stopped_after": k, "parts": n, "stop_reason": "interrupted")."""
    k, n = len(parts), len(groups)
    covered = groups[k - 1][-1] + 1  # groups are consecutive sections: 1..covered are summarised
    note = f"Stopped after part {k} of {n}: this summary covers sections 1–{covered} of {len(texts)} only"
    nxt = (sources[covered].heading or sources[covered].locator) if covered < len(sources) else ""
    note += f"; the rest, from section {covered + 1} (“{nxt}”), is not summarised." if nxt else "."
    passages = texts[:covered]  # a citation never names a section the summary did not read
    checks: list[SentenceCheck] = []
    cited = []
    for part in parts:
        sentences = grounding.split_sentences(part)
        if len(sentences) > 1 and not re.search(r"[.!?。！？…\"'”’)]$", sentences[-1].rstrip()):
            sentences = sentences[:-1]  # cut off by the part's token limit mid-sentence
        cited.append(cite_block(ctx, part[:_end_of(part, sentences)], sentences, passages, checks))
    raw = note + "\n\n" + "\n".join(f"- {c}" for c in cited)
    yield TextDelta(raw)
    yield from _finished(ctx, req, sources, passages, raw, checks,
                         {"document": document, "parts": n, "part_summaries": parts, "map_reduce": True,
                          "stopped_after": k, "stop_reason": "interrupted", "sections_covered": covered})


def _finished(ctx: TaskContext, req: TaskRequest, sources: list[Source], passages: list[str], raw: str,
              checks: list[SentenceCheck], extra: dict) -> Iterator[Event]:
    """The summary's Result, after quoted key sentences from `passages` when most of it is unsupported."""
    claims = [c for c in checks if grounding.is_claim(c.text)]
    extractive: list[str] = []
    if not claims or sum(c.supported for c in claims) * 2 < len(claims):
        # Most of the model's summary is not backed by the sections: add sentences taken verbatim
        # from the document (central ones, spread over the sections), each with its citation.
        extractive = key_points(ctx, passages)
        if extractive:
            note = "\n\n" + EXTRACTIVE_NOTE + "\n" + "\n".join(f"- {s}" for s in extractive)
            yield TextDelta(note)
            raw += note
            checks += [SentenceCheck(text=k, citations=grounding.parse_citations(k), supported=True, score=1.0)
                       for k in extractive]
    answer = Answer(text=raw.strip(), sources=sources, task="summarize", question=req.text,
                    standalone_query=req.query, sentences=checks,
                    extra={**extra, "unsupported": bool(extractive), "key_points": extractive})
    yield Result(answer)


def key_points(ctx: TaskContext, passages: list[str], limit: int = KEY_POINTS) -> list[str]:
    """Up to `limit` sentences quoted from the passages, "sentence [n]", in document order.

    Chosen by maximal marginal relevance: central to the document (close to the mean of all its
    sentences) yet unlike the sentences already chosen, at most one per section while sections
    remain. Boilerplate repeated in several sections, or page furniture (`summary_shape.boilerplate`:
    a navigation bar, a pointer elsewhere), is never a key point.
    """
    import numpy as np

    def key(sent: str) -> str:
        return " ".join(re.findall(r"\w+", sent.lower()))

    where: dict[str, set[int]] = {}
    for n, p in enumerate(passages, 1):
        for sent in grounding.split_sentences(p):
            where.setdefault(key(sent), set()).add(n)
    items, seen = [], set()
    for n, p in enumerate(passages, 1):
        for sent in grounding.split_sentences(p):
            k = key(sent)
            if (k in seen or len(where[k]) > 1 or not grounding.is_claim(sent) or boilerplate(sent)
                    or not 5 <= len(sent.split()) <= 60):
                continue
            seen.add(k)
            items.append((n, sent))
    if not items:
        return []
    vecs = np.asarray(ctx.embed([sent for _, sent in items]), dtype=np.float32)
    centre = vecs.mean(axis=0)
    centre /= np.linalg.norm(centre) or 1.0
    central = vecs @ centre
    chosen: list[int] = []
    sections = {n for n, _ in items}
    while len(chosen) < min(limit, len(items)):
        redundancy = (vecs @ vecs[chosen].T).max(axis=1) if chosen else np.zeros(len(items))
        score = 0.5 * central - 0.5 * redundancy
        used = {items[i][0] for i in chosen}
        for i, (n, _) in enumerate(items):
            if i in chosen or (n in used and used != sections):
                score[i] = -np.inf
        if not np.isfinite(score).any():
            break
        chosen.append(int(np.argmax(score)))
    return [f"{items[i][1]} [{items[i][0]}]" for i in sorted(chosen)]


def cite_stream(ctx: TaskContext, stream: Iterator[str], passages: list[str],
                checks: list[SentenceCheck]) -> Iterator[str]:
    """Re-emit a token stream sentence by sentence, each claim followed by its best section's [n].

    A sentence that repeats an earlier one ends the stream (the small model loops).
    """
    buffer = ""
    seen: set[str] = set()
    try:
        for piece in stream:
            buffer += piece
            sentences = grounding.split_sentences(buffer)
            if len(sentences) < 2:
                continue
            complete = sentences[:-1]
            fresh = _until_seen(complete, seen)
            cut = _end_of(buffer, fresh)
            done, buffer = buffer[:cut], buffer[cut:]
            if fresh:
                yield cite_block(ctx, done, fresh, passages, checks)
            if len(fresh) < len(complete):
                return
        fresh = _until_seen(grounding.split_sentences(buffer), seen)
        if fresh:
            yield cite_block(ctx, buffer[:_end_of(buffer, fresh)], fresh, passages, checks)
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()


def _until_seen(sentences: list[str], seen: set[str]) -> list[str]:
    out = []
    for sentence in sentences:
        key = " ".join(re.findall(r"\w+", grounding.strip_citations(sentence).lower()))
        if len(key) >= 12 and key in seen:
            break
        seen.add(key)
        out.append(sentence)
    return out


def _end_of(text: str, sentences: list[str]) -> int:
    pos = 0
    for s in sentences:
        found = text.find(s, pos)
        pos = found + len(s) if found >= 0 else pos
    return pos


def cite_block(ctx: TaskContext, block: str, sentences: list[str], passages: list[str],
               checks: list[SentenceCheck]) -> str:
    """`block` with " [n]" after each sentence that makes a claim (n = the best-matching passage)."""
    claims = [s for s in sentences if grounding.is_claim(s) and not grounding.parse_citations(s)]
    scores = grounding.support_scores(claims, passages, ctx.embed) if claims and passages else None
    out, pos, ci = [], 0, 0
    for s in sentences:
        found = block.find(s, pos)
        if found < 0:
            continue
        out.append(block[pos:found + len(s)])
        pos = found + len(s)
        if scores is not None and s in claims:
            row = scores[ci]
            ci += 1
            n = int(row.argmax()) + 1
            mark = f" [{n}]"
            out.append(mark)
            # A summary rewords by design: the combined score alone decides, but numbers must match.
            supported = (float(row.max()) >= grounding.SUPPORT_THRESHOLD
                         and not grounding.numbers(s) - grounding.numbers(passages[n - 1]))
            checks.append(SentenceCheck(text=s + mark, citations=[n], supported=supported,
                                        score=round(float(row.max()), 4)))
        else:
            cited = grounding.parse_citations(s)
            checks.append(SentenceCheck(text=s, citations=[n for n in cited if 1 <= n <= len(passages)],
                                        supported=True, score=0.0))
    out.append(block[pos:])
    return "".join(out)
