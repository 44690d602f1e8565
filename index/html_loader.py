"""HTML pages as sections under their h1-h6 headings, read in one linear pass of parser events.

lxml's HTML parser (libxml2, which repairs broken markup as browsers do) calls a small target
object for each start tag, end tag and run of text; the target writes the text, with line breaks
around block tags and a marker line per heading, into a list. No tree is built, so the time is
linear in the page, memory stays near the size of its text, and nesting depth does not matter.
(Inserting line-break strings beside every block tag in a BeautifulSoup tree, as a previous
version did, cost time in the number of siblings per insertion: a 300 KB page took 86 s.)
Scripts, styles and page furniture are dropped. Furniture (navigation bars, sidebars, search
boxes, footers, Sphinx's "¶" heading anchors) is recognised by what the generators call it, in a
tag's role, class or id (`_FURNITURE`): Sphinx's `related`/`sphinxsidebar`/`footer`, DocBook's
`navheader`/`navfooter`, asciidoc's `footer`, SQLite's `nosearch` header, ARIA's `navigation`/
`banner`/`contentinfo`/`search`. A line that is nothing but navigation words ("Prev | Up | Home |
Next") is dropped too, whatever marks it, and so is a "last modified" stamp. Measured with
benchmarks/bench_furniture.py on six manuals of four generators (git's asciidoc, SQLite's own,
DocBook XSL x3, Sphinx; 835 pages): lines repeated on half the pages of a manual fell from 4,178
occurrences to 233 (what is left is text: "Table of Contents", "Part of the git(1) suite"), and
navigation lines from 359 to 0. trafilatura (a well-kept boilerplate remover, tried with
favor_recall and tables) took 10.6x the time on 33 of those pages, still left the navigation of
2 Sphinx pages, and returns text without the heading paths this loader keeps, so it was not added.

Definition lists (`<dl>`: a manual's options, an API's signatures, a glossary) are sections too:
each term (`<dt>`, several joined by ", ") heads its definition (`<dd>`) one level below the
section it is in, and is also the definition's first line. A chunk never crosses a section, so
the text saying what an option does always travels with the option's name: "Interactively select
hunks ..." is found under "-p, --patch" even when the definition is long. (Cut into the
surrounding section's chunks, a definition's later paragraphs lost their term: the answer to
"how can I stash only some changes" was the description without the option.) A definition of
fewer than `MIN_DEFINITION_WORDS` stays a line of its section ("-q, --quiet" + "Be quiet."): it
cannot lose its term to a chunk boundary that way, and alone it would be a passage too small to
mean anything. A table of contents written as a list of terms (DocBook's `dl class="toc"`) and a
Sphinx field list ("Parameters:", "Returns:") stay plain text.

Whitespace inside a text run is HTML's, not the author's: a paragraph wrapped over three source
lines is one paragraph, so runs of spaces and newlines become one space except inside <pre>. (Kept
as line breaks, they made each wrapped line a "sentence" and quotes began mid-sentence.)
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

from index.sections import LoadedDocument, LoadError, Section

_DROP = {"script", "style", "noscript", "template", "nav", "svg", "iframe"}
_BLOCK = {"p", "div", "li", "ul", "ol", "tr", "table", "pre", "blockquote", "section", "article", "dd", "dt", "dl",
          "figcaption", "caption", "br", "hr", "main", "header", "footer", "form"}
_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
_CELLS = {"td", "th"}
_PRE = {"pre", "textarea", "listing", "xmp", "plaintext"}
# A definition shorter than this stays a line of its section (a command index's "git-am(1) Apply a
# series of patches from a mailbox", a one-line option): a chunk boundary seldom separates it
# from its term, and alone it is a passage too small to say much, found first (short passages
# score high in BM25) for questions that a fuller passage answers. Measured with
# benchmarks/bench_ablation.py, strict accuracy (git + Debian FAQ / SQLite / handbook /
# paraphrases): no definition sections 0.524 / 0.623 / 0.594 / 0.219; every definition a section
# 0.621 on git + FAQ (citations 0.723 -> 0.676: a command index's one-liners were cited instead of
# the commands' pages); from 30 words 0.641 / 0.652 / 0.594 / 0.219; from 60 words 0.583 / 0.623 /
# 0.594 / 0.250. A short definition still splits its section where a long one follows, and such a
# fragment can win on its words alone (tests/test_declines.py, instaweb's web server).
MIN_DEFINITION_WORDS = 30
# Lists of terms that are not definitions: DocBook's tables of contents, Sphinx's field lists
# ("Parameters:", "Returns:"), which belong to the function they describe.
_PLAIN_LISTS = frozenset({"toc", "lot", "list-of-tables", "list-of-figures", "field-list"})
# Page furniture by the name its generator gives it (a role, or a class or id token); see above.
_FURNITURE = frozenset({
    "navigation", "banner", "contentinfo", "search",  # ARIA roles
    "related", "sphinxsidebar", "sphinxsidebarwrapper", "footer", "headerlink", "searchbox",  # Sphinx
    "navheader", "navfooter",  # DocBook XSL
    "footer-text",  # asciidoc
    "nosearch", "searchmenu",  # SQLite's documentation
    "breadcrumb", "breadcrumbs", "skip-link", "skiplink", "site-header", "site-footer",
})
# A line of nothing but navigation words: "Prev | Up | Home | Next", "« previous | next »".
_NAV_LINE = re.compile(r"(?:(?:prev(?:ious)?|next|up|home|top|contents|index|modules)(?:\s+(?:page|topic|chapter))?"
                       r"|[|»«<>←→\[\]:·•-])(?:\s*(?:(?:prev(?:ious)?|next|up|home|top|contents|index|modules)"
                       r"(?:\s+(?:page|topic|chapter))?|[|»«<>←→\[\]:·•-]))*", re.I)
_NAV_WORD = re.compile(r"prev|next|up|home", re.I)
_SPACE = re.compile(r"\s+")
# A page's time stamp ("This page last modified on 2022-10-26 20:02:18 UTC", "Last updated 2024-05-31"):
# the same footer on every page of SQLite's and asciidoc's manuals.
_STAMP_LINE = re.compile(r"(?:this (?:page|document) )?(?:was )?last (?:modified|updated|changed)\b.{0,40}\d{4}.{0,30}",
                         re.I)


def is_furniture(tag: str, attrib) -> bool:
    """A navigation bar, sidebar, footer or heading anchor, by its tag, role, class or id."""
    if tag in ("nav", "footer"):
        return True
    return bool(_names(attrib, "role", "class", "id") & _FURNITURE)


def _names(attrib, *keys: str) -> set[str]:
    """The lower-cased tokens of a tag's role, class or id: what generators call a part of the page."""
    return set(" ".join(attrib.get(k, "") for k in keys).lower().split())


def is_navigation_line(line: str) -> bool:
    """True for "Prev | Up | Home | Next" and the like (navigation words and separators only), and
    for a page's "last modified" stamp."""
    line = line.strip()
    if len(line) >= 100:
        return False
    return bool(_STAMP_LINE.fullmatch(line)) or (bool(_NAV_LINE.fullmatch(line)) and len(_NAV_WORD.findall(line)) >= 2)


def load_html(path: Path, text: str) -> LoadedDocument:
    """Sections under h1-h6 headings; the title from <title>, else the first <h1>, else the file name."""
    from lxml import etree  # lxml is imported by the loader that needs it, not by `import index`

    target = _Text()
    parser = etree.HTMLParser(target=target, encoding="utf-8", remove_comments=True)
    try:
        parser.feed(text.encode("utf-8", "replace"))
        parser.close()
    except etree.ParserError:  # "Document is empty": load_document reports "no text found"
        return LoadedDocument(str(path), path.stem, "html", [])
    except (etree.LxmlError, ValueError) as exc:
        raise LoadError(f"unreadable HTML: {exc}") from exc
    title = target.title or target.first_h1 or path.stem
    return LoadedDocument(str(path), title or path.stem, "html", marked_sections(target.marked_text(), title))


class _Text:
    """Parser target: the page's text with block line breaks and marker lines for headings and
    definitions ("\\x01<level>\\x02<name>", "\\x01t\\x02<term>", "\\x01e": see `marked_sections`).

    Consecutive text events are merged before use (libxml2 may split one text node at entities),
    so a heading's or title's words are joined exactly as the page has them.
    """

    def __init__(self) -> None:
        self.body: list[str] = []  # text inside <body>
        self.everything: list[str] = []  # all text, for pages without a body
        self.in_body = self.saw_body = False
        self.dropping = 0  # depth inside a dropped tag (script, nav, ...)
        self.heading: tuple[str, int, list[str]] | None = None  # (tag, depth inside it, its strings)
        self.capture: dict[str, tuple[int, list[str]]] = {}  # "title" / "h1": (depth, strings) while open
        self.title = self.first_h1 = ""
        self.seen: set[str] = set()
        self.pending: list[str] = []
        self.pre = 0  # depth inside <pre>: its line breaks are the author's
        self.lists: list[bool] = []  # open <dl>s, innermost last: True where its terms head sections
        self.term: tuple[int, list[str]] | None = None  # the <dt> being read: (depth inside it, its strings)
        self.terms: list[str] = []  # terms read, waiting for their <dd>

    # --- parser events ---------------------------------------------------------------------

    def start(self, tag: str, attrib) -> None:
        self._flush()
        if self.dropping or tag in _DROP or is_furniture(tag, attrib):
            self.dropping += 1
            return
        if tag in _PRE:
            self.pre += 1
        for name, (depth, strings) in list(self.capture.items()):
            self.capture[name] = (depth + 1, strings)
        if tag in ("title", "h1") and tag not in self.seen:  # the first of each, as the page's title
            self.seen.add(tag)
            self.capture[tag] = (1, [])
        if self.term is not None:
            self.term = (self.term[0] + 1, self.term[1])
            return
        if self.heading is not None:
            self.heading = (self.heading[0], self.heading[1] + 1, self.heading[2])
        elif tag == "dl":
            plain = bool(_names(attrib, "class", "id") & _PLAIN_LISTS) or (bool(self.lists) and not self.lists[-1])
            self.lists.append(not plain)
            self._emit("\n")
        elif tag == "dt" and self.lists and self.lists[-1]:
            self.term = (1, [])
        elif tag == "dd" and self.terms:
            term = ", ".join(self.terms)
            self.terms = []
            self._emit(f"\n\x01t\x02{term}\n")
        elif tag in _HEADINGS:
            self.heading = (tag, 1, [])
        elif tag in _BLOCK:
            self._emit("\n")
        if tag == "body":
            self.in_body = self.saw_body = True

    def end(self, tag: str) -> None:
        self._flush()
        if self.dropping:
            self.dropping -= 1
            return
        if tag in _PRE:
            self.pre = max(0, self.pre - 1)
        self._close_captures()
        if self.term is not None:
            depth, strings = self.term
            self.term = (depth - 1, strings) if depth > 1 else None
            if depth == 1:
                words = " ".join(" ".join(s.strip() for s in strings if s.strip()).split())
                if words:
                    self.terms.append(words)
            return
        if self.heading is not None:
            name, depth, strings = self.heading
            self.heading = (name, depth - 1, strings) if depth > 1 else None
            if depth == 1:
                words = " ".join(" ".join(s.strip() for s in strings if s.strip()).split())
                self._emit(f"\n\x01{name[1]}\x02{words}\n")
            return
        if tag == "dl" and self.lists:
            if self.lists[-1]:  # back to the section the list is in
                self._emit("\n\x01e\n")
            if self.terms:  # terms with no definition after them: plain lines there
                self._emit("\n" + "\n".join(self.terms) + "\n")
                self.terms = []
            self.lists.pop()
        if tag in _BLOCK:
            self._emit("\n")
        elif tag in _CELLS:
            self._emit(" | ")
        if tag == "body":
            self.in_body = False

    def data(self, text: str) -> None:
        if not self.dropping:
            self.pending.append(text)

    def close(self) -> None:
        self._flush()

    # --- helpers ---------------------------------------------------------------------------

    def _flush(self) -> None:
        """Hand the text gathered since the last tag to the heading, the captures and the output."""
        if not self.pending:
            return
        text = "".join(self.pending)
        self.pending.clear()
        if not self.pre:
            text = _SPACE.sub(" ", text)
        for _depth, strings in self.capture.values():
            strings.append(text)
        if self.term is not None:
            self.term[1].append(text)
        elif self.heading is not None:
            self.heading[2].append(text)
        else:
            self._emit(text)

    def _close_captures(self) -> None:
        for name, (depth, strings) in list(self.capture.items()):
            if depth > 1:
                self.capture[name] = (depth - 1, strings)
                continue
            del self.capture[name]
            value = " ".join(s.strip() for s in strings if s.strip())
            if name == "title":
                self.title = value
            else:
                self.first_h1 = value

    def _emit(self, text: str) -> None:
        self.everything.append(text)
        if self.in_body:
            self.body.append(text)

    def marked_text(self) -> str:
        return "".join(self.body if self.saw_body else self.everything)


def marked_sections(marked: str, title: str, words: Callable[[str], int] | None = None) -> list[Section]:
    """Cut the marked text at its markers; each section carries its heading path. (Also the
    reader of `index.man_text`, whose pages are marked the same way.)

    "\x01<level>\x02<name>" is an h1-h6 heading. "\x01t\x02<term>" starts a definition and
    "\x01e" ends a definition list: a definition of at least `MIN_DEFINITION_WORDS` becomes a
    section under its term (one level below the heading it is in); a shorter one stays a line of
    its section, as does the text after the list. `words(text)` counts a definition's words
    (default: split on spaces; a Chinese page counts its characters)."""
    count = words or (lambda x: len(x.split()))
    sections: list[Section] = []
    stack: list[tuple[int, str]] = []
    current: list[str] = []
    term: tuple[int, str] | None = None  # the open definition: where its lines start in `current`, its term

    def add(lines: list[str], names: list[str]) -> None:
        body = "\n".join(lines).strip()
        if body:
            sections.append(Section(body, names))

    def path() -> list[str]:
        return [h for lv, h in stack if not (lv == 1 and h == title)]

    def settle() -> None:
        """Give the open definition a section of its own when it is long enough."""
        nonlocal term
        if term is not None:
            start, name = term
            if sum(count(x) for x in current[start + 1:]) >= MIN_DEFINITION_WORDS:
                add(current[:start], path())
                add(current[start:], path() + [name])
                current.clear()
            term = None

    for raw in marked.split("\n"):
        line = " ".join(raw.split())
        if line.startswith("\x01"):
            settle()
            if line[1] == "t":
                if current and current[-1] != "":
                    current.append("")
                term = (len(current), line[3:].strip())
                current += [term[1], ""]
            elif line[1] != "e":
                add(current, path())
                current.clear()
                level, name = int(line[1]), line[3:].strip()
                while stack and stack[-1][0] >= level:
                    stack.pop()
                stack.append((level, name))
        elif line and line != "|" and not is_navigation_line(line):
            current.append(line)
        elif current and current[-1] != "":
            current.append("")  # keep paragraph breaks for the sentence splitter
    settle()
    add(current, path())
    return sections
