"""Follow-up questions rewritten into standalone queries before retrieval.

"What about on Windows?" retrieves nothing useful on its own. A tiny model rewrites such
questions badly (it answers them, or drops the topic), so the rewrite is deterministic: keep a
question that looks self-contained; otherwise add the key terms of the previous user question(s)
to it.
"""
from __future__ import annotations

import logging
import re
from typing import Sequence

from foundation.text import CLAIM_STOPWORDS as STOPWORDS
from foundation.text import has_cjk

# Words that point back at something said earlier, or that continue the previous question.
_ANAPHORA_EN = re.compile(
    r"\b(?:it|its|it's|this|that|these|those|they|them|their|there|the same|one|ones|former|latter|"
    r"above|previous|instead|also|too|else|again|then)\b",
    re.IGNORECASE,
)
_CONTINUATION_EN = re.compile(
    r"^\s*(?:and|or|but|so|also|then|what about|how about|and what|and how|why not|what if|"
    r"same for|what else|anything else|more on|tell me more|what's the default|how so)\b",
    re.IGNORECASE,
)
_ANAPHORA_ZH = re.compile(r"它|它们|这个|那个|这些|那些|该|其|此|上面|前面|刚才|那么|还有|呢[？?]?\s*$|那\S{0,2}呢")
_QUESTION_WORDS = {"how", "what", "why", "when", "where", "which", "who", "does", "do", "can", "could",
                   "should", "would", "is", "are", "i", "me", "my", "undo", "default"}
_ZH_STOP = set("的了吗呢是在有和与或也就都而及着把被让给对从向到于之这那它其该么什怎样哪个些吧啊呀嘛做用要会能请")
_ZH_STOPWORDS = {"可以", "怎么", "如何", "多少", "什么", "为什么", "哪里", "一下", "请问"}
_TERM_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_\-./]*[A-Za-z0-9_]|[\u3400-\u9fff]+|\d+(?:\.\d+)*")
_CONTENT_MIN = 2  # a question with fewer own content terms than this leans on the conversation


def _terms(text: str) -> list[str]:
    """Key terms in order of appearance: identifiers and content words; Chinese words via jieba."""
    out: list[str] = []
    for tok in _TERM_RE.findall(text):
        if has_cjk(tok):
            out.extend(w for w in _zh_words(tok) if w not in _ZH_STOPWORDS and not all(ch in _ZH_STOP for ch in w))
        elif tok.lower() not in STOPWORDS and tok.lower() not in _QUESTION_WORDS and len(tok) > 1:
            out.append(tok)
    seen: set[str] = set()
    return [t for t in out if not (t.lower() in seen or seen.add(t.lower()))]


def _zh_words(text: str) -> list[str]:
    try:
        import jieba  # segmentation gives whole words ("默认值") rather than bigrams
    except ImportError:  # pragma: no cover - jieba is a core dependency
        return [text]
    jieba.setLogLevel(logging.WARNING)
    return [w for w in jieba.lcut(text) if w.strip()]


def is_follow_up(text: str) -> bool:
    """True when `text` leans on earlier turns: pronouns, "what about ...", or too few own terms."""
    if has_cjk(text):
        own = [t for t in _terms(text) if t not in {"默认值", "多少", "什么", "怎么", "如何", "为什么", "哪里"}]
        return bool(_ANAPHORA_ZH.search(text)) or len(own) < 1
    if _CONTINUATION_EN.search(text) or _ANAPHORA_EN.search(text):
        return True
    return len(_terms(text)) < _CONTENT_MIN


def _user_turns(history: Sequence[dict[str, str]]) -> list[str]:
    return [m.get("content", "") for m in history if m.get("role") == "user" and m.get("content")]


def topic_terms(history: Sequence[dict[str, str]], max_terms: int = 8) -> list[str]:
    """Key terms of the latest user question, reaching one turn further back if it was a follow-up too."""
    users = _user_turns(history)
    terms: list[str] = []
    for turn in reversed(users[-2:]):
        for t in _terms(turn):
            if t.lower() not in {x.lower() for x in terms}:
                terms.append(t)
        if not is_follow_up(turn):
            break
    return terms[:max_terms]


def standalone_query(text: str, history: Sequence[dict[str, str]]) -> str:
    """Rewrite a follow-up into a query that retrieval can answer without the conversation."""
    text = text.strip()
    if not history or not _user_turns(history) or not is_follow_up(text):
        return text
    topic = topic_terms(history)
    own = {t.lower() for t in _terms(text)}
    topic = [t for t in topic if t.lower() not in own]
    if not topic:
        return text
    return _combine(text, topic)


def _combine(text: str, topic: list[str]) -> str:
    if has_cjk(text):
        joined = " ".join(topic)
        # "它的默认值是多少？" -> "max_connections 的默认值是多少？"
        replaced, n = re.subn(r"它们|它|这个|那个|该|其", joined + " ", text, count=1)
        return re.sub(r"\s+", " ", replaced if n else f"{joined} {text}").strip()
    return f"{text} ({' '.join(topic)})"

