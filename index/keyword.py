"""Keyword search: BM25 (bm25s) over a tokeniser that handles English, code identifiers and Chinese.

Chinese has no spaces, so CJK runs are segmented with jieba (search mode, which also emits the
sub-words of long words); without jieba we fall back to overlapping character bigrams. Latin text
is lower-cased, split on non-word characters, and identifiers like `load_causal_lm` or
`DocumentIndex` also yield their parts so that a question in words finds code.
"""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Sequence

import numpy as np

_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af"
_TOKEN = re.compile(rf"[{_CJK}]+|[A-Za-z0-9_]+(?:'[a-z]+)?")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
STOPWORDS = frozenset(
    "a an and are as at be but by can do does for from has have how i if in into is it its of on or "
    "so such that the their then there these they this to was what when where which who why will "
    "with you your we our not no".split()
)
_jieba = None


def _segment_cjk(run: str) -> list[str]:
    global _jieba
    if _jieba is None:
        try:
            import jieba

            jieba.setLogLevel(logging.WARNING)
            _jieba = jieba
        except ImportError:
            _jieba = False
    if _jieba:
        words = [w for w in _jieba.lcut_for_search(run) if w.strip()]
        # single characters carry little meaning alone but keep short queries matchable
        return words
    if len(run) == 1:
        return [run]
    return [run[i:i + 2] for i in range(len(run) - 1)]


def _stem(word: str) -> str:
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


def tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    for m in _TOKEN.finditer(text):
        tok = m.group(0)
        if "\u3400" <= tok[0] and re.match(rf"[{_CJK}]", tok[0]):
            tokens.extend(_segment_cjk(tok))
            continue
        lower = tok.lower()
        if lower in STOPWORDS:
            continue
        tokens.append(_stem(lower))
        parts = [p.lower() for p in _CAMEL.findall(tok.replace("_", " "))] if ("_" in tok or not tok.islower()) else []
        if len(parts) > 1:
            tokens.extend(_stem(p) for p in parts if p not in STOPWORDS)
    return tokens


TOKENS_FILE = "tokens.jsonl"


class KeywordIndex:
    """BM25 over chunk texts. Rebuilt on ingest (IDF is global), saved beside the vectors.

    The token lists are saved too (`tokens.jsonl`, one chunk per line), so a re-ingest rebuilds
    BM25 from stored tokens and only tokenises new chunks: tokenising is ~70% of a rebuild.
    """

    def __init__(self, retriever=None, size: int = 0, tokens: list[list[str]] | None = None):
        self.retriever = retriever
        self.size = size
        self.tokens = tokens  # held only between build and save

    @classmethod
    def build(cls, texts: Sequence[str], show_progress: bool = False) -> "KeywordIndex":
        return cls.from_tokens([tokenize(t) for t in texts], show_progress)

    @classmethod
    def from_tokens(cls, tokens: list[list[str]], show_progress: bool = False) -> "KeywordIndex":
        import bm25s

        if not tokens:
            return cls(None, 0, [])
        corpus = [t or ["\u2205"] for t in tokens]  # empty docs still need a row
        retriever = bm25s.BM25()
        retriever.index(corpus, show_progress=show_progress)
        return cls(retriever, len(tokens), tokens)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "size.json").write_text(json.dumps({"size": self.size}))
        if self.tokens is not None:
            with (directory / TOKENS_FILE).open("w", encoding="utf-8") as fh:
                fh.writelines(json.dumps(t, ensure_ascii=False) + "\n" for t in self.tokens)
        if self.retriever is not None:
            self.retriever.save(str(directory), show_progress=False)
        self.tokens = None  # on disk now; do not keep hundreds of MB of lists alive

    @staticmethod
    def load_tokens(directory: Path, expected: int) -> list[list[str]] | None:
        """The saved token lists, or None if absent or not matching `expected` chunks."""
        path = directory / TOKENS_FILE
        if not path.exists():
            return None
        with path.open(encoding="utf-8") as fh:
            tokens = [json.loads(line) for line in fh]
        return tokens if len(tokens) == expected else None

    @classmethod
    def load(cls, directory: Path) -> "KeywordIndex":
        import bm25s

        size = json.loads((directory / "size.json").read_text())["size"]
        if size == 0:
            return cls(None, 0)
        return cls(bm25s.BM25.load(str(directory), mmap=False, show_progress=False), size)

    def search(self, query: str, k: int, mask: np.ndarray | None = None) -> list[tuple[int, float]]:
        """(row, bm25 score) pairs, best first; rows with a zero mask or zero score are dropped."""
        if self.retriever is None or k <= 0:
            return []
        tokens = [t for t in tokenize(query) if t in self.retriever.vocab_dict]
        if not tokens:
            return []
        scores = np.asarray(self.retriever.get_scores(tokens), dtype=np.float32)
        if mask is not None:
            scores = np.where(mask, scores, 0.0)
        # Select among matching chunks only: usually few, and partitioning an array of mostly equal
        # zeros is slow (16 ms at 30k chunks in bm25s' own top-k, 1 ms this way).
        rows = np.flatnonzero(scores > 0)
        if len(rows) > k:
            rows = rows[np.argpartition(-scores[rows], k - 1)[:k]]
        rows = rows[np.lexsort((rows, -scores[rows]))]
        return [(int(i), float(scores[i])) for i in rows]
