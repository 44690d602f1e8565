"""The scores behind `eval answers` and `eval summaries`, small enough to recompute by hand.

- strict match: an acceptable string occurs in the answer (case and spacing ignored), and the
  answer is short enough (≤ 80 words) that the string was not found by saying everything;
- ROUGE-L: the F-measure of the longest common subsequence of words (Lin, 2004), the usual
  summary score; Chinese is compared character by character.
"""
from __future__ import annotations

import re

from foundation.text import has_cjk

MAX_ANSWER_WORDS = 80
_CITATION = re.compile(r"[\[【]\s*\d{1,3}(?:\s*[,，、;]\s*\d{1,3})*\s*[\]】]")
_WORD = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]|[^\W_]+(?:['’.-][^\W_]+)*", re.UNICODE)


def normalise(text: str) -> str:
    """Lower-cased, citation marks removed, runs of whitespace made one space."""
    return " ".join(_CITATION.sub(" ", text).lower().split())


def word_count(text: str) -> int:
    """Words in `text`; a Chinese character counts as a word."""
    return len(_WORD.findall(_CITATION.sub(" ", text)))


def strict_match(answer: str, acceptable: list[str], max_words: int = MAX_ANSWER_WORDS) -> bool:
    """True when the answer is at most `max_words` words and contains one acceptable string."""
    if not acceptable or word_count(answer) > max_words:
        return False
    text = normalise(answer)
    compact = text.replace(" ", "")
    for want in acceptable:
        w = normalise(want)
        if w and (w in text or (has_cjk(w) and w.replace(" ", "") in compact)):
            return True
    return False


def rouge_tokens(text: str) -> list[str]:
    return [t.lower() for t in _WORD.findall(_CITATION.sub(" ", text))]


def lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence (dynamic programming, one row at a time)."""
    if len(a) < len(b):
        a, b = b, a
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b, 1):
            cur.append(prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1]))
        prev = cur
    return prev[-1]


def rouge_l(candidate: str, reference: str) -> float:
    """ROUGE-L F1 between a candidate and a reference (0 when either is empty)."""
    c, r = rouge_tokens(candidate), rouge_tokens(reference)
    lcs = lcs_length(c, r) if c and r else 0
    if not lcs:
        return 0.0
    precision, recall = lcs / len(c), lcs / len(r)
    return 2 * precision * recall / (precision + recall)


def median(values: list[float]) -> float | None:
    if not values:
        return None
    s = sorted(values)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2
