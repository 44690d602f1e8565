"""Manual pages rendered as plain text are read by their layout (`index.man_text`).

Real pages: sqlite3(1) in English and grep(1) from Debian's Chinese translations (manpages-zh),
both rendered by groff as `benchmarks/devset/build_corpus.py` does (tests/fixtures/man/README.md).
Read as one block of lines, the option's description was cut from its option and into wrapped
fragments, and the page's running header ("GREP(1) General Commands Manual GREP(1)") was quoted
as if it were text.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from assistant.grounding import split_sentences
from assistant.tasks.evidence import _sentences
from index import chunking
from index.chunking import ApproxTokenCounter, chunk_document
from index.loaders import load_document
from index.man_text import is_man_page, load_man_text, word_count
from index.sections import OPTION_TERM

FIXTURES = Path(__file__).parent / "fixtures" / "man"
SQLITE = FIXTURES / "sqlite3.1.txt"
GREP_ZH = FIXTURES / "grep.zh_CN.1.txt"


def _load(path: Path):
    return load_document(path, path.read_bytes())


def test_an_english_page_becomes_its_sections_without_its_running_header():
    doc = _load(SQLITE)
    headings = [s.heading for s in doc.sections]
    assert headings[:4] == [["NAME"], ["SYNOPSIS"], ["SUMMARY"], ["DESCRIPTION"]]
    assert ["OPTIONS"] in headings and ["DESCRIPTION", "SQLITE META-COMMANDS"] in headings
    assert not any("SQLITE3(1)" in s.text for s in doc.sections)  # header and footer are furniture
    assert doc.sections[0].text == "sqlite3 - A command line interface for SQLite version 3"
    options = next(s for s in doc.sections if s.heading == ["OPTIONS"])
    assert "-bail\n\nStop after hitting an error." in options.text
    assert "-batch\n\nForce batch I/O." in options.text  # one space, but at the descriptions' column
    lines = SQLITE.read_text(encoding="utf-8").split("\n")
    for section in doc.sections:  # provenance: the line the section starts on
        assert " ".join(section.text.split())[:12] in " ".join(lines[section.start_line - 1].split())


def test_a_filled_paragraph_is_one_paragraph_again():
    summary = next(s for s in _load(SQLITE).sections if s.heading == ["SUMMARY"])
    first = summary.text.split("\n")[0]
    assert first.startswith("sqlite3 is a terminal-based front-end to the SQLite library that can evaluate")
    assert "display the results in multiple formats." in first  # the third line of the file's paragraph


def test_a_chinese_option_keeps_its_description_whole_and_a_long_one_is_its_own_section():
    doc = _load(GREP_ZH)
    options = [s for s in doc.sections if s.heading and s.heading[0] == "选项 OPTIONS"]
    count = next(s for s in options if s.heading[-1] == "-c, --count")
    # its three lines joined, without a space between two Chinese characters
    assert count.text == ("-c, --count\n\n禁止通常的输出；作为替代，为每一个输入文件打印一个匹配的行的总数。如果使用 "
                          "-v, --invert-match 选项 (参见下面)，将是不匹配的行的总数。")
    # a short definition stays a line of its section, its term on the line before it
    after = next(s for s in options if len(s.heading) == 1 and "-A NUM, --after-context=NUM" in s.text)
    assert "-A NUM, --after-context=NUM\n\n打印出紧随匹配的行之后的下文 NUM 行。" in after.text
    # and the evidence narrowing reads term and description as one sentence
    assert "-A NUM, --after-context=NUM 打印出紧随匹配的行之后的下文 NUM 行。" in _sentences(after.text)
    assert not any("GREP(1)" in s.text for s in doc.sections)


def test_a_dot_quoted_or_standing_alone_does_not_end_a_sentence():
    assert split_sentences("-a, --all 不要忽略以点号（“.”）起始的条目") == ["-a, --all 不要忽略以点号（“.”）起始的条目"]
    assert split_sentences("不要列出隐含的 . 和 ..") == ["不要列出隐含的 . 和 .."]
    assert split_sentences("Stage everything with git add . Then commit.") == [
        "Stage everything with git add .", "Then commit."]


@pytest.mark.parametrize("text", [
    "README\n\n    This project builds the thing.\n    Run make.\n",  # too little to be a page
    "Notes (draft)\n    first point - more\nNext heading\n    text\nLast\n    text\n",  # "(draft)" is no section
    "Release notes\n\nVersion 2.0 adds the thing.\n\nChanges\n\n  - faster\n  - smaller\n",
])
def test_other_text_files_are_left_to_the_plain_text_loader(text):
    assert load_man_text(text, "notes") is None
    doc = load_document(Path("notes.txt"), text.encode())
    assert len(doc.sections) == 1 and doc.sections[0].heading == []


def test_a_page_without_a_header_is_known_by_its_name_line():
    page = ("NAME\n     dig — send domain name query packets to name servers\n\nSYNOPSIS\n     dig [@server] domain\n"
            "     dig -f file\n\nDESCRIPTION\n     Dig is a flexible command line tool that gathers information\n"
            "     from name servers. It has two modes.\n")
    assert is_man_page(page.split("\n"))
    sections = load_man_text(page, "dig")
    assert [s.heading for s in sections] == [["NAME"], ["SYNOPSIS"], ["DESCRIPTION"]]


def test_chinese_words_count_as_about_two_characters_each():
    assert word_count("disk usage") == 2
    assert word_count("显示磁盘使用情况") == 4
    assert word_count("使用 mmap(2) 系统调用") == 1 + 2 + 1  # 使用, mmap(2), 系统调用


def _ends_on_a_term(chunks) -> list[str]:
    return [c.text for c in chunks if OPTION_TERM.match(c.text.rstrip().rsplit("\n", 1)[-1].strip())]


@pytest.mark.parametrize("page", [GREP_ZH, SQLITE])
def test_no_passage_ends_on_an_option_without_its_description(page, monkeypatch):
    """Cut between "-m" and what -m does, a window ended "... -m" and the next passage began with
    a description of nothing it named."""
    doc = _load(page)
    assert _ends_on_a_term(chunk_document(doc, ApproxTokenCounter(), chunk_tokens=48, overlap=8)) == []
    monkeypatch.setattr(chunking, "_leads_joined", lambda text, units, size: units)  # as before
    assert _ends_on_a_term(chunk_document(doc, ApproxTokenCounter(), chunk_tokens=48, overlap=8))


@pytest.mark.parametrize("page", [GREP_ZH, SQLITE])
def test_every_line_of_the_page_is_kept_but_its_running_header_and_footer(page):
    lines = [x for x in page.read_text(encoding="utf-8").split("\n") if x.strip()]
    sections = _load(page).sections
    flat = "".join("".join(s.heading) + s.text for s in sections)
    flat = "".join(flat.split())
    lost = [x for x in lines[1:-1] if "".join(x.split()) not in flat]
    assert lost == []
    assert "".join(lines[0].split()) not in flat and "".join(lines[-1].split()) not in flat
