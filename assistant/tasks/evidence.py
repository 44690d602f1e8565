"""Narrowing: the one to three sentences of the retrieved passages that bear on the question.

The default generator answers about half of factual questions right when handed the ~120 words
that hold the answer, and worse with more text, so the QA task hands it a narrow window around
the best sentence instead of a whole chunk. The same ranking picks the sentence that is quoted
(cited) when the model's own answer is not supported: "extraction".

A sentence is scored for how well it answers, not only for topic:
- embedding similarity to the question (paraphrase);
- the share of the question's content words found in the sentence and its heading (the words the
  user typed are usually in the answer's sentence);
- a small bonus when the question asks for a value ("how many", "default", "which option"; in
  Chinese also "怎样/如何": on manual pages the way to do something is an option) and the
  sentence carries one (a number, an option such as `--force`, an identifier): the rules
  number-bonus and option-bonus of `assistant.tasks.rules`;
- a small prior for the retriever's order;
- nothing for its own words when it only restates a question: a sentence that is itself a question,
  or that holds the user's question word for word (an FAQ's question line, a documented example of
  the question) would, quoted, read the question back instead of answering it.

By default (`Config.evidence_windows`, `score_windows`) the meaning and the word coverage are half
the sentence's own and half those of the window it would hand the model (`window`: it and the
sentences around it): the model answers from the window, and a question asked in other words than
the document's rarely shares them with the one sentence that holds the value ("The default value
is 6700." after "When there are approximately more than this many loose objects ..."), while the
window around it carries the topic's words and meaning together with the value.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from assistant.grounding import overlap, split_sentences
from assistant.tasks import rules
from assistant.tasks.base import TaskContext
from assistant.tasks.budget import passage_text
from assistant.types import Source
from foundation.text import has_cjk
from index.sections import defined_term, leads_into_next

MAX_EVIDENCE_WORDS = 120  # measured: the default model answers best from ~120 words or fewer
MAX_SENTENCE_CHARS = 400  # a "sentence" longer than this is a table or a run-on line: cut it (~65 words)
# Weights chosen on benchmarks/devset (git + Debian FAQ questions, 103 answerable): the window
# around the top sentence held the answer for 41 questions with (0.5, 0.4, 0.08, 0.06, 0) and for
# 51 with these; the retriever's order and the sentence after the best match matter more than
# cosine alone suggested ("To undo a commit, run:" is followed by the command).
WEIGHTS = (0.30, 0.40)  # cosine, question-word coverage (English); Chinese leans on coverage
WEIGHTS_CJK = (0.15, 0.55)
# The bonus for a window that carries the value asked for: a number, or an option (half of it for an
# option unless the question asks for one expressly, `rules.ASKS_OPTION_EXPRESSLY`). Half for every
# option question until 2026-12-07; against that, on the five dev sets: strict accuracy git+faq
# 0.631 -> 0.641, paraphrase 0.281 -> 0.313, handbook 0.656 -> 0.688, zh 0.54 -> 0.58, sqlite
# 0.623 either way (the whole for a bare "which"/"what" too: sqlite 0.609, the others the same).
VALUE_BONUS = 0.16
RANK_PRIOR = 0.30
NEXT_COVER = 0.20  # the next sentence's coverage of the question, and half its value bonus

_SPACES = re.compile(r"\s+")
_ANAPHOR = re.compile(r"^(it|this|these|that|those|they|such|then|however|otherwise|also|here|there)\b", re.I)


@dataclass
class Evidence:
    """A window of consecutive sentences from one source, around its best sentence."""

    source: int  # index into the sources given (citation number = source + 1)
    text: str  # the window handed to the model
    sentence: str  # the best sentence alone: what extraction quotes
    score: float
    about: str = ""  # its source's title, heading and path: where a named thing may be named instead


def _sentences(text: str) -> list[str]:
    """A passage's sentences, without code-fence markers and with over-long ones cut. A line
    starting with "#" stays: a passage's headings are in its heading, never its text, so such a
    line is a root prompt or a comment ("# exportfs -ra" after "... the following commands:").

    A line that ends in ":" or "," is joined to the next ("To install it, run:" + "apt install
    foo"): the answer is often the command or value on the line after its introduction. So is a
    line that only names an option ("-p, --parents" + "make parent directories as needed", a
    manual page's layout): the question matches the description, the answer is the option. The
    joined line is complete: wc(1) in Chinese ends its descriptions without a full stop, and
    "-c, --bytes 输出字节统计数" still reads as a term (a CJK word as the option's argument), which
    took the next option's term into its sentence (zh strict accuracy 0.58 -> 0.60 without it).
    """
    out: list[str] = []
    joined = False  # out[-1] is an option's term with its description: complete, unless it ends in ":" or ","
    for s in split_sentences(text):
        s = s.strip()
        if not s or s.startswith(("```", "~~~")):  # code-fence markers are markup
            continue
        last = out[-1] if out else ""
        introduces = last.endswith((",", ":"))  # ("" for the first line: nothing to join)
        if introduces or (not joined and leads_into_next(last)):
            joined = not introduces
            out[-1] = f"{last} {s}"
        else:
            joined = False
            out.append(s)
    return [s if len(s) <= MAX_SENTENCE_CHARS else s[:MAX_SENTENCE_CHARS].rsplit(" ", 1)[0] + " …" for s in out]


def value_bonus(question: str, sentence: str, off: frozenset[str] = frozenset()) -> float:
    """A nudge towards sentences that carry the kind of value the question asks for (rules
    number-bonus and option-bonus, unless named in `off`)."""
    bonus = 0.0
    if "number-bonus" not in off and rules.ASKS_NUMBER.search(question) and rules.HAS_NUMBER.search(sentence):
        bonus += VALUE_BONUS
    if "option-bonus" not in off and rules.ASKS_OPTION.search(question) and rules.HAS_OPTION.search(sentence):
        bonus += VALUE_BONUS if rules.ASKS_OPTION_EXPRESSLY.search(question) else VALUE_BONUS / 2
    return bonus


def restates_question(question: str, sentence: str) -> bool:
    """True for a sentence that is a question itself or contains `question` word for word."""
    if sentence.rstrip(" *_`\"'").endswith(("?", "？")):
        return True
    q = _SPACES.sub(" ", question.lower()).strip().rstrip("?？ ")
    return len(q) >= 12 and q in _SPACES.sub(" ", sentence.lower())


def score_sentences(ctx: TaskContext, question: str, sentences: Sequence[str], contexts: Sequence[str],
                    ranks: Sequence[int], following: Sequence[str] | None = None) -> np.ndarray:
    """How well each sentence answers `question` (higher is better); `contexts` are their headings,
    `following` the sentence after each one in its passage ("" at the end)."""
    if not sentences:
        return np.zeros(0)
    following = following or [""] * len(sentences)
    vecs = np.asarray(ctx.embed([question] + list(sentences)), dtype=np.float32)
    cos = vecs[1:] @ vecs[0]
    cover = np.array([overlap(question, f"{c} {s}") for s, c in zip(sentences, contexts)])
    cover_next = np.array([overlap(question, f) if f else 0.0 for f in following])
    w_cos, w_cover = WEIGHTS_CJK if has_cjk(question) else WEIGHTS
    off = rules.disabled(ctx.config.rules_off)
    bonus = np.array([value_bonus(question, s, off) + 0.5 * (value_bonus(question, f, off) if f else 0.0)
                      for s, f in zip(sentences, following)])
    prior = np.array([RANK_PRIOR * max(0.0, 1.0 - 0.25 * r) for r in ranks])
    # An echo of the question keeps only what its neighbour and position give it: its own words
    # and meaning are the question's, not an answer's.
    echo = np.array([restates_question(question, s) for s in sentences])
    own = np.where(echo, 0.0, w_cos * cos + w_cover * cover)
    return own + NEXT_COVER * cover_next + bonus + prior


def score_windows(ctx: TaskContext, question: str, sentences: Sequence[str], windows: Sequence[Sequence[int]],
                  contexts: Sequence[str], ranks: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """How well each sentence, and the window around it, answer `question` (higher is better).

    The signals of `score_sentences` (embedding similarity, question-word coverage with the heading,
    the value bonus, the retriever's order), with similarity and coverage the mean of the sentence's
    own and its window's; `windows[i]` are the positions in `sentences` of the sentences `window`
    hands the model for sentence i. A window's meaning is the sum of its sentences' embeddings
    (normalised): on the dev sets it chose windows as well as embedding each window's text, at no
    cost beyond the sentences' own embeddings. The window carries the topic's words and meaning with
    the value that follows them; the sentence's own share keeps the best sentence (the one quoted in
    bold) the one that answers, not a neighbour of it. A sentence that restates the question is left
    out of the window scored, and as the best sentence gets nothing of its own: the sentence after
    an FAQ's question line is the one to quote.

    Returns the scores and each sentence's own share (its meaning, coverage and value alone), by
    which `narrow` picks the sentence to quote in bold inside the chosen window: the window around
    "SYNOPSIS mkdir [OPTION]..." may hold the answer, the option line is still the one to mark.
    """
    if not sentences:
        return np.zeros(0), np.zeros(0)
    vecs = np.asarray(ctx.embed([question] + list(sentences)), dtype=np.float32)
    query, sent = vecs[0], vecs[1:]
    echo = np.array([restates_question(question, s) for s in sentences])
    kept = [[j for j in w if not echo[j]] if not echo[i] else [] for i, w in enumerate(windows)]
    pooled = np.array([sent[k].sum(axis=0) if k else np.zeros_like(query) for k in kept])
    cos_win = (pooled @ query) / np.maximum(np.linalg.norm(pooled, axis=1), 1e-9)
    texts = [" ".join(sentences[j] for j in k) for k in kept]
    cover_own = np.array([overlap(question, f"{c} {s}") for s, c in zip(sentences, contexts)])
    cover = (cover_own + np.array([overlap(question, f"{c} {t}") for t, c in zip(texts, contexts)])) / 2
    w_cos, w_cover = WEIGHTS_CJK if has_cjk(question) else WEIGHTS
    off = rules.disabled(ctx.config.rules_off)
    bonus = np.array([value_bonus(question, t, off) for t in texts])
    prior = np.array([RANK_PRIOR * max(0.0, 1.0 - 0.25 * r) for r in ranks])
    own = w_cos * (sent @ query + cos_win) / 2 + w_cover * cover
    alone = w_cos * (sent @ query) + w_cover * cover_own + np.array([value_bonus(question, s, off) for s in sentences])
    return np.where(echo, 0.0, own) + bonus + prior, np.where(echo, -1.0, alone)


def window(sentences: Sequence[str], best: int, max_words: int = MAX_EVIDENCE_WORDS) -> str:
    """The best sentence with the neighbours it needs: the one before when it starts with "It"/
    "This" (or is very short), then following ones while the window stays short."""
    lo, hi = window_bounds(sentences, best, max_words)
    return " ".join(sentences[lo:hi + 1])


def window_bounds(sentences: Sequence[str], best: int, max_words: int = MAX_EVIDENCE_WORDS) -> tuple[int, int]:
    """The first and last sentence of `window` around `best`."""
    lo = hi = best
    if best > 0 and (_ANAPHOR.match(sentences[best]) or len(sentences[best].split()) < 8):
        lo = best - 1

    def words(a: int, b: int) -> int:
        return sum(len(s.split()) if not has_cjk(s) else len(s) // 2 for s in sentences[a:b + 1])

    while hi + 1 < len(sentences) and words(lo, hi + 1) <= max_words // 2:
        hi += 1
    return lo, hi


def narrow(ctx: TaskContext, question: str, sources: Sequence[Source], *, max_sources: int = 3,
           max_words: int = MAX_EVIDENCE_WORDS) -> list[Evidence]:
    """The best window of each of the first `max_sources` sources, best first (scored as windows,
    or as sentences with `Config.evidence_windows` off)."""
    per_source = [_sentences(passage_text(s)) for s in sources[:max_sources]]
    flat, following, contexts, ranks = [], [], [], []
    for i, (src, sents) in enumerate(zip(sources, per_source)):
        for j, s in enumerate(sents):
            flat.append(s)
            following.append(sents[j + 1] if j + 1 < len(sents) else "")
            contexts.append(f"{src.title} {src.heading}")
            ranks.append(i)
    if ctx.config.evidence_windows:
        windows, start = [], 0
        for sents in per_source:
            bounds = (window_bounds(sents, j, max_words) for j in range(len(sents)))
            windows += [range(start + lo, start + hi + 1) for lo, hi in bounds]
            start += len(sents)
        scores, alone = score_windows(ctx, question, flat, windows, contexts, ranks)
    else:
        scores = alone = score_sentences(ctx, question, flat, contexts, ranks, following)
    found: list[Evidence] = []
    start = 0
    for i, sents in enumerate(per_source):
        if sents:
            local = scores[start:start + len(sents)]
            best = int(np.argmax(local))
            lo, hi = window_bounds(sents, best, max_words)
            marked = lo + int(np.argmax(alone[start + lo:start + hi + 1]))  # the window's own best sentence
            src = sources[i]
            text = window(sents, best, max_words)
            if lo > 0 and (term := defined_term(src.heading or "", passage_text(src))):
                text = f"{term}: {text}"
            found.append(Evidence(i, text, sents[marked], float(local[best]),
                                  about=f"{src.title} {src.heading} {src.path}"))
        start += len(sents)
    return sorted(found, key=lambda e: -e.score)
