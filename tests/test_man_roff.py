"""Manual pages in their roff source form (`ls.1`, `sqlite3.1.gz`), as /usr/share/man holds them."""
from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest

from foundation.formats import SUPPORTED_SUFFIXES, file_type_of
from index import man_roff
from index.budget import LoadLimits
from index.loaders import load_document
from index.sections import LoadError

FIXTURES = Path(__file__).parent / "fixtures" / "man"
needs_groff = pytest.mark.skipif(shutil.which("groff") is None, reason="groff (Debian: groff-base) renders roff")


def test_manual_page_names_are_read_and_other_archives_are_not():
    for name in ("ls.1", "ls.1.gz", "printf.3p.gz", "CA.pl.1ssl.gz", "Algorithm::Diff.3pm.gz", "MAN/LS.8"):
        assert file_type_of(name) == "man", name
    for name in ("notes.tar.gz", "data.gz", "backup.7z", ".1", "x.md.gz"):
        assert file_type_of(name) is None, name
    assert ".1" in SUPPORTED_SUFFIXES and ".8" in SUPPORTED_SUFFIXES and ".gz" not in SUPPORTED_SUFFIXES
    assert man_roff.page_title("man1/ls.1.gz") == "ls(1)" and man_roff.page_title("printf.3p") == "printf(3p)"


@needs_groff
def test_a_roff_page_reads_as_the_page_man_shows():
    """sqlite3(1)'s source, gzipped as Debian ships it, gives the sections its rendered text gives
    (`sqlite3.1.txt` was rendered from the same package by benchmarks/devset/build_corpus.py)."""
    source = load_document(FIXTURES / "sqlite3.1.gz", (FIXTURES / "sqlite3.1.gz").read_bytes())
    rendered = load_document(FIXTURES / "sqlite3.1.txt", (FIXTURES / "sqlite3.1.txt").read_bytes())
    assert source.title == "sqlite3(1)" and source.file_type == "man"
    assert [s.heading for s in source.sections] == [s.heading for s in rendered.sections]
    assert [s.text for s in source.sections] == [s.text for s in rendered.sections]
    assert source.sections[0].heading == ["NAME"] and source.sections[0].text.startswith("sqlite3 - A command line")
    assert not any("\x1b" in s.text or "\x08" in s.text for s in source.sections)  # no bold, no colour codes


def test_an_alias_a_log_a_bomb_and_no_groff(tmp_path, monkeypatch):
    alias = b'.\\" an alias page, as man-db installs them\n.so man1/sqlite3.1\n'
    with pytest.raises(LoadError, match=r"alias of man1/sqlite3\.1"):
        load_document(tmp_path / "sqlite.1", alias)
    log = b"Dec  7 03:12:01 host CRON[4711]: (root) CMD (run-parts /etc/cron.hourly)\n"
    doc = load_document(tmp_path / "syslog.1", log)  # a rotated log is text, not a page
    assert doc.file_type == "text" and "CRON[4711]" in doc.sections[0].text
    bomb = gzip.compress(b".TH BIG 1\n" + b"x" * (3 * 2**20))
    with pytest.raises(LoadError, match="more than 1 MB"):
        load_document(tmp_path / "big.1.gz", bomb, LoadLimits(max_unpacked_mb=1))
    with pytest.raises(LoadError, match="not a valid gzip"):
        load_document(tmp_path / "broken.1.gz", b"\x1f\x8b not really gzip")
    whole = (FIXTURES / "sqlite3.1.gz").read_bytes()
    with pytest.raises(LoadError, match="truncated gzip"):
        load_document(tmp_path / "cut.1.gz", whole[:len(whole) // 2])
    monkeypatch.setattr(man_roff.shutil, "which", lambda name: None)
    with pytest.raises(LoadError, match="apt install groff-base"):
        load_document(FIXTURES / "sqlite3.1.gz", (FIXTURES / "sqlite3.1.gz").read_bytes())


@needs_groff
def test_a_folder_of_manual_pages_is_ingested_with_its_aliases_and_broken_pages_reported(tmp_path):
    from assistant import Assistant

    man1 = tmp_path / "man" / "man1"
    man1.mkdir(parents=True)
    shutil.copy(FIXTURES / "sqlite3.1.gz", man1)
    (man1 / "sqlite.1.gz").write_bytes(gzip.compress(b".so man1/sqlite3.1\n"))
    (man1 / "broken.1.gz").write_bytes(b"\x1f\x8b\x08 truncated")
    bot = Assistant.open(tmp_path / "ws")
    try:
        report = bot.ingest([tmp_path / "man"], progress=False)
        assert [Path(p).name for p in report.added] == ["sqlite3.1.gz"]
        reasons = {Path(f.path).name: f.reason for f in report.failed}
        assert set(reasons) == {"sqlite.1.gz", "broken.1.gz"}
        assert "alias of man1/sqlite3.1" in reasons["sqlite.1.gz"] and "gzip" in reasons["broken.1.gz"]
        hits = bot.index.search("how do I run sqlite3 with the column output mode", 3)
        assert hits and hits[0].title == "sqlite3(1)"
        # named as `man sqlite3` names it, the page is found without a search, and leads with its NAME line
        assert bot.index.document_chunks("sqlite3")[0].path.endswith("sqlite3.1.gz")
        answer = bot.ask("Summarise the manual page for sqlite3 in one sentence.", task="auto", log=False)
        assert answer.text.startswith("sqlite3 - A command line interface for SQLite version 3")
        assert {s.title for s in answer.cited_sources} == {"sqlite3(1)"}
    finally:
        bot.close()
