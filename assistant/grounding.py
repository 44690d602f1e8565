"""Grounding: split answers into sentences, read their [n] citations, and check each against passages.

A 135M-parameter generator rewords instead of copying and sometimes invents, so the orchestrator
cannot trust its citations (or their absence). Every sentence is scored against the passages it
cites with two signals that fail differently: embedding similarity (catches paraphrase, fooled by
on-topic inventions) and lexical overlap of content words (catches inventions, fooled by
paraphrase). Numbers must appear in the passage: a wrong version or port is the typical invention.
Chinese is handled by character bigrams, since the default embedder knows little Chinese.
"""
from __future__ import annotations

import re
from typing import Callable, Sequence

import numpy as np

from assistant.types import SentenceCheck
from foundation.text import content_tokens as _content_tokens
from foundation.text import has_cjk, stem

Embed = Callable[[list[str]], np.ndarray]

# A sentence supported by a passage scores above this (0.55 * cosine + 0.45 * overlap).
SUPPORT_THRESHOLD = 0.45
# ... and must share at least this share of its content words with the passage: the embedder rates
# an on-topic invention ("use Windows Update to uninstall") as close to the passage as the truth.
MIN_OVERLAP = 0.6
MIN_OVERLAP_CJK = 0.5
# Sentences with fewer content words than this ("Sure.", "Yes!") carry no claim to check.
MIN_CLAIM_TOKENS = 2

_CITE_RE = re.compile(r"[\[【]\s*(\d{1,3}(?:\s*[,，、;]\s*\d{1,3})*)\s*[\]】]")
_NUMBER_RE = re.compile(r"(?<![\w.])\d+(?:[.,:]\d+)*")
_IDENTIFIER_RE = re.compile(
    r"(?<![\w-])--?[A-Za-z][\w-]*"  # command-line options
    r"|\b[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)+\b"  # snake_case names, SQLITE_MAX_COLUMN
    r"|\b[A-Za-z_]\w*(?=\(\))"  # function calls written name()
    r"|(?<![\w/])/(?:[\w.+-]+/)*[\w.+-]+")  # absolute paths
_ABBREV = {"e.g", "i.e", "etc", "vs", "mr", "mrs", "dr", "cf", "fig", "no", "approx", "incl", "eg", "ie"}


def content_tokens(text: str) -> list[str]:
    """The claim words of `text` without its [n] markers (see `foundation.text.content_tokens`)."""
    return _content_tokens(strip_citations(text))


def overlap(claim: str, passage: str) -> float:
    """Share of the claim's content words found in the passage (0..1)."""
    claim_toks = {stem(t) for t in content_tokens(claim)}
    if not claim_toks:
        return 0.0
    passage_toks = {stem(t) for t in content_tokens(passage)}
    return len(claim_toks & passage_toks) / len(claim_toks)


def numbers(text: str) -> set[str]:
    return {n.rstrip(".,:") for n in _NUMBER_RE.findall(strip_citations(text))}


def identifiers(text: str) -> set[str]:
    """Options (`--force`, `-n`), snake_case or dotted names, calls (`strftime()`) and paths.

    These are what a small model invents most plausibly ("use strftime() to truncate"), and a
    reader cannot tell an invented one from a real one, so each must occur in the passage.
    """
    return {m.group(0).lower().rstrip(".,:;") for m in _IDENTIFIER_RE.finditer(strip_citations(text))}


def parse_citations(text: str) -> list[int]:
    """[1], [1, 3], [2][3], 【1】 -> sorted unique numbers."""
    nums: set[int] = set()
    for group in _CITE_RE.findall(text):
        nums.update(int(n) for n in re.split(r"[,，、;\s]+", group) if n)
    return sorted(n for n in nums if n > 0)


def strip_citations(text: str) -> str:
    """The text without [n] markers and without a leading list marker ("1.", "-", "a)")."""
    text = re.sub(r"\s+([.!?。！？])", r"\1", _CITE_RE.sub("", text)).strip()
    return re.sub(r"^(?:[-*•]|\d{1,2}[.)]|[A-Za-z][.)])\s+", "", text)


def split_sentences(text: str) -> list[str]:
    """Split English and Chinese text into sentences, keeping each sentence's citations with it.

    Citations written after the full stop ("... keys. [2]") belong to the sentence before; list
    items and lines are sentences of their own; "e.g.", "v1.2" and "install.md" do not end one.
    """
    sentences: list[str] = []
    for line in re.split(r"\n+", text):
        line = line.strip()
        if not line:
            continue
        start = 0
        i = 0
        while i < len(line):
            ch = line[i]
            end = None
            if ch in "。！？；!?":
                end = i + 1
            elif ch == "." and _ends_sentence(line, i):
                end = i + 1
            if end is not None:
                # absorb closing quotes/brackets and trailing citations into this sentence
                m = re.match(r"(?:[\"'”’)\]]*\s*(?:[\[【]\s*\d{1,3}(?:\s*[,，、;]\s*\d{1,3})*\s*[\]】]\s*)*)", line[end:])
                end += len(m.group(0)) if m else 0
                piece = line[start:end].strip()
                if piece:
                    sentences.append(piece)
                start = end
                i = end
                continue
            i += 1
        tail = line[start:].strip()
        if tail:
            if _CITE_RE.fullmatch(tail) and sentences:
                sentences[-1] += " " + tail
            else:
                sentences.append(tail)
    return sentences


def _ends_sentence(line: str, i: int) -> bool:
    nxt = line[i + 1] if i + 1 < len(line) else ""
    if nxt and not nxt.isspace() and nxt not in "[【\"')”’":
        return False  # 3.5, install.md, e.g.x
    word = re.search(r"([A-Za-z.]+)$", line[:i])
    if word and word.group(1).lower().rstrip(".") in _ABBREV:
        return False
    if re.fullmatch(r"\s*(?:[-*]\s*)?(?:\d+|[A-Za-z])", line[:i]):
        return False  # list markers "1." or "a."
    return True


def support_scores(claims: Sequence[str], passages: Sequence[str], embed: Embed | None) -> np.ndarray:
    """(claims x passages) support scores combining embedding cosine and lexical overlap."""
    if not claims or not passages:
        return np.zeros((len(claims), len(passages)))
    lex = np.array([[overlap(c, p) for p in passages] for c in claims])
    if embed is None:
        return lex
    vecs = np.asarray(embed([strip_citations(c) for c in claims] + list(passages)), dtype=np.float32)
    cos = np.clip(vecs[: len(claims)] @ vecs[len(claims):].T, 0.0, 1.0)
    # The embedder reads little Chinese: lean on character bigrams for Chinese claims.
    w = np.array([0.25 if has_cjk(c) else 0.55 for c in claims])[:, None]
    return w * cos + (1 - w) * lex


def _terms_ok(claim: str, passage: str) -> bool:
    """Every number and identifier of the claim occurs in the passage (case-insensitively)."""
    if numbers(claim) - numbers(passage):
        return False
    wanted = identifiers(claim)
    if not wanted:
        return True
    text = " ".join(passage.lower().split())
    return all(term in text for term in wanted)


def is_claim(sentence: str) -> bool:
    """A sentence that states something checkable (not "Sure.", not a markdown heading)."""
    if sentence.lstrip().startswith("#"):
        return False
    return len(content_tokens(sentence)) >= MIN_CLAIM_TOKENS


def check_sentences(
    text: str,
    passages: Sequence[str],
    embed: Embed | None,
    *,
    attribute: bool = True,
    threshold: float = SUPPORT_THRESHOLD,
) -> list[SentenceCheck]:
    """Check every sentence of `text` against the passages it cites ([1] = passages[0]).

    Citations pointing past the passages are dropped. With `attribute`, a sentence that cites
    nothing is attributed to the passage that supports it best (when any does). Sentences that
    make no claim ("Sure.") are marked supported with score 0 and never attributed.
    """
    sentences = split_sentences(text)
    if not sentences:
        return []
    scores = support_scores(sentences, passages, embed)
    checks: list[SentenceCheck] = []
    for i, sentence in enumerate(sentences):
        cited = [n for n in parse_citations(sentence) if 1 <= n <= len(passages)]
        if not is_claim(sentence):
            checks.append(SentenceCheck(text=sentence, citations=cited, supported=True, score=0.0))
            continue
        candidates = cited or (list(range(1, len(passages) + 1)) if attribute else [])
        min_lex = MIN_OVERLAP_CJK if has_cjk(sentence) else MIN_OVERLAP
        best_n, best = None, 0.0
        for n in candidates:
            s = float(scores[i, n - 1])
            if not _terms_ok(sentence, passages[n - 1]) or overlap(sentence, passages[n - 1]) < min_lex:
                s = min(s, threshold - 0.01)
            if best_n is None or s > best:
                best_n, best = n, s
        supported = best_n is not None and best >= threshold
        citations = cited if cited else ([best_n] if supported and best_n else [])
        checks.append(SentenceCheck(text=sentence, citations=citations, supported=supported, score=round(best, 4)))
    return checks


def any_supported_claim(checks: Sequence[SentenceCheck]) -> bool:
    return any(c.supported and is_claim(c.text) for c in checks)

