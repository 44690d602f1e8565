"""What a loader hands the chunker: a document as structural sections that keep their provenance.

Kept apart from the loaders so that the format scanners (`code_blocks`), the chunker and the
loader worker process share these types without importing the loaders themselves.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field


# The version of what each format's loader hands the chunker: raised when a loader's output
# changes for files that did not (html 2: definition lists became sections led by their term), so
# the next ingest reads those files again instead of skipping them as unchanged. (text 2: manual
# pages rendered as text are read by their layout, `index.man_text`; html 3: a chunk no longer ends
# on an option's term without its description, `index.chunking`.)
READER_VERSIONS = {"html": 3, "text": 2}


# A line that only names an option and its argument, a manual's definition term: "-f, --follow[={name|descriptor}]",
# "-i[SUFFIX], --in-place[=SUFFIX]", "-l, --list [signal]", "--symbolic", "-n NUM". Its description follows it.
OPTION_TERM = re.compile(r"^[-+]{1,2}[^\s,]+(?:,?[ \t]+(?:[-+]{1,2}[^\s,]+|\[[^\]]*\]|<[^>]*>|[A-Z][A-Z_]*|\w+)){0,3},?$")


def leads_into_next(line: str) -> bool:
    """A line that is not complete without the one after it: an option's term ("-m"), or one that
    introduces what follows ("To install it, run:")."""
    return line.endswith(":") or bool(OPTION_TERM.match(line))


def reader_version(file_type: str) -> int:
    return READER_VERSIONS.get(file_type, 1)


def defined_term(heading: str, text: str) -> str:
    """The term a passage defines ("-p, --patch") when it is one, else "".

    A definition list's term heads its definition's section and is its first line, a paragraph of
    its own (`index.html_loader`): the heading path's last part, then a blank line. A heading is
    otherwise not in its section's text; a function's section starts with more than its heading
    ("def main():" under "def main"), a paragraph with more than a word of it."""
    term = heading.rsplit(" > ", 1)[-1].strip()
    first, newline, rest = text.lstrip().partition("\n")
    return term if term and first.strip() == term and newline and rest[:1] == "\n" else ""


class LoadError(Exception):
    """A file that cannot be indexed; the message is the reason shown in IngestReport.failed."""


@dataclass
class Section:
    """A structural piece of a document: one heading's text, one PDF page, one function."""

    text: str
    heading: list[str] = field(default_factory=list)
    start_line: int | None = None  # 1-based line of text[0] in the file, when the format has lines
    page: int | None = None
    kind: str = "prose"  # "prose" splits on sentences, "code" on lines


@dataclass
class LoadedDocument:
    path: str
    title: str
    file_type: str
    sections: list[Section]
