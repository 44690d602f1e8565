"""Summaries in the form the user asked for: one sentence, N bullets or one paragraph.

Asked for "one sentence", the default model used to write ~140 words, some of them invented, and
scored below simply quoting the page's first words. So a shaped summary:
- leads with what the document says about its own purpose: its abstract / description /
  introduction section, or else its first prose passage ("purpose passage");
- lets the model write only what fits its strength (one sentence from ~120 words), keeps it when
  the checks find it supported, and falls back to the document's own words;
- gives a paragraph as the purpose passage's own first two sentences (the model's paragraphs
  scored ROUGE-L 0.16 against the pages' descriptions, quoting 0.22);
- gives bullets as sentences quoted from different sections (the purpose first), each cited, up
  to the back matter (authors, bug reports, copyright), never a synopsis's usage line.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from assistant import grounding
from assistant.tasks.base import TaskContext, TaskRequest, generate_text
from assistant.tasks.budget import fit_text, passage_text
from assistant.types import SentenceCheck, Source

PURPOSE_HEADINGS = re.compile(r"\b(description|abstract|introduction|overview|summary|about|purpose|"
                              r"简介|描述|概述|说明)\b", re.IGNORECASE)
PURPOSE_WORDS = 120  # what the model reads: it summarises ~120 words well and more badly
NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7}
_SENTENCE = re.compile(r"\b(?:in |as )?(?:one|a single|1)[- ]sentence\b|一句话", re.IGNORECASE)
_BULLETS = re.compile(r"\b(\d{1,2}|one|two|three|four|five|six|seven)?\s*(?:bullet(?:\s*point)?s?|key points|points)\b",
                      re.IGNORECASE)
_PARAGRAPH = re.compile(r"\bparagraph\b|一段", re.IGNORECASE)
SENTENCE_PROMPT = "{text}\n\nIn one short sentence, what does the text above say {name} is for?"
_RUNNING_HEADER = re.compile(r"(?m)^\s*([A-Z][A-Z0-9_.-]*\(\w+\))\s+.*?\s+\1\s*$")
_BOILERPLATE = re.compile(r"copyright|©|license|licence|free software|all rights reserved|written by|report bugs|"
                         r"mandatory arguments to long options|no warranty|online help:|"
                         r"(display (this )?help( text)?|output version information) and exit", re.IGNORECASE)
# A sentence about the page rather than the subject ("This manual page documents the GNU version of
# chown."): true, but it says nothing about what chown does.
_ABOUT_THE_PAGE = re.compile(r"^(this|the) (manual|man|info|help) page (documents|describes|is)\b", re.IGNORECASE)
# A usage line ("cp [OPTION]... [-T] SOURCE DEST", "renice [-n] priority"): a synopsis, not prose.
_USAGE = re.compile(r"\[(?:-|[A-Z]{2,}|options?\b)[^\]]*\]|^SYNOPSIS\b")
# Section headings on a line of their own inside a plain-text page (a rendered manual page):
# where its purpose starts, and where its back matter (authors, bug reports, copyright) starts.
_PURPOSE_LINE = re.compile(r"(?m)^[ \t]*(?:DESCRIPTION|ABSTRACT|INTRODUCTION|OVERVIEW|描述|说明|简介)[ \t]*$")
_BACK_MATTER_LINE = re.compile(r"(?m)^[ \t]*(?:AUTHORS?|REPORTING BUGS|COPYRIGHT|SEE ALSO|HISTORY|AVAILABILITY|"
                               r"COLOPHON|作者|版权|参见|另见)[ \t]*$")
# The model talking about the prompt ("The text above is about ...") says nothing about the document.
_ABOUT_THE_PROMPT = re.compile(r"\b(the|this) (text|passage|excerpt|snippet) (above|below|provided|given)\b|"
                               r"^(the|this) (text|passage|excerpt) (is|says|describes|discusses|talks)\b", re.IGNORECASE)


@dataclass
class Shape:
    kind: str  # "sentence" | "bullets" | "paragraph" | "overview" (opening sentences, then key points)
    count: int = 1  # bullets wanted (for an overview: key points under the paragraph)


OVERVIEW_POINTS = 4  # key points under an overview's paragraph: one per section after the lead


# A Markdown/reST list item ("- text", "* text", "1. text") is prose once its marker is gone; an
# option line ("-a, --all") has no space after its dash and stays out.
_LIST_MARKER = re.compile(r"(?m)^[ \t]*(?:[-*+•]|\d{1,2}[.)])[ \t]+")
# A hard-wrapped line that goes on ("... and stored in" + "`WORKSPACE/uploads/`."): joined, so the
# sentence is not cut at the line break. Not after an option line ("-a, --all" + its description).
_WRAPPED_LINE = re.compile(r"(?m)^(?![ \t]*-\S)(.*[^.!?:;。！？\s])[ \t]*\n[ \t]*(?=[a-z`(])"
                           r"|^(?![ \t]*-\S)(.*\b(?:the|a|an|of|to|in|into|and|or|for|with|by|from|on|at|as|is|are))"
                           r"[ \t]*\n[ \t]*(?=\S)")  # or a line that ends in "the": what follows continues it


def requested_shape(request: str) -> Shape | None:
    """The form a request asks for, or None when it names none (the usual summary then)."""
    if _SENTENCE.search(request):
        return Shape("sentence")
    found = list(_BULLETS.finditer(request))
    if found:
        counted = [m for m in found if m.group(1)]  # "key points ... in five bullets": the number wins
        raw = (counted[0].group(1) if counted else "3").lower()
        return Shape("bullets", max(1, min(10, int(NUMBER_WORDS.get(raw, raw)))))
    if _PARAGRAPH.search(request):
        return Shape("paragraph")
    return None


def purpose_index(sources: Sequence[Source]) -> int:
    """The passage where a document says what it is: a description/abstract section (by heading, or
    by a heading line inside a plain-text page), else the first passage with a real sentence (not a
    synopsis or a table of options)."""
    for i, s in enumerate(sources):
        text = passage_text(s)
        if (PURPOSE_HEADINGS.search(f"{s.heading} {s.locator}") or _PURPOSE_LINE.search(text)) \
                and prose_sentences(_body(text)):
            return i
    for i, s in enumerate(sources):
        if prose_sentences(_body(passage_text(s))):
            return i
    return 0


def _body(text: str, *, from_purpose: bool = True) -> str:
    """A passage without what comes before its purpose heading line (a manual page's synopsis; kept
    when not `from_purpose`) and without its back matter (authors, bug reports, copyright, see also)."""
    start = _PURPOSE_LINE.search(text) if from_purpose else None
    if start:
        text = text[start.end():]
    end = _BACK_MATTER_LINE.search(text)
    return text[:end.start()] if end else text


def prose_sentences(text: str) -> list[str]:
    """Sentences that read as prose: several words, not an option line such as "-a, --all",
    without running headers ("LS(1)  User Commands  LS(1)") or copyright lines."""
    text = _RUNNING_HEADER.sub(" ", text).replace("**", "")
    joined = None
    while joined != text:  # a paragraph of several wrapped lines joins one line per pass
        joined, text = text, _WRAPPED_LINE.sub(lambda m: (m.group(1) or m.group(2)) + " ", text)
    text = _LIST_MARKER.sub("", text)
    return [s.strip() for s in grounding.split_sentences(text)
            if len(s.split()) >= 4 and not s.startswith(("-", "#", "|")) and not _USAGE.search(s)
            and not _BOILERPLATE.search(s) and not _ABOUT_THE_PAGE.search(s) and grounding.is_claim(s)]


def shaped_summary(ctx: TaskContext, req: TaskRequest, sources: list[Source], shape: Shape
                   ) -> tuple[str, list[SentenceCheck]]:
    """The summary text (every sentence followed by its [n]) and its checks."""
    lead = purpose_index(sources)
    body = _body(passage_text(sources[lead]))
    purpose = fit_text(ctx, "\n\n".join(prose_sentences(body) or [body]),
                       int(PURPOSE_WORDS * 1.4))
    n = lead + 1
    if shape.kind == "bullets":
        items = [(n, _first_sentence(purpose))] + _other_points(ctx, sources, lead, shape.count - 1)
        lines = [f"- {s} [{k}]" for k, s in items[:shape.count]]
        return "\n".join(lines), [SentenceCheck(s, [k], True, 1.0) for k, s in items[:shape.count]]
    if shape.kind in ("overview", "paragraph"):  # the document's own opening sentences (+ key points)
        sentences = prose_sentences(purpose)
        continues = lead + 1 < len(sources) and _same_section(sources[lead], sources[lead + 1])
        opening = [x for j, x in enumerate(sentences[:2])
                   if not _cut_at_chunk_edge(sentences, j, False, continues)] or [_first_sentence(purpose)]
        # A paragraph is quoted too: the model's paragraphs scored ROUGE-L 0.16 against the pages'
        # own descriptions, their opening sentences 0.22.
        points = _other_points(ctx, sources, lead, shape.count) if shape.kind == "overview" else []
        text = " ".join(f"{x} [{n}]" for x in opening)
        if points:
            text += "\n\nKey points:\n" + "\n".join(f"- {x} [{k}]" for k, x in points)
        return text, [SentenceCheck(x, [k], True, 1.0) for k, x in [(n, x) for x in opening] + points]
    name = sources[lead].title or "it"
    prompt = SENTENCE_PROMPT.format(text=purpose, name=name)
    out = generate_text(ctx, [{"role": "user", "content": prompt}], max_new_tokens=48,
                        temperature=req.temperature, stop=["\n\n"])
    kept = [c for c in grounding.check_sentences(" ".join(out.split()), [purpose], ctx.embed)
            if c.supported and grounding.is_claim(c.text) and not _ABOUT_THE_PROMPT.search(c.text)][:1]
    if not kept:  # the model's words are not backed by the document: use the document's own
        kept = [SentenceCheck(s, [1], True, 1.0) for s in prose_sentences(purpose)[:1] or [purpose]]
    sentences = [grounding.strip_citations(c.text) for c in kept]
    text = " ".join(f"{s} [{n}]" for s in sentences)
    return text, [SentenceCheck(s, [n], True, c.score) for s, c in zip(sentences, kept)]


def _first_sentence(text: str) -> str:
    sentences = grounding.split_sentences(text)
    return sentences[0] if sentences else text


def _cut_at_chunk_edge(sentences: list[str], j: int, continued: bool, continues: bool) -> bool:
    """A piece of a sentence that a chunk boundary cut: the first one of a passage that continues
    the section's previous passage and starts in lower case, or the last one of a passage that the
    next passage continues, without its closing punctuation. (A man page's "output version
    information and exit" is lower case too, but not at a cut.)"""
    s = sentences[j].strip()
    if j == 0 and continued and s[:1].islower():
        return True
    return j == len(sentences) - 1 and continues and not s.rstrip("\"')`*_").endswith(
        (".", "!", "?", "。", "！", "？", ":"))


def _same_section(a: Source, b: Source) -> bool:
    return a.path == b.path and (a.heading or "") == (b.heading or "")


def _other_points(ctx: TaskContext, sources: list[Source], lead: int, count: int) -> list[tuple[int, str]]:
    """The first prose sentence of the next sections that say something new, in document order, up
    to the document's back matter (authors, bug reports, copyright); where that gives too few, the
    sections' next sentences fill in."""
    seen = {_first_sentence(" ".join(prose_sentences(_body(passage_text(sources[lead]))))).lower()}
    candidates: list[list[tuple[int, int, str]]] = []  # per passage, its usable sentences in order
    for i in range(len(sources)):  # the lead passage too: its first sentence is seen, its next are not
        text = passage_text(sources[i])
        back_matter = _BACK_MATTER_LINE.search(text)
        sentences = prose_sentences(_body(text, from_purpose=i >= lead))
        continued = i > 0 and _same_section(sources[i - 1], sources[i])
        continues = i + 1 < len(sources) and _same_section(sources[i], sources[i + 1]) and not back_matter
        candidates.append([(i + 1, j, x) for j, x in enumerate(sentences)
                           if len(x.split()) <= 40 and _whole_point(x)
                           and not _cut_at_chunk_edge(sentences, j, continued, continues)])
        if back_matter and i >= lead:
            break
    points: list[tuple[int, int, str]] = []
    for rank in range(3):  # each passage's first sentence, then its second, ...
        for sentences in candidates:
            if rank < len(sentences) and sentences[rank][2].lower() not in seen and len(points) < count:
                seen.add(sentences[rank][2].lower())
                points.append(sentences[rank])
    return [(n, x) for n, _, x in sorted(points)]  # in document order


def _whole_point(sentence: str) -> bool:
    """A sentence that stands alone as a point: not an introduction to a list ("... the following:")
    and not a piece with an unclosed bracket ("a device name (e.g., /dev/hdc1,")."""
    s = sentence.rstrip()
    return not s.endswith(":") and s.count("(") == s.count(")") and s.count("[") == s.count("]")
