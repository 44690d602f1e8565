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
    r"`[^`\n]+`"  # anything written as code: `git push --delete`, `index.html`
    r"|(?<![\w-])--?[A-Za-z][\w-]*"  # command-line options
    r"|\b[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)+\b"  # snake_case names, SQLITE_MAX_COLUMN
    r"|\b[A-Za-z_]\w*(?=\(\))"  # function calls written name()
    r"|(?<![\w/])/(?:[\w.+-]+/)*[\w.+-]+"  # absolute paths
    r"|(?<![\w.])[A-Za-z][\w-]*(?:\.[A-Za-z_][\w-]*)+\b"  # dotted names: gc.reflogExpire, nsswitch.conf
    r"|\b[a-z]+[A-Z][A-Za-z0-9]*\b")  # camelCase: postBuffer, cancelScheduledShutdown
_ABBREVIATION = re.compile(r"^(?:[a-z]\.)*[a-z]$")  # e.g, i.e: a dotted name of one-letter parts is not one
# Words of the prompt's own instructions ("The assistant can answer in one sentence: ..."): a model
# sentence made of these and the question's words reads the prompt back.
_PROMPT_WORDS = frozenset("assistant sentence sentences above numbered texts passages".split())
_SPOKEN = re.compile(r"[^\W_]+(?:['’][^\W_]+)?")
READ_BACK_WORDS = 6  # a sentence that opens with the question's first six words is the question again
_FIRST_PERSON = re.compile(r"\b(?:I|I'm|I've|my|mine)\b")
_COPULA = re.compile(r"\b(?:is|are|was|were|means|refers to)\b", re.I)
_YES_NO = re.compile(r"^\W*(?:yes|no)\b", re.I)
_WRAPPED_END = re.compile(r"[A-Za-z,]$")
_WRAPPED_START = re.compile(r"[a-z][a-z']*(?:[ ,]|$)")
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
    """Options (`--force`, `-n`), snake_case, dotted and camelCase names, calls (`strftime()`),
    paths, and anything written as code (`git remote delete`, whole).

    These are what a small model invents most plausibly ("use strftime() to truncate", "the file
    `index.html` records the URL of each submodule"), and a reader cannot tell an invented one
    from a real one, so each must occur in the passage.
    """
    found = (" ".join(m.group(0).strip("`").split()).lower().rstrip(".,:;")
             for m in _IDENTIFIER_RE.finditer(_CITE_RE.sub(" ", text)))  # (strip_citations glues "file .gitmodules")
    return {term for term in found if term and not _ABBREVIATION.match(term)}


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


def says_nothing(sentence: str, question: str, instruction: str = "") -> bool:
    """True for a model sentence that only restates the question or the instruction, or is circular.

    Issue 20's examples pass the support check because their words occur in the passage, yet tell
    the user nothing: "The data page for Brin is a data page that stores information about the BRIN
    data page." (circular: the subject again, plus two words), "The default fillfactor is only used
    if I set one." (the user's own voice, nothing new), "The assistant can answer in one sentence"
    (the instruction), "I need a dummy package that does nothing but satisfy a dependency on ..."
    (the question read back, then words of the passage). A sentence is kept when it adds content
    words (stemmed) that neither the question nor the instruction holds and does not open with the
    question's first six words; a yes/no answer always is.
    """
    sentence = strip_citations(sentence)
    if _YES_NO.match(sentence):
        return False
    opening = _SPOKEN.findall(question.lower())[:READ_BACK_WORDS]
    if len(opening) == READ_BACK_WORDS and _SPOKEN.findall(sentence.lower())[:READ_BACK_WORDS] == opening:
        return True  # the question read back ("I need a dummy package that does nothing but ..."), then more
    known = {stem(t) for t in content_tokens(f"{question} {instruction}")} | _PROMPT_WORDS
    said = [stem(t) for t in content_tokens(sentence)]
    new = {t for t in said if t not in known}
    if not new:
        return True
    if _FIRST_PERSON.search(sentence) and len(new) <= 2:  # the question again, in the user's voice
        return True
    parts = _COPULA.split(sentence, maxsplit=1)
    if len(parts) == 2:  # "X is a ... X ...": the subject restated, at most two words added
        subject = {stem(t) for t in content_tokens(parts[0])}
        predicate = {stem(t) for t in content_tokens(parts[1])}
        return bool(subject) and subject <= predicate and len(predicate - subject - known) <= 2
    return False


def without_read_back(sentence: str, instruction: str) -> str:
    """The sentence after a read-back of the instruction ("The assistant can answer in one sentence:
    git reset --soft" -> "git reset --soft"); the sentence itself when it has none."""
    head, colon, rest = sentence.partition(":")
    if not colon or not rest.strip():
        return sentence
    words = {stem(t) for t in content_tokens(head)}
    allowed = {stem(t) for t in content_tokens(instruction)} | _PROMPT_WORDS
    return rest.strip() if words and words <= allowed else sentence


def split_sentences(text: str) -> list[str]:
    """Split English and Chinese text into sentences, keeping each sentence's citations with it.

    Citations written after the full stop ("... keys. [2]") belong to the sentence before; list
    items and lines are sentences of their own; "e.g.", "v1.2" and "install.md" do not end one.
    """
    sentences: list[str] = []
    for line in _unwrapped(re.split(r"\n+", text)):
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


def _unwrapped(lines: list[str]) -> list[str]:
    """Lines with hard-wrapped prose joined: a line that ends in a word or a comma, followed by one
    that starts with a lower-case word, is one sentence broken by the author's editor (a Markdown
    or text file, an e-mail in a <pre>, wrapped at 72 columns), not two. The first line must have
    six words or start with a capital (a passage may begin "This" + "part of my email ..."): two
    short lower-case lines are more often commands ("git add foo" + "git commit")."""
    out: list[str] = []
    for line in lines:
        line = line.strip()
        if out and _WRAPPED_END.search(out[-1]) and _WRAPPED_START.match(line) \
                and (len(out[-1].split()) >= 6 or out[-1][0].isupper()):
            out[-1] = f"{out[-1]} {line}"
        elif line:
            out.append(line)
    return out


def _ends_sentence(line: str, i: int) -> bool:
    nxt = line[i + 1] if i + 1 < len(line) else ""
    if nxt and not nxt.isspace() and nxt not in "[【\"')”’":
        return False  # 3.5, install.md, e.g.x
    prev = line[i - 1] if i > 0 else ""
    after = line[i + 1:].lstrip()[:1]
    if (prev and prev in "“‘\"'(（「《") or (prev.isspace() and not (after.isascii() and after.isupper())):
        return False  # a dot as a word of its own: "以点号（“.”）起始", "隐含的 . 和 ..", not "git add . Then"
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
    return not foreign_terms(claim, passage)


def foreign_terms(claim: str, passage: str) -> list[str]:
    """The claim's numbers and identifiers that the passage does not hold (case-insensitively)."""
    missing = sorted(numbers(claim) - numbers(passage))
    wanted = identifiers(claim)
    if wanted:
        text = " ".join(passage.lower().split())
        missing += sorted(term for term in wanted if term not in text)
    return missing


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

