"""Page furniture is removed at ingest: real pages of two generators (Sphinx, DocBook XSL) keep their
text and lose their navigation bars, sidebars and footers (tests/fixtures/html/README.md)."""
from __future__ import annotations

from pathlib import Path

import pytest

from assistant.evaluation.ragged import has_navigation
from index.html_loader import is_navigation_line
from index.loaders import load_document

PAGES = Path(__file__).parent / "fixtures" / "html"
SPHINX = sorted((PAGES / "sphinx").glob("*.html"))
DOCBOOK = sorted((PAGES / "docbook").glob("*.html"))
# What each generator repeats on every page, in the words it shows.
FURNITURE = {
    "sphinx": ["Navigation", "Quick search", "Created using Sphinx", "© Copyright", "Previous:", "Next:", "modules |",
               "Flask Documentation (2.2.x) »", "Show Source", "¶"],
    "docbook": ["Prev", "Next", "Home"],
}
# A sentence of each page's own text, wrapped over several lines in its HTML source.
KEPT = {
    "debugging.html": "The debugger allows executing arbitrary Python code from the browser.",
    "server.html": "In debug mode, this server provides an interactive debugger and will reload when code is changed.",
    "upload.en.html": "Now that you have tested your new package thoroughly, you want to release it",
    "checkit.en.html": "If it is your mistake, fix it. If it is caused by the build script, fix the root cause with",
    "admon.graphics.html": "If true (non-zero), admonitions are presented in an alternate style that uses a graphic.",
}


def loaded(page: Path) -> tuple[str, list[str]]:
    doc = load_document(page, page.read_bytes())
    return "\n".join(s.text for s in doc.sections), [h for s in doc.sections for h in s.heading]


@pytest.mark.parametrize("page", SPHINX + DOCBOOK, ids=lambda p: p.name)
def test_furniture_is_removed_and_the_text_kept(page):
    text, headings = loaded(page)
    lines = text.split("\n")
    for word in FURNITURE[page.parent.name]:
        hits = [ln for ln in lines + headings if ln.strip() == word or ln.startswith(word) or word in ("¶",) and word in ln]
        assert not hits, f"{page.name}: furniture {word!r} left: {hits[:3]}"
    assert not [ln for ln in lines if has_navigation(ln)]
    assert any(KEPT[page.name] in ln for ln in lines)  # on one line: the source wrapped it


def test_docbook_navigation_bars_are_gone_from_every_page():
    for page in DOCBOOK:
        raw = page.read_text(encoding="latin-1")
        assert "navheader" in raw and "navfooter" in raw  # the pages do carry them
        text, _ = loaded(page)
        assert "Prev" not in text.split() and "Next" not in text.split()


def test_sphinx_heading_anchors_and_sidebar_are_gone():
    _, headings = loaded(PAGES / "sphinx" / "server.html")
    assert headings[:2] == ["Development Server", "Development Server"]
    assert "Command Line" in headings and not any("¶" in h for h in headings)
    assert "Navigation" not in headings and "Quick search" not in headings


def test_a_navigation_row_without_a_class_is_dropped(tmp_path):
    page = tmp_path / "page.html"
    page.write_text("<html><body><table><tr><td><a href=a.html>Prev</a></td><td><a href=u.html>Up</a></td>"
                    "<td><a href=i.html>Home</a></td><td><a href=n.html>Next</a></td></tr></table>"
                    "<h1>Backups</h1><p>Run the backup\nevery night.</p>"
                    "<p><small>This page last modified on 2022-10-26 20:02:18 UTC</small></p></body></html>")
    text, _ = loaded(page)
    assert text == "Run the backup every night."


@pytest.mark.parametrize("line,nav", [("Prev | Up | Home | Next", True), ("« previous | next »", True),
                                      ("Prev | Next |", True), ("Last updated 2024-05-31 00:35:55 UTC", True),
                                      ("Next, run the upgrade.", False), ("Home directories are kept.", False),
                                      ("git rebase --onto master next topic", False)])
def test_navigation_lines(line, nav):
    assert is_navigation_line(line) is nav
