"""Ragged answers: shown text that starts or ends in the middle of a sentence, or quotes page furniture.

Issue 20 counted a third of the shown answers starting mid-sentence ("server using this tunnel,
you connect to port …"). These checks read only the shown text, so the same count runs on any
answer file, before and after a change. They are heuristics, tuned to err towards flagging:

- a part starts mid-sentence when its first word is a lower-case dictionary-like word ("memory
  buffers. The default …"), not a command or identifier (`git-daemon`, `--soft`, `sqlite3`), or
  when it opens with a comma, closing bracket or similar;
- a part ends mid-sentence when it ends in "…" / "..." or without closing punctuation, unless its
  last line is a list item, a table row or a command line (which end without a full stop);
- navigation text is a run such as "Prev | Up | Home | Next" or "Previous topic … Next topic".

A shown answer has up to two parts: the model's sentences and the quote under them ("> …").
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

_CITATION = re.compile(r"\s*[\[【]\s*\d{1,3}(?:\s*[,，、;]\s*\d{1,3})*\s*[\]】]")
_MARKUP = re.compile(r"\*\*|__|`")
# A page-name prefix the QA task puts before a quote ("git-fsck: ...").
_PAGE_PREFIX = re.compile(r"^[\w.+-]+:\s+")
_FIRST_WORD = re.compile(r"^[^\w\s]*([\w'-]+)")
_OPENS_BADLY = re.compile(r"^[,;:)\]}.!?]")
_CODEISH = re.compile(r"[-_./\d]|^[a-z]+[A-Z]")
_NAME_LINE = re.compile(r"^[\w.+-]+(?:\(\d\))?(?:,\s*[\w.+-]+)*\s+[-–—]\s+\S")
_ENDS_WELL = re.compile(r"[.!?:;。！？；)\]\"'”’]$")
_NAVIGATION = re.compile(r"\b(?:Prev(?:ious)?)\b[\s|]*(?:\bUp\b[\s|]*)?(?:\bHome\b[\s|]*)?\bNext\b|"
                         r"(?-i:\bPrevious topic\b|\bNext topic\b)|\bShow Source\b|\bQuick search\b|"
                         r"\bTable of Contents\b\s*\|", re.I)


@dataclass
class Ragged:
    """Counts over a set of shown answers (declines are left out: they quote no document)."""

    answers: int = 0
    starts_mid_sentence: int = 0
    ends_mid_sentence: int = 0
    navigation: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))


def parts(text: str) -> list[str]:
    """The model's sentences and the quote under them, each without citations, markup or "> "."""
    out = []
    for block in re.split(r"\n\n(?=> )", text):
        block = _MARKUP.sub("", _CITATION.sub("", block)).strip()
        block = "\n".join(line[2:] if line.startswith("> ") else line for line in block.split("\n")).strip()
        if block:
            out.append(block)
    return out


def starts_mid_sentence(part: str) -> bool:
    """True when `part` opens inside a sentence (a lower-case plain word, or stray punctuation)."""
    text = _PAGE_PREFIX.sub("", part, count=1) if _PAGE_PREFIX.match(part) and " " not in part.split(":")[0] else part
    text = text.lstrip("…. ").strip()
    if not text:
        return False
    if part.lstrip().startswith(("…", "...")) or _OPENS_BADLY.match(text):
        return True
    m = _FIRST_WORD.match(text)
    if not m:
        return False
    word = m.group(1)
    return word[0].islower() and not _CODEISH.search(word) and not text.startswith(("-", "$", "#", "|"))


def ends_mid_sentence(part: str) -> bool:
    """True when `part` stops inside a sentence ("…", or no closing punctuation on a prose line)."""
    text = part.rstrip()
    if text.endswith(("…", "...")) and not text.endswith(("etc...", "etc.")):
        return True
    last = text.split("\n")[-1].strip()
    if _ENDS_WELL.search(last) or last.endswith("|"):
        return False
    if last.startswith(("-", "*", "•", "|", "$", "#")) or re.match(r"^\d{1,2}[.)]\s", last):
        return False  # a list item, table row or command line ends without a full stop
    if _NAME_LINE.match(last):
        return False  # a manual page's NAME line: "git-am - Apply a series of patches from a mailbox"
    return len(last.split()) > 3  # a short label or command ("git reset --soft HEAD~1") is whole


def has_navigation(text: str) -> bool:
    return bool(_NAVIGATION.search(text))


def count(texts: Iterable[str]) -> Ragged:
    """How many of `texts` (shown answers, declines excluded by the caller) are ragged."""
    found = Ragged()
    for text in texts:
        found.answers += 1
        ps = parts(text)
        found.starts_mid_sentence += any(starts_mid_sentence(p) for p in ps)
        found.ends_mid_sentence += any(ends_mid_sentence(p) for p in ps)
        found.navigation += has_navigation(text)
    return found
