"""Summaries in the form the user asked for: one sentence, N bullets or one paragraph.

Asked for "one sentence", the default model used to write ~140 words, some of them invented, and
scored below simply quoting the page's first words. So a shaped summary:
- leads with what the document says about itself (`page_lead`): its own one-line summary where
  it has one (a manual page's NAME line "ls - list directory contents", a DocBook refnamediv, a
  module docstring's first line), then the opening of its purpose passage (a SUMMARY /
  DESCRIPTION / abstract / introduction section, a docstring's body, else its first prose);
- never quotes page furniture (`boilerplate`: back matter, pointers elsewhere, disclaimers about
  the page, navigation bars);
- answers "one sentence" with the page's own line when it has one, else with the first sentence
  of its purpose passage; only a document with no sentence of prose lets the model write one
  from ~120 words (kept when the checks find it supported);
- gives a paragraph as the own line and the purpose's opening sentences (the model's paragraphs
  scored ROUGE-L 0.16 against the pages' descriptions, quoting 0.22);
- gives bullets as sentences quoted from different sections (the lead first), each cited, up
  to the back matter (authors, bug reports, copyright), never a synopsis's usage line.
"""
from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from typing import Sequence

from assistant import grounding
from assistant.tasks.base import TaskContext, TaskRequest, generate_text
from assistant.tasks.budget import fit_text, passage_text
from assistant.types import SentenceCheck, Source
from index.man_text import FILLED_SHARE  # a line this much of the widest was wrapped by an editor
from index.sections import OPTION_TERM

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
# Sentences true of the page that say nothing about its subject: never quoted in a summary (nor
# given to the model to summarise). The one place for this rule; each line names what it protects
# against. The pointer, disclaimer and navigation lines (issue 20: "For an explanation of the terms
# used in this section, see attributes(7)." led section 3 summaries) change few dev-set summaries,
# where such sentences are rare: 1 of 89 section 1/8 pages, 2 of 53 modules, 1 of 41 section 5/7
# pages ("For an overview of namespaces, see namespaces(7)." gives way to what cgroup namespaces
# do), ROUGE-L of the quoted forms -0.001 / +0.001 / -0.005 (the references share few words with
# either sentence).
_BOILERPLATE = re.compile("|".join([
    # back matter and option-table chrome: "Copyright © 2022 ...", "display this help and exit"
    r"copyright|©|license|licence|free software|all rights reserved|written by|report bugs|no warranty|online help:",
    r"mandatory arguments to long options|(display (this )?help( text)?|output version information) and exit",
    # about the page, not the subject: "This manual page documents the GNU version of chown."
    r"^(this|the) (manual|man|info|help) page (documents|describes|is)\b",
    # a disclaimer leading a page: "This is probably not the system call that you are interested in;"
    r"^this is (probably |almost certainly )?not\b",
    # a pointer elsewhere: "For an explanation of the terms used in this section, see attributes(7).",
    # "See module copyreg for ...", "Full documentation <https://...>"
    r"^(?:for\b[^.;]*?,\s*)?see\b|^full documentation\b|^or available locally via\b",
    # a navigation bar or table row read as text: "Prev | Up | Part VI. Reference | Home | Next"
    r"(?:\b(?:prev|previous|up|home|next|contents|index)\b\W*){3}|\s\|\s|^\||\|$",
]), re.IGNORECASE)


def boilerplate(sentence: str) -> bool:
    """Whether a sentence is page furniture (back matter, a pointer elsewhere, a disclaimer, a
    navigation bar) rather than something the page says about its subject."""
    return bool(_BOILERPLATE.search(sentence.strip()))


# A usage line ("cp [OPTION]... [-T] SOURCE DEST", "renice [-n] priority"): a synopsis, not prose.
_USAGE = re.compile(r"\[(?:-|[A-Z]{2,}|options?\b)[^\]]*\]|^SYNOPSIS\b")
# Section headings on a line of their own inside a plain-text page (a rendered manual page):
# where its purpose starts, and where its back matter (authors, bug reports, copyright) starts.
_PURPOSE_LINE = re.compile(r"(?m)^[ \t]*(?:SUMMARY|DESCRIPTION|ABSTRACT|INTRODUCTION|OVERVIEW|描述|说明|简介)[ \t]*$")
_BACK_MATTER_LINE = re.compile(r"(?m)^[ \t]*(?:AUTHORS?|REPORTING BUGS|COPYRIGHT|SEE ALSO|HISTORY|AVAILABILITY|"
                               r"COLOPHON|作者|版权|参见|另见)[ \t]*$")
# The model talking about the prompt ("The text above is about ...") says nothing about the document.
_ABOUT_THE_PROMPT = re.compile(r"\b(the|this) (text|passage|excerpt|snippet) (above|below|provided|given)\b|"
                               r"^(the|this) (text|passage|excerpt) (is|says|describes|discusses|talks)\b", re.IGNORECASE)


# What a page says about itself in one line. A manual page's NAME section: "NAME" alone on a line
# (a rendered page) or as the heading of its section (an HTML page), then "ls - list directory
# contents". Its description is the page's own summary, written by its authors.
_NAME_LINE = re.compile(r"(?m)^[ \t]*(?:NAME|Name|名称|名字)[ \t]*\n((?:[ \t]+\S.*(?:\n|$))+)")
_NAME_HEADING = re.compile(r"(?:^|>)\s*(?:NAME|Name|名称|名字)\s*$")
_NAMES_DASH = re.compile(r"^(\S.{0,200}?)\s+[-\u2010-\u2015]+\s*(\S.*)$")  # "ls, dir - list ..."
_DOCSTRING = re.compile(r'^(?:[ \t]*#[^\n]*\n|[ \t]*\n)*[ \t]*[rRuU]{0,2}("""|\'\'\')(.*?)\1', re.DOTALL)
_LINES = re.compile(r"lines (\d+)-(\d+)")
LEAD_SEARCH = 4  # passages searched for a NAME line: it sits at the top of a page
DOCSTRING_PASSAGES = 40  # passages read for a module docstring (~13 lines each)


@dataclass
class Lead:
    """Where a document says what it is: its own one-line summary when it has one (a manual
    page's NAME line, a module docstring's first line), then its introducing sentences (a
    DESCRIPTION's or abstract's opening, a docstring's body, the first prose passage)."""

    index: int  # the passage cited for the sentences
    sentences: list[str]  # the purpose passage's prose, boilerplate left out
    line: str = ""  # "ls - list directory contents"; "" when the page has no such line
    line_index: int = 0  # the passage cited for the line


def name_line(sources: Sequence[Source]) -> tuple[int, str] | None:
    """A manual page's NAME line ("ls - list directory contents") and its passage, if it has one."""
    for i, s in enumerate(sources[:LEAD_SEARCH]):
        text = passage_text(s)
        m = _NAME_LINE.search(text)
        body = m.group(1) if m else (text if _NAME_HEADING.search(s.heading or "") else "")
        line = " ".join(body.split())
        if line and _NAMES_DASH.match(line) and len(line.split()) <= 40:
            return i, line
    return None


def module_docstring(sources: Sequence[Source]) -> str | None:
    """A Python module's docstring, cleaned, read from its first passages (rejoined by line number:
    the chunker cuts a long docstring across passages, with overlapping lines)."""
    if not sources or not sources[0].path.endswith(".py"):
        return None
    lines: dict[int, str] = {}
    for s in sources[:DOCSTRING_PASSAGES]:  # until the docstring closes
        m = _LINES.search(s.locator or "")
        start = s.start_line or (int(m.group(1)) if m else None)
        if start is None:
            break
        for k, line in enumerate(passage_text(s).split("\n")):
            lines.setdefault(start + k, line)
        found = _DOCSTRING.match("\n".join(lines[k] for k in sorted(lines)))
        if found:
            return inspect.cleandoc(found.group(2)) or None
    found = _DOCSTRING.match(passage_text(sources[0])) if not lines else None
    return (inspect.cleandoc(found.group(2)) or None) if found else None


def page_lead(sources: Sequence[Source]) -> Lead:
    """What the page says about itself: its own line, if any, and its introducing sentences."""
    doc = module_docstring(sources)
    if doc:
        paragraphs = [p for p in re.split(r"\n\s*\n", doc) if p.strip()]
        # PEP 257: a one-line first paragraph is the module's summary line
        line = " ".join(paragraphs[0].split()) if "\n" not in paragraphs[0].strip() else ""
        body = "\n\n".join(paragraphs[1:] if line else paragraphs)
        return Lead(0, prose_sentences(body), line if line and not boilerplate(line) else "", 0)
    lead = purpose_index(sources)
    found = name_line(sources)
    sentences = prose_sentences(_body(passage_text(sources[lead])))
    if found:
        return Lead(lead, sentences, found[1], found[0])
    return Lead(lead, sentences)


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
_WRAPPED_LINE = re.compile(r"(?m)^(?![ \t]*-\S)(.*[^.!?:;。！？\s])[ \t]*\n[ \t]*(?=[a-z`('\"])"
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


def _without_definitions(text: str) -> str:
    """The text without what a list of options says of each option ("-b" + "like --backup but does
    not accept an argument"): the line after a line that only names an option. A manual page's
    DESCRIPTION often holds its options (coreutils' pages do), and their descriptions read as prose
    but say what one option does, not what the page is about."""
    out: list[str] = []
    after_term = False
    for line in text.split("\n"):
        stripped = line.strip()
        if stripped and after_term:
            after_term = False
            continue
        if stripped:
            after_term = bool(OPTION_TERM.match(stripped))
        out.append(line)
    return "\n".join(out)


_GOES_ON = re.compile(r"[A-Za-z0-9(\[`'\"]")


def _join_filled(text: str) -> str:
    """Hard-wrapped prose joined where the wrap breaks a sentence before a capital or a number,
    which `_WRAPPED_LINE` leaves alone ("... for generating version 1, 3, 4, and 5" + "UUIDs as
    specified in RFC 4122."): a line that fills most of the width, does not end a sentence, and is
    followed at the same indent by one that goes on with a word (not a list item, table or prompt)."""
    lines = text.split("\n")
    width = max((len(x.rstrip()) for x in lines), default=0)
    out: list[str] = []
    for line in lines:
        prev = out[-1] if out else ""
        body, before = line.strip(), prev.strip()
        if (before and body and len(prev.rstrip()) >= FILLED_SHARE * width and width >= 40
                and not before.endswith((".", "!", "?", ":", ";", "。", "！", "？", "…"))
                and len(prev) - len(prev.lstrip()) == len(line) - len(line.lstrip())
                and _GOES_ON.match(body) and not _LIST_MARKER.match(line) and not before.startswith((">>>", "|", "+"))):
            out[-1] = f"{prev.rstrip()} {body}"
        else:
            out.append(line)
    return "\n".join(out)


def prose_sentences(text: str, *, definitions: bool = False) -> list[str]:
    """Sentences that read as prose: several words, not an option line such as "-a, --all",
    without running headers ("LS(1)  User Commands  LS(1)") or copyright lines."""
    text = _RUNNING_HEADER.sub(" ", text).replace("**", "")
    if not definitions:
        text = _without_definitions(text)
    text = _join_filled(text)
    joined = None
    while joined != text:  # a paragraph of several wrapped lines joins one line per pass
        joined, text = text, _WRAPPED_LINE.sub(lambda m: (m.group(1) or m.group(2)) + " ", text)
    text = _LIST_MARKER.sub("", text)
    return [s.strip() for s in grounding.split_sentences(text)
            if len(s.split()) >= 4 and not s.startswith(("-", "#", "|", ">>>")) and not _USAGE.search(s)
            and not boilerplate(s) and grounding.is_claim(s)]


OPENING_SENTENCES = 2  # a paragraph's/overview's sentences quoted from the purpose passage


def shaped_summary(ctx: TaskContext, req: TaskRequest, sources: list[Source], shape: Shape
                   ) -> tuple[str, list[SentenceCheck]]:
    """The summary text (every sentence followed by its [n]) and its checks. It leads with what the
    page says about itself: its own line (NAME, a docstring's first line), then its opening."""
    lead = page_lead(sources)
    n = lead.index + 1
    own = [(lead.line_index + 1, _as_sentence(lead.line))] if lead.line else []
    same = _words(lead.line)
    purpose = fit_text(ctx, "\n\n".join(x for x in lead.sentences if _words(x) != same)
                       or _body(passage_text(sources[lead.index])), int(PURPOSE_WORDS * 1.4))
    sentences = prose_sentences(purpose)
    if len(sentences) > 1 and sentences[-1].endswith("…"):  # cut by the length limit: not quoted
        sentences.pop()
    if shape.kind == "bullets":
        first = [(n, sentences[0] if sentences else _first_sentence(purpose))]
        items = own + first
        items += _other_points(ctx, sources, lead, shape.count - len(items))
        lines = [f"- {s} [{k}]" for k, s in items[:shape.count]]
        return "\n".join(lines), [SentenceCheck(s, [k], True, 1.0) for k, s in items[:shape.count]]
    if shape.kind in ("overview", "paragraph"):  # the document's own opening sentences (+ key points)
        continues = lead.index + 1 < len(sources) and _same_section(sources[lead.index], sources[lead.index + 1])
        opening = [x for j, x in enumerate(sentences[:OPENING_SENTENCES - len(own)])
                   if not _cut_at_chunk_edge(sentences, j, False, continues)]
        if len(opening) > 1 and opening[-1].endswith((":", "：")):  # "The interface consists of a single function:"
            opening.pop()  # introduces what the quote does not show
        quoted = own + [(n, x) for x in opening] or [(n, _first_sentence(purpose))]
        # A paragraph is quoted too: the model's paragraphs scored ROUGE-L 0.16 against the pages'
        # own descriptions, their opening sentences 0.22.
        points = _other_points(ctx, sources, lead, shape.count) if shape.kind == "overview" else []
        text = " ".join(f"{x} [{k}]" for k, x in quoted)
        if points:
            text += "\n\nKey points:\n" + "\n".join(f"- {x} [{k}]" for k, x in points)
        return text, [SentenceCheck(x, [k], True, 1.0) for k, x in quoted + points]
    if own:  # the page's own one-line summary is the one-sentence summary: nothing to write
        k, line = own[0]
        return f"{line} [{k}]", [SentenceCheck(line, [k], True, 1.0)]
    if sentences:  # its first sentence of prose: what the page says it is for, in its own words
        # (measured against the model's "what is it for" sentence, in the same run: manual pages
        # without NAME ROUGE-L 0.295 -> 0.312, modules 0.115 -> 0.126; the model's sentences were
        # often backed by the words of the page yet wrong: "mkswap is for Linux kernel, not Solaris.")
        return f"{sentences[0]} [{n}]", [SentenceCheck(sentences[0], [n], True, 1.0)]
    name = sources[lead.index].title or "it"
    prompt = SENTENCE_PROMPT.format(text=purpose, name=name)
    out = generate_text(ctx, [{"role": "user", "content": prompt}], max_new_tokens=48,
                        temperature=req.temperature, stop=["\n\n"])
    kept = [c for c in grounding.check_sentences(" ".join(out.split()), [purpose], ctx.embed)
            if c.supported and grounding.is_claim(c.text) and not _ABOUT_THE_PROMPT.search(c.text)
            and not boilerplate(c.text)][:1]
    if not kept:  # the model's words are not backed by the document: use the document's own
        kept = [SentenceCheck(s, [1], True, 1.0) for s in sentences[:1] or [purpose]]
    said = [grounding.strip_citations(c.text) for c in kept]
    text = " ".join(f"{s} [{n}]" for s in said)
    return text, [SentenceCheck(s, [n], True, c.score) for s, c in zip(said, kept)]


def _words(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


def _as_sentence(line: str) -> str:
    """A NAME or docstring line made to end as a sentence does ("ls - list directory contents.")."""
    line = line.strip()
    return line if line[-1:] in ".!?。！？" else line + "."


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


def _other_points(ctx: TaskContext, sources: list[Source], lead: Lead, count: int) -> list[tuple[int, str]]:
    """The first prose sentence of the next sections that say something new, in document order, up
    to the document's back matter (authors, bug reports, copyright); where that gives too few, the
    sections' next sentences fill in. A module's points are its docstring's next sentences (its
    passages are code)."""
    if count <= 0:
        return []
    first = lead.sentences[0] if lead.sentences else ""
    seen = {_words(first), _words(lead.line)}
    if sources and sources[0].path.endswith(".py") and lead.sentences:
        # a docstring's prose, not its examples ("'230 Guest login ok'", "drwxr-xr-x 8 root ...")
        rest = [x for x in lead.sentences[1:] if len(x.split()) <= 40 and _whole_point(x)
                and x[:1].isupper() and x.rstrip().endswith((".", "!", "?"))][:count]
        if len(rest) == count:  # else the code's own docstrings and comments fill in, below
            return [(_passage_of(sources, x), x) for x in rest]
        seen |= {_words(x) for x in rest}
    start = lead.index
    code = bool(sources) and sources[0].path.endswith(".py")
    points: list[tuple[int, int, str]] = []
    # what the options do only where the page's prose gives too few points (a short page)
    for definitions in (False, True):
        if len(points) >= count:
            break
        candidates = _point_candidates(sources, start, code, definitions)
        for leaning in (False, True):  # sentences that lean on the one before only where too few are left
            for rank in range(3):  # each passage's first sentence, then its second, ...
                for sentences in candidates:
                    if rank < len(sentences) and _words(sentences[rank][2]) not in seen and len(points) < count \
                            and leaning == bool(_BACK_REFERENCE.match(sentences[rank][2])):
                        seen.add(_words(sentences[rank][2]))
                        points.append(sentences[rank])
    if sources and sources[0].path.endswith(".py") and lead.sentences:
        points = [(_passage_of(sources, x), -1, x) for x in rest] + points[:count - len(rest)]
    return [(n, x) for n, _, x in sorted(points)]  # in document order


def _point_candidates(sources: list[Source], start: int, code: bool, definitions: bool
                      ) -> list[list[tuple[int, int, str]]]:
    """Per passage, its sentences usable as a point, in order: (citation number, position, text)."""
    candidates: list[list[tuple[int, int, str]]] = []
    for i in range(len(sources)):  # the lead passage too: its first sentence is seen, its next are not
        text = passage_text(sources[i])
        back_matter = _BACK_MATTER_LINE.search(text)
        sentences = prose_sentences(_code_prose(text) if code else _body(text, from_purpose=i >= start),
                                    definitions=definitions)
        continued = i > 0 and _same_section(sources[i - 1], sources[i])
        continues = i + 1 < len(sources) and _same_section(sources[i], sources[i + 1]) and not back_matter
        candidates.append([(i + 1, j, x) for j, x in enumerate(sentences)
                           if len(x.split()) <= 40 and _whole_point(x)
                           and not _cut_at_chunk_edge(sentences, j, continued, continues)])
        if back_matter and i >= start:
            break
    return candidates


_STRING_BLOCK = re.compile(r'("""|\'\'\')(.*?)\1', re.DOTALL)


def _code_prose(text: str) -> str:
    """The prose in a passage of Python code: its docstrings (first paragraphs), not its statements."""
    return "\n\n".join(inspect.cleandoc(m.group(2)).split("\n\n")[0] for m in _STRING_BLOCK.finditer(text))


def _passage_of(sources: Sequence[Source], sentence: str) -> int:
    """The [n] of the first passage that holds a sentence (whitespace as the page wraps it)."""
    words = _words(sentence)[:60]
    for i, s in enumerate(sources):
        if words in _words(passage_text(s)):
            return i + 1
    return 1


# A sentence that leans on the one before it ("It defaults to the number sign (#).", "These are
# ..."): quoted alone as a point, its subject is lost; a point only where no other is left.
_BACK_REFERENCE = re.compile(r"^(?:it|they|these|those|this|that|such|both|however|also)\b(?!\s*(?:module|page|file|"
                             r"command|program|function|class|library|document|manual|section)\b)", re.IGNORECASE)


def _whole_point(sentence: str) -> bool:
    """A sentence that stands alone as a point: not an introduction to a list ("... the following:")
    and not a piece with an unclosed bracket ("a device name (e.g., /dev/hdc1,")."""
    s = sentence.rstrip()
    return not s.endswith(":") and s.count("(") == s.count(")") and s.count("[") == s.count("]")
