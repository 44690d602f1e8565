"""Definition lists are sections led by their term (index.html_loader): a manual's option, an API's
signature or a glossary word stays with the text that explains it, whatever the chunking does.
Real pages: git's asciidoc man page (tests/fixtures/ranker/git) and a DocBook XSL chapter."""
from __future__ import annotations

import re
from pathlib import Path

from index import DocumentIndex
from index.html_loader import load_html
from index.loaders import load_document
from index.sections import READER_VERSIONS, defined_term

FIXTURES = Path(__file__).parent / "fixtures"
INDEX_PACK = FIXTURES / "ranker" / "git" / "git-index-pack.html"
GIT_CLEAN = FIXTURES / "ranker" / "git" / "git-clean.html"
DOCBOOK_TOC = FIXTURES / "html" / "docbook" / "checkit.en.html"


def sections(page: Path):
    return load_document(page, page.read_bytes()).sections


def test_an_option_heads_its_long_description_on_a_real_man_page():
    secs = sections(INDEX_PACK)
    by_heading = {" > ".join(s.heading): s.text for s in secs}
    threads = by_heading["git-index-pack(1) Manual Page > OPTIONS > --threads=<n>"]
    assert threads.startswith("--threads=<n>\n\n") and "reduce packing time on multiprocessor machines" in threads
    # options described in a few words stay lines of OPTIONS, each with its description
    options = "\n".join(s.text for s in secs if s.heading == ["git-index-pack(1) Manual Page", "OPTIONS"])
    assert "-v\n\nBe verbose about what is going on, including progress status." in options
    assert "--threads" not in options


def test_a_docbook_table_of_contents_stays_plain_text():
    secs = sections(DOCBOOK_TOC)
    assert secs[0].heading == [] and "7.1. Suspicious changes" in secs[0].text
    assert all(len(s.heading) == 1 for s in secs[1:])  # chapters' h2 headings only, no terms


LONG = " ".join(["Everything the tool knows is copied, which takes a while on a large tree."] * 5)  # 70 words


def test_long_definitions_are_sections_and_the_rest_stays_in_its_section():
    html = f"""<html><body><h1>Tool</h1><h2>Options</h2><p>Flags the tool reads.</p>
      <dl><dt>-a</dt><dt>--all</dt><dd><p>{LONG}</p></dd>
        <dt>-q</dt><dd>Quiet.</dd><dt>--orphan</dt></dl>
      <p>Text after the list.</p><h2>Exit status</h2><p>Zero.</p></body></html>"""
    doc = load_html(Path("tool.html"), html)
    got = [(" > ".join(s.heading), s.text.replace("\n\n", " / ")) for s in doc.sections]
    assert got == [
        ("Options", "Flags the tool reads."),
        ("Options > -a, --all", f"-a, --all / {LONG}"),
        ("Options", "-q / Quiet. / --orphan / Text after the list."),  # short, and a term with no definition
        ("Exit status", "Zero."),
    ]


def test_the_term_leads_only_a_definition():
    assert defined_term("OPTIONS > -p, --patch", "-p, --patch\n\nThis option ...") == "-p, --patch"
    assert defined_term("OPTIONS", "Flags the tool reads.") == ""
    assert defined_term("", "anything") == ""
    assert defined_term("Search", "Search combines dense vector search ...") == ""  # a heading's word starts it


def test_sections_of_code_and_prose_define_nothing():
    """A function's section starts with its name ("func RetryBackoff(attempt int) int {" under
    "func RetryBackoff"): no term is read into it, and its chunks are left as they are."""
    for page in [FIXTURES / "index" / "corpus" / "client.go", Path(__file__), FIXTURES / "index" / "corpus" / "faq.html"]:
        for s in sections(page):
            assert not defined_term(" > ".join(s.heading), s.text), (page, s.heading)


def test_pages_read_by_an_older_loader_are_read_again(tmp_path, monkeypatch):
    """Unchanged files are skipped on the next ingest, unless their loader's output changed since."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "git-clean.html").write_bytes(GIT_CLEAN.read_bytes())
    (docs / "notes.md").write_text("# Notes\n\nPlain notes.\n")
    index = DocumentIndex.open(tmp_path / "index")
    index.ingest([docs], progress=False)
    assert {d.reader for d in index.documents()} == {READER_VERSIONS["html"], 1}
    monkeypatch.setitem(READER_VERSIONS, "html", READER_VERSIONS["html"] + 1)
    report = DocumentIndex.open(tmp_path / "index").ingest([docs], progress=False)
    assert [Path(p).name for p in report.updated] == ["git-clean.html"]
    assert [Path(p).name for p in report.skipped] == ["notes.md"]


def _random_page(rng, words) -> str:
    """Nested lists of terms, definitions, paragraphs and headings, as pages nest them (and as broken
    pages do: a <dd> with no <dt>, a <dt> with no <dd>, a heading inside a definition)."""
    def text(n: int) -> str:
        return " ".join(next(words) for _ in range(n))

    def block(depth: int) -> str:
        kind = rng.choice(["p", "p", "dl", "h"] if depth < 3 else ["p"])
        if kind == "p":
            return f"<p>{text(rng.choice([2, 8, 40]))}</p>"
        if kind == "h":
            level = rng.randint(2, 4)
            return f"<h{level}>{text(2)}</h{level}>"
        items = []
        for _ in range(rng.randint(1, 4)):
            items += [f"<dt>{text(1)}</dt>" for _ in range(rng.randint(0, 2))]
            if rng.random() < 0.85:
                items.append("<dd>" + "".join(block(depth + 1) for _ in range(rng.randint(1, 3))) + "</dd>")
        return f"<dl class=\"{rng.choice(['', 'toc', 'variablelist'])}\">{''.join(items)}</dl>"

    return f"<html><body><h1>Page</h1>{''.join(block(0) for _ in range(6))}<p>{text(3)}</p></body></html>"


def test_no_text_is_lost_and_no_marker_leaks_whatever_the_nesting():
    import itertools
    import random

    rng = random.Random(20)
    for n in range(300):
        counter = itertools.count()
        words = (f"w{n}x{i}" for i in counter)
        page = _random_page(rng, words)
        doc = load_html(Path("page.html"), page)
        shown = " ".join(s.text + " " + " ".join(s.heading) for s in doc.sections)
        # (a heading with no text under it is no section, before definitions as now)
        headings = set(re.findall(r"w\d+x\d+", " ".join(re.findall(r"<h\d>(.*?)</h\d>", page))))
        lost = set(re.findall(r"w\d+x\d+", page)) - set(re.findall(r"w\d+x\d+", shown)) - headings
        assert not lost, (page, lost)
        assert not re.search(r"[\x01\x02\x03]", shown), page


def test_every_passage_of_a_long_definition_starts_with_its_term():
    from index.chunking import ApproxTokenCounter, chunk_document

    html = (f"<html><body><h1>Tool</h1><h2>Options</h2><dl><dt>--deep=&lt;n&gt;</dt><dd><p>{LONG}</p>"
            f"<p>{LONG}</p><p>{LONG}</p></dd></dl><p>After.</p></body></html>")
    chunks = chunk_document(load_html(Path("tool.html"), html), ApproxTokenCounter(), chunk_tokens=64, overlap=8)
    deep = [c for c in chunks if c.heading == "Options > --deep=<n>"]
    assert len(deep) > 2 and all(c.text.startswith("--deep=<n>\n\n") for c in deep)
    assert [c.text for c in chunks if c.heading == "Options"] == ["After."]
