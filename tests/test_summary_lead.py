"""Summaries lead with what a page says about itself (issue 20, part 5): a manual page's NAME line
and DESCRIPTION lead, a module docstring's first line, never boilerplate or a navigation bar.

Pages are loaded and chunked by the product's own loader and chunker, as ingest does.
"""
from __future__ import annotations

import heapq
import inspect
from pathlib import Path

import pytest

from assistant.config import Config
from assistant.evaluation.metrics import rouge_l
from assistant.evaluation.summaries import first_sentence, form_respected, summary_figures
from assistant.grounding import strip_citations
from assistant.tasks.base import TaskRequest
from assistant.tasks.summary_shape import Shape, boilerplate, page_lead, shaped_summary
from assistant.types import Source
from doubles import FixedGenerator, MemoryContext
from index.chunking import ApproxTokenCounter, chunk_document
from index.loaders import load_document

FIXTURES = Path(__file__).parent / "fixtures"
SQLITE3_MAN = (FIXTURES / "man" / "sqlite3.1.txt").read_text(encoding="utf-8")  # public domain, see its README
SQLITE3_NAME = "sqlite3 - A command line interface for SQLite version 3."
SQLITE3_SUMMARY = ("sqlite3 is a terminal-based front-end to the SQLite library that can evaluate queries "
                   "interactively and display the results in multiple formats.")
INVENTED = "The page is a powerful tool for many tasks."  # what the model must never be asked to replace


def sources_of(name: str, text: str) -> list[Source]:
    """A document as the index hands it to a task: loaded, chunked, one Source per chunk."""
    doc = load_document(Path(name), text.encode("utf-8"))
    out = []
    for i, c in enumerate(chunk_document(doc, ApproxTokenCounter())):
        where = f"lines {c.start_line}-{c.end_line}" if c.start_line else c.heading
        out.append(Source(path=name, title=doc.title, locator=where, snippet=c.text[:80], score=0.0, text=c.text,
                          chunk_id=f"c{i}", heading=c.heading, start_line=c.start_line, end_line=c.end_line))
    return out


def summarise(sources: list[Source], shape: Shape) -> tuple[str, FixedGenerator]:
    gen = FixedGenerator(INVENTED)
    ctx = MemoryContext([], gen, None, Config())
    text, checks = shaped_summary(ctx, TaskRequest(text="summarise", query="summarise"), sources, shape)
    assert all(c.citations for c in checks)
    return text, gen


def without_name(man: str) -> str:
    lines = man.splitlines()
    start = lines.index("NAME")
    return "\n".join(lines[:start] + lines[start + 3:])


@pytest.mark.parametrize("shape", [Shape("sentence"), Shape("paragraph"), Shape("bullets", 3), Shape("overview", 4)])
def test_the_summary_of_a_real_man_page_leads_with_its_purpose(shape):
    """sqlite3(1): whatever the form, the summary opens with its NAME line, then what its SUMMARY
    section says it is, and the model writes none of it."""
    text, gen = summarise(sources_of("sqlite3.1.txt", SQLITE3_MAN), shape)
    first = strip_citations(text.splitlines()[0].lstrip("- "))
    assert first.startswith(SQLITE3_NAME), text
    assert not gen.prompts and INVENTED not in text
    if shape.kind in ("paragraph", "overview"):
        assert SQLITE3_SUMMARY in text
    if shape.kind == "bullets":
        assert form_respected(text, "bullets:3") and SQLITE3_SUMMARY in text.splitlines()[1]
    if shape.kind == "sentence":
        assert form_respected(text, "sentence")
        assert rouge_l(text, "A command line interface for SQLite version 3") > 0.9


def test_without_its_name_line_a_man_page_leads_with_its_summary_section_not_its_example():
    """The page's own description comes first (SUMMARY), not DESCRIPTION's "To start a sqlite3
    interactive session, ..." nor the synopsis."""
    text, _ = summarise(sources_of("sqlite3.1.txt", without_name(SQLITE3_MAN)), Shape("paragraph"))
    assert text.startswith(SQLITE3_SUMMARY), text
    assert "[options]" not in text and "To start" not in text


def test_without_its_name_line_a_one_sentence_summary_is_the_pages_own_first_sentence():
    """Not a sentence the model writes about it: its "what is it for" sentences were backed by the
    page's words yet wrong ("mkswap is for Linux kernel, not Solaris.")."""
    text, gen = summarise(sources_of("sqlite3.1.txt", without_name(SQLITE3_MAN)), Shape("sentence"))
    assert strip_citations(text) == SQLITE3_SUMMARY and not gen.prompts
    assert form_respected(text, "sentence")


UUID_DOC = '''r"""
This module provides immutable UUID objects (class UUID) and the functions
uuid1(), uuid3(), uuid4(), uuid5() for generating version 1, 3, 4, and 5
UUIDs as specified in RFC 4122.

If all you want is a unique ID, you should probably call uuid1() or uuid4().
Note that uuid1() may compromise privacy since it creates a UUID containing
the computer's network address.  uuid4() creates a random UUID.

Typical usage:

    >>> import uuid
    >>> uuid.uuid4()
"""

import os
'''  # the opening of Python's uuid.py, without its docstring's summary line (PSF licence)


def test_a_sentence_wrapped_before_a_capital_is_quoted_whole():
    """The wrap after "version 1, 3, 4, and 5" cut the sentence before "UUIDs" (a capital, which
    the lower-case rule for wrapped lines does not join): the summary ended "... and 5"."""
    for shape in (Shape("sentence"), Shape("paragraph")):
        text, _ = summarise(sources_of("uuid.py", UUID_DOC), shape)
        assert "and 5 UUIDs as specified in RFC 4122." in text, text
        assert ">>>" not in text


MAN_WITH_BOILERPLATE = """FROBNICATE(7)            Frob Manual            FROBNICATE(7)

NAME
       frobnicate - tune the widget cache of a frob server

DESCRIPTION
       This is probably not the page that you are interested in; see frob(1) for the command.
       For an explanation of the terms used in this section, see attributes(7).

       The widget cache keeps recently drawn widgets in memory so that a frob server can redraw
       them without asking the client again.

       Each cache entry records its widget's size and the time it was last drawn.
"""


@pytest.mark.parametrize("shape", [Shape("paragraph"), Shape("bullets", 3)])
def test_pointers_and_disclaimers_are_never_quoted(shape):
    """The NAME line first, then the first sentence about the subject, not the ones about pages."""
    text, _ = summarise(sources_of("frobnicate.7.txt", MAN_WITH_BOILERPLATE), shape)
    assert " ".join(strip_citations(text.splitlines()[0].lstrip("- ")).split()).startswith(
        "frobnicate - tune the widget cache of a frob server. The widget cache keeps" if shape.kind == "paragraph"
        else "frobnicate - tune the widget cache of a frob server."), text
    assert "probably not" not in text and "attributes(7)" not in text
    lead = page_lead(sources_of("frobnicate.7.txt", without_name(MAN_WITH_BOILERPLATE)))
    assert lead.sentences[0].startswith("The widget cache keeps recently drawn widgets")


@pytest.mark.parametrize("sentence", [
    "For an explanation of the terms used in this section, see attributes(7).",
    "This is probably not the system call that you are interested in;",
    "This manual page documents the GNU version of chown.",
    "See module copyreg for a mechanism for registering custom picklers.",
    "Prev | Up | Part VI. Reference | Home | Next",
    "Prev Up Home Next",
    "Full documentation <https://www.gnu.org/software/coreutils/ls>",
    "Copyright © 2022 Free Software Foundation, Inc.",
])
def test_page_furniture_is_boilerplate(sentence):
    assert boilerplate(sentence)


@pytest.mark.parametrize("sentence", [
    "Pipes and FIFOs provide a unidirectional interprocess communication channel.",
    "The next step is to set up the index, see the upload page first.",  # "see" in the middle, not a pointer
    "Up to three retries are made before the request fails.",
    "This module provides two interfaces, broadly similar to the builtin function compile().",
])
def test_sentences_about_the_subject_are_not_boilerplate(sentence):
    assert not boilerplate(sentence)


DOCBOOK_PAGE = """<html><head><title>frobctl</title></head><body>
<div class="navheader"><table width="100%" summary="Navigation header">
<tr><th colspan="5" align="center">frobctl</th></tr>
<tr><td align="left"><a accesskey="p" href="a.html">Prev</a> </td><td align="left"><a accesskey="u" href="b.html">Up</a></td>
<th width="60%" align="center">Frob Client Applications</th><td align="right"><a accesskey="h" href="index.html">Home</a></td>
<td align="right"> <a accesskey="n" href="c.html">Next</a></td></tr></table><hr></div>
<div class="refentry"><div class="titlepage"></div>
<div class="refnamediv"><h2>Name</h2><p>frobctl &#8212; control a running frob server</p></div>
<div class="refsynopsisdiv"><h2>Synopsis</h2><div class="cmdsynopsis"><p><code class="command">frobctl</code> [<em>option</em>...]</p></div></div>
<div class="refsect1"><h2>Description</h2><p><span class="application">frobctl</span> sends commands to a running
frob server and prints its replies. It can start, stop and reload the server.</p>
<p>Every command waits for the server to confirm it before returning.</p></div>
<div class="refsect1"><h2>Options</h2><p>The options are read before any command is sent.</p></div>
</div>
<div class="navfooter"><hr><table width="100%" summary="Navigation footer">
<tr><td align="left"><a accesskey="p" href="a.html">Prev</a> </td><td align="center"><a accesskey="u" href="b.html">Up</a></td>
<td align="right"> <a accesskey="n" href="c.html">Next</a></td></tr>
<tr><td align="left">frobd </td><td align="center"><a accesskey="h" href="index.html">Home</a></td><td align="right"> frobtop</td></tr>
</table></div></body></html>"""


@pytest.mark.parametrize("shape", [Shape("sentence"), Shape("paragraph"), Shape("bullets", 3), Shape("overview", 4)])
def test_a_reference_pages_summary_leads_with_its_name_and_never_quotes_its_navigation_bar(shape):
    """A DocBook reference page (the layout of the PostgreSQL manual): its refnamediv is the lead,
    its "Prev | Up | ... | Home | Next" bars are never quoted."""
    text, _ = summarise(sources_of("frobctl.html", DOCBOOK_PAGE), shape)
    assert strip_citations(text.splitlines()[0].lstrip("- ")).startswith("frobctl — control a running frob server."), text
    for unwanted in ("Prev", "Home", "Next", "|", "frobctl [option"):
        assert unwanted not in text, (unwanted, text)
    if shape.kind == "paragraph":
        assert "sends commands to a running frob server" in text


def test_a_navigation_bar_left_in_the_index_text_is_never_quoted():
    """Pages indexed before the loader dropped navigation bars keep them as text: the summary's own
    rule leaves them out too."""
    nav = Source(path="frobd.html", title="frobd", locator="", snippet="", score=0.0, heading="",
                 text="frobd |\n\nPrev | Up | Frob Server Applications | Home | Next |")
    name = Source(path="frobd.html", title="frobd", locator="§ Name", snippet="", score=0.0, heading="frobd > Name",
                  text="frobd — the frob server daemon")
    body = Source(path="frobd.html", title="frobd", locator="§ Description", snippet="", score=0.0,
                  heading="frobd > Description",
                  text="frobd serves widgets to frob clients over a local socket. It reloads its cache on SIGHUP.")
    foot = Source(path="frobd.html", title="frobd", locator="§ Description", snippet="", score=0.0,
                  heading="frobd > Description", text="Prev Up Next\n\nfrobctl | Home | frobtop")
    for shape in (Shape("paragraph"), Shape("bullets", 3), Shape("overview", 4)):
        text, _ = summarise([nav, name, body, foot], shape)
        assert strip_citations(text.splitlines()[0].lstrip("- ")).startswith("frobd — the frob server daemon."), text
        assert "Prev" not in text and "|" not in text and "Home" not in text, text


HEAPQ = Path(inspect.getsourcefile(heapq)).read_text(encoding="utf-8")  # Python's own heapq.py


def test_a_modules_summary_is_its_docstrings_first_line():
    text, gen = summarise(sources_of("heapq.py", HEAPQ), Shape("sentence"))
    assert strip_citations(text) == heapq.__doc__.strip().splitlines()[0] and not gen.prompts


def test_without_its_summary_line_a_module_leads_with_its_docstring_not_its_code():
    first = heapq.__doc__.strip().splitlines()[0]
    cut = HEAPQ.replace(first + "\n\n", "", 1)
    assert first not in cut
    text, _ = summarise(sources_of("heapq.py", cut), Shape("paragraph"))
    assert text.startswith("Heaps are arrays for which a[k] <= a[2*k+1]"), text
    bullets, _ = summarise(sources_of("heapq.py", cut), Shape("bullets", 3))
    assert form_respected(bullets, "bullets:3") and "import" not in bullets and "def " not in bullets


def test_the_baseline_quotes_the_descriptions_first_sentence_as_it_stands():
    """The first-sentence baseline is naive on purpose: DESCRIPTION's first sentence, boilerplate
    and all; a module's docstring; else the first section."""
    man = sources_of("frobnicate.7.txt", MAN_WITH_BOILERPLATE)
    assert first_sentence(man).startswith("This is probably not the page")
    assert first_sentence(sources_of("heapq.py", HEAPQ)).startswith("Heap queue algorithm")
    sqlite = sources_of("sqlite3.1.txt", SQLITE3_MAN)
    assert first_sentence(sqlite).startswith("To start a sqlite3 interactive session")
    rows = [{"rouge_l": 0.4, "first_sentence_rouge_l": 0.2, "baseline_rouge_l": 0.1, "form_respected": True,
             "words": 10, "latency_ms": 5.0, "form": "sentence"}] * 2
    assert summary_figures(rows)["ratio_to_first_sentence"] == 2.0


def test_the_generated_styles_key_points_never_quote_furniture():
    """summary_style = "generated" falls back to quoted key sentences: the same rule keeps a
    navigation bar and a pointer elsewhere out of them."""
    from assistant.tasks.summarize import key_points  # the generated style's extractive fallback

    passages = ["Prev | Up | Frob Server Applications | Home | Next",
                "For an explanation of the terms used in this section, see attributes(7).",
                "The widget cache keeps recently drawn widgets in memory for the frob server.",
                "Each cache entry records the size of its widget and when it was last drawn."]
    ctx = MemoryContext([], FixedGenerator(INVENTED), default_embedder(), Config())
    points = key_points(ctx, passages)
    assert points and all("Prev" not in p and "attributes(7)" not in p for p in points), points


def default_embedder():
    from doubles import default_models  # loads the real models once per test process

    return default_models()[1]
