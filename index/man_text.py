"""Manual pages rendered as plain text (`man ls | col -b`, a distribution's translated pages).

A rendered manual page is laid out by indentation instead of markup: section headings at column 0
("NAME", "OPTIONS", "选项 OPTIONS"), subsection headings a little indented, paragraphs at the body
indent (7 columns, 5 on BSD pages), and each option as a term at the body indent with its
description indented further below it ("-a, --all" + "do not ignore entries starting with .") or
on the same line after a gap ("-c     with -lt: sort by ctime"). Read as one section of lines,
such a page gave its reader wrapped fragments: the sentence splitter cut "-a, --all 不要忽略以点号（“.”"
from "）起始的条目", and an option's description wrapped over three lines was three "sentences", the
last two without the option they describe.

So the page is read as the HTML loader reads a manual: its headings become sections, each
definition's term leads its description, a long definition becomes a section of its own under its
term and a short one a line of its section (the same rules and threshold: `html_loader`), and the
lines that the formatter filled (wrapped at the page width) are joined back into their paragraph.
The header and footer lines ("LS(1)   User Commands   LS(1)") are page furniture and dropped.
Any other text file is left to the plain-text loader.
"""
from __future__ import annotations

import re
from unicodedata import east_asian_width

from foundation.text import has_cjk
from index.html_loader import marked_sections
from index.sections import Section

# "LS(1)   User Commands   LS(1)", "SSH(1)   BSD General Commands Manual   SSH(1)"
_HEADER_END = re.compile(r"\([\w.]+\)\s*$")
_NAME_LINE = re.compile(r"\s(?:-|—|\\-)\s")  # "ls - list directory contents"
OVERSTRIKE = re.compile(".\x08")  # nroff's bold and underline, left in by `man` without col -b
# A definition's term on the line of its description: an option, then a gap ("-c     with -lt: ...");
# of one space only where the description starts at the column the list's previous description
# started at ("-batch Force batch I/O." after "-bail  Stop after hitting an error.").
_SAME_LINE_TERM = re.compile(r"^([-+][^\s].{0,40}?)(\s+)(\S.*)$")
_ENDS_CLAUSE = re.compile(r"[.。!！?？;；:：,，]$")
FILLED_SHARE = 0.6  # a line this much of the page's width was wrapped by the formatter
LOCATE_LINES = 2000  # how far past the previous section a section's first line is looked for


def _wide(char: str) -> bool:
    """A character that takes two columns on a terminal (CJK)."""
    return east_asian_width(char) in "WF"


def display_width(text: str) -> int:
    """Columns on a terminal: a CJK character takes two."""
    return sum(2 if _wide(c) else 1 for c in text)


def header_line(lines: list[str]) -> str:
    """The page's header ("LS(1)   User Commands   LS(1)"): a first line at column 0 that ends in
    a section number in parentheses and is followed by a heading, also at column 0; else ""."""
    text = [x for x in lines if x.strip()]
    if len(text) >= 3 and _HEADER_END.search(text[0]) and not text[1][0].isspace() and not text[0][0].isspace():
        return text[0]
    return ""


def is_man_page(lines: list[str]) -> bool:
    """A rendered manual page: a header line, or a heading at column 0 followed by an indented
    "name - what it does" line; then mostly indented text under at least three column-0 headings."""
    text = [x for x in lines if x.strip()]
    if len(text) < 4:
        return False
    headed = bool(header_line(lines))
    named = not text[0][0].isspace() and len(text[0].split()) <= 3 and text[1][:1].isspace() \
        and bool(_NAME_LINE.search(text[1]))
    headings = sum(not x[0].isspace() for x in text)
    return (headed or named) and headings >= 3 and len(text) - headings >= 0.6 * len(text)


def load_man_text(text: str, title: str) -> list[Section] | None:
    """The page's sections, or None when `text` is not a rendered manual page."""
    lines = [OVERSTRIKE.sub("", x).expandtabs(8).rstrip() for x in text.split("\n")]
    if not is_man_page(lines):
        return None
    header = header_line(lines)
    nonblank = [x for x in lines if x.strip()]
    # the footer ("GNU coreutils 9.1   September 2022   LS(1)"): the last line, at column 0 or
    # ending as the header does
    last = nonblank[-1]
    name = header.split()[-1] if header else ""
    furniture = {header.strip(), last.strip()} if header and (not last[0].isspace() or last.endswith(name)) \
        else {header.strip()}
    kept = [x for x in lines if not x.strip() or x.strip() not in furniture]
    sections = marked_sections(_marked(kept), title, words=word_count)
    _locate(sections, lines)
    return sections


def word_count(text: str) -> int:
    """Words, a CJK character counting half of one (a Chinese word is about two characters)."""
    cjk = sum(1 for c in text if _wide(c))
    return len(re.sub(r"[^\x00-\u2e7f]", " ", text).split()) + cjk // 2


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _join(a: str, b: str) -> str:
    """Two wrapped pieces of one paragraph: no space between two CJK characters."""
    if a and b and _wide(a[-1]) and _wide(b[0]):
        return a + b
    return f"{a} {b}"


def _marked(rows: list[str]) -> str:
    """The page in `html_loader.marked_sections`' notation: headings, definitions (a term and the
    lines indented below it), and paragraphs whose filled lines are joined."""
    # the body's indent: that of the first indented line (the NAME section's "ls - list ...")
    base = next((_indent(x) for x in rows if x.strip() and x[0] == " "), 0)
    width = max((display_width(x) for x in rows), default=80)
    description_column = -1  # where the last definition's description started: its list's column
    out: list[str] = []
    term_indent: int | None = None  # the open definition's term column
    paragraph: list[str] = []
    para_indent = -1

    def flush() -> None:
        """End the paragraph: a definition's description, or prose with Chinese in it, is one
        paragraph whatever its line widths (the formatter breaks Chinese text only at spaces, so
        its lines are ragged); elsewhere only lines that fill the page were wrapped."""
        nonlocal paragraph
        joined = term_indent is not None or any(has_cjk(x) for x in paragraph)
        if paragraph:
            out.append(paragraph[0])
            for piece in paragraph[1:]:
                if joined or (display_width(out[-1]) >= FILLED_SHARE * width and not out[-1].endswith(":")):
                    out[-1] = _join(out[-1], piece)
                else:
                    out.append(piece)
            out.append("")
        paragraph = []

    def close_definition() -> None:
        nonlocal term_indent
        if term_indent is not None:
            out.append("\x01e")
            term_indent = None

    following = [""] * len(rows)  # the next non-blank line after each (found once: pages run to 10,000 lines)
    for n in range(len(rows) - 2, -1, -1):
        following[n] = rows[n + 1] if rows[n + 1].strip() else following[n + 1]
    for n, line in enumerate(rows):
        if not line.strip():
            flush()
            continue
        indent, stripped = _indent(line), line.strip()
        if indent == 0:  # a section heading
            flush()
            close_definition()
            out.append(f"\x011\x02{stripped}")
            continue
        nxt = following[n]
        if 0 < indent < base and _indent(nxt) >= base:  # a subsection heading
            flush()
            close_definition()
            out.append(f"\x012\x02{stripped}")
            continue
        if term_indent is not None and indent > term_indent:  # the open definition's description
            if not paragraph and out[-1].startswith("\x01t"):
                description_column = indent
            if paragraph and indent != para_indent:
                flush()
            paragraph.append(stripped)
            para_indent = indent
            continue
        if term_indent is not None and indent <= term_indent:
            flush()
            close_definition()
        same = _SAME_LINE_TERM.match(stripped)
        next_is_deeper = bool(nxt) and _indent(nxt) > indent and rows[n + 1].strip() != ""
        if same and not _ENDS_CLAUSE.search(same.group(1)) \
                and (len(same.group(2)) >= 2 or indent + same.start(3) == description_column):
            flush()
            out.append(f"\x01t\x02{same.group(1).strip()}")
            term_indent = indent
            paragraph, para_indent = [same.group(3).strip()], indent + same.start(3)
            description_column = para_indent
            continue
        if next_is_deeper and display_width(stripped) <= 60 and not _ENDS_CLAUSE.search(stripped):
            flush()
            out.append(f"\x01t\x02{stripped}")
            term_indent = indent
            continue
        if paragraph and indent != para_indent:
            flush()
        paragraph.append(stripped)
        para_indent = indent
    flush()
    close_definition()
    return "\n".join(out)


def _locate(sections: list[Section], lines: list[str]) -> None:
    """Each section's first line in the file (1-based), for its provenance: the first line, from
    the previous section's, that starts as the section's text does (its lines were joined)."""
    at = 0
    for section in sections:
        key = " ".join(section.text.split())[:12]
        for i in range(at, min(len(lines), at + LOCATE_LINES)):
            if key and " ".join(lines[i].split()).startswith(key):
                section.start_line, at = i + 1, i + 1
                break
