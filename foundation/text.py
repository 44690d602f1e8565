"""Words: the one tokeniser, stemmer and stop-word list that keyword search and grounding share.

Both need the same idea of a "word" so that what BM25 matched is what the claim check counts.
They read it in two ways for reasons of their own:
- `search_tokens` (BM25): Chinese runs segmented into words with jieba (search mode, which also
  emits the sub-words of long words; overlapping bigrams without jieba), identifiers such as
  `load_causal_lm` or `DocumentIndex` also yield their parts so a question in words finds code.
- `content_tokens` (grounding): Chinese runs as character bigrams (no segmenter, so an answer and a
  passage that jieba would cut differently still meet), version numbers and dotted names kept whole
  ("1.2.3", "install.md") because a wrong number is the typical invention.
Both lower-case, drop `STOPWORDS` and stem with `stem`.
"""
from __future__ import annotations

import logging
import re

# CJK ideographs (with extension A and compatibility), kana and hangul.
CJK_RANGES = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af"
_CJK_RE = re.compile(f"[{CJK_RANGES}]")
_SEARCH_TOKEN = re.compile(rf"[{CJK_RANGES}]+|[A-Za-z0-9_]+(?:'[a-z]+)?")
_CONTENT_TOKEN = re.compile(
    rf"[A-Za-z_][A-Za-z0-9_\-.]*[A-Za-z0-9_]|[A-Za-z]|\d+(?:[.,:]\d+)*|[{CJK_RANGES}]+")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")

STOPWORDS = frozenset(
    "a an and are as at be but by can do does for from has have how i if in into is it its of on or "
    "so such that the their then there these they this to was what when where which who why will "
    "with you your we our not no".split()
)
# Words that carry no claim when an answer is checked: the rest of English's function words and the
# words of our own instructions ("according to the passage ...").
CLAIM_STOPWORDS = STOPWORDS | frozenset(
    """onto over under about is were been being am did done doing had having could should would shall
    may might must those it's them whom whose me my he she his her yes than too very just also only each
    any all some more most other same own up down out off again further once e.g i.e etc s t don't
    doesn't isn't aren't use used using please answer question passage according document documents
    text say says said tell let get got make made see one two""".split()
)

_jieba = None


def has_cjk(text: str) -> bool:
    return bool(_CJK_RE.search(text))


def stem(word: str) -> str:
    """A very light English stemmer: plurals and -ing/-ed, enough to match 'rotating' and 'rotate'."""
    if len(word) <= 3 or not word.isalpha():
        return word
    for suffix, keep in (("ies", "y"), ("sses", "ss"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            if suffix == "s" and word.endswith(("ss", "us", "is")):
                break
            word = word[: -len(suffix)] + keep
            break
    if word.endswith("e") and len(word) > 4:
        word = word[:-1]
    return word


def _segment_cjk(run: str) -> list[str]:
    global _jieba
    if _jieba is None:
        try:
            import jieba  # a dictionary load on first use (~1 s): only for Chinese text

            jieba.setLogLevel(logging.WARNING)
            _jieba = jieba
        except ImportError:
            _jieba = False
    if _jieba:
        return [w for w in _jieba.lcut_for_search(run) if w.strip()]
    if len(run) == 1:
        return [run]
    return [run[i:i + 2] for i in range(len(run) - 1)]


def search_tokens(text: str) -> list[str]:
    """Tokens for BM25: stemmed words, identifier parts, jieba words for Chinese."""
    tokens: list[str] = []
    for m in _SEARCH_TOKEN.finditer(text):
        tok = m.group(0)
        if _CJK_RE.match(tok[0]):
            tokens.extend(_segment_cjk(tok))
            continue
        lower = tok.lower()
        if lower in STOPWORDS:
            continue
        tokens.append(stem(lower))
        parts = [p.lower() for p in _CAMEL.findall(tok.replace("_", " "))] if ("_" in tok or not tok.islower()) else []
        if len(parts) > 1:
            tokens.extend(stem(p) for p in parts if p not in STOPWORDS)
    return tokens


def content_tokens(text: str) -> list[str]:
    """Lower-cased content words (unstemmed); Chinese runs become character bigrams."""
    out: list[str] = []
    for tok in _CONTENT_TOKEN.findall(text):
        if _CJK_RE.match(tok):
            out.extend(tok[i:i + 2] for i in range(max(1, len(tok) - 1)))
            continue
        tok = tok.lower().strip(".-")
        if tok and tok not in CLAIM_STOPWORDS:
            out.append(tok)
    return out
