"""No passage ends on a line that leads into the next (`index.chunking`): an option's term, or a line
that introduces what follows ("... restarted with either of the following commands:"). Cut there, a
quote promised what the next passage held. Real text: this project's own Markdown docs and a
rendered manual page, chunked small so that many cuts fall."""
from __future__ import annotations

from pathlib import Path

import pytest

from index import chunking
from index.chunking import ApproxTokenCounter, chunk_document
from index.loaders import load_document
from index.sections import LoadedDocument, Section, leads_into_next

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "tests" / "fixtures" / "man" / "sqlite3.1.txt"]


def _cut_after_a_lead(pages: list[Path], size: int) -> list[str]:
    """Chunk ends that are a lead with more of their section after them."""
    found = []
    for page in pages:
        doc = load_document(page, page.read_bytes())
        for section in doc.sections:
            chunks = chunking.chunk_section(section, ApproxTokenCounter(), size, size // 5)
            found += [c.text[-60:] for c in chunks[:-1] if leads_into_next(c.text.rstrip().rsplit("\n", 1)[-1].strip())]
    return found


@pytest.mark.parametrize("size", [40, 80])
def test_chunks_end_on_a_lead_only_where_what_follows_does_not_fit(size, monkeypatch):
    """What remains are leads whose next unit is too big to join (a table, a long code block) and
    pieces of a unit longer than a chunk cut on token boundaries ("`KEY:"): measured 7 of 15 cuts
    at 40 tokens, 2 of 6 at 80, with the join and without it."""
    assert len(PAGES) > 5
    joined = _cut_after_a_lead(PAGES, size)
    monkeypatch.setattr(chunking, "_leads_joined", lambda text, units, n: units)
    assert 2 * len(joined) <= len(_cut_after_a_lead(PAGES, size))


@pytest.mark.parametrize("text, joined", [
    ("The server must be restarted with either of the following commands:\n\n# exportfs -ra", True),
    ("-m\n\nfill width with a comma separated list of entries", True),
    ("It ends here, after more than a dozen words of plain text in it.\n\nA new sentence starts, and it "
     "is as long as the first.", False),
])
def test_a_lead_is_packed_with_what_follows(text, joined):
    doc = LoadedDocument("x.md", "x", "markdown", [Section(text, [], 1)])
    chunks = chunk_document(doc, ApproxTokenCounter(), chunk_tokens=20, overlap=0)
    assert (len(chunks) == 1) == joined


def test_a_shell_prompt_after_a_lead_is_evidence_not_a_heading():
    """A root prompt ("# exportfs -ra", DocBook's <pre class="screen">) is a command, not a Markdown
    heading (headings are in a passage's heading, never its text): dropped as one, the sentence
    "... restarted with either of the following commands:" was the window and the quote without
    the command the question asked for (the Debian Administrator's Handbook, NFS server)."""
    from assistant.tasks.evidence import _sentences

    passage = ("The file /etc/exports does not list any valid NFS shares on initial installation. Once it has "
               "been edited, the NFS server must be restarted with either of the following commands:\n\n"
               "# exportfs -ra\n\n# systemctl start nfs-kernel-server")
    sentences = _sentences(passage)
    assert sentences[1].startswith("Once it has been edited") and sentences[1].endswith("commands: # exportfs -ra")
    assert sentences[2] == "# systemctl start nfs-kernel-server"
    assert _sentences("```\nmake\n```") == ["make"]  # fence markers are still markup


def test_an_option_joined_to_its_description_does_not_take_the_next_option():
    """An option's term line is joined to its description ("-l, --lines" + "输出换行符统计数"); the
    joined line is complete. wc(1) in Chinese writes its descriptions without a full stop, and the
    joined line still looked like a term (a CJK description reads as an option's argument word), so
    "-c, --bytes 输出字节统计数 -m, --chars" was one sentence and "输出字符统计数" another: the
    window for "which option counts lines" held the wrong option's line."""
    from assistant.tasks.evidence import _sentences
    from index.man_text import load_man_text

    page = (Path(__file__).parent / "fixtures" / "man" / "wc.zh_CN.1.txt").read_text(encoding="utf-8")
    sentences = [s for section in load_man_text(page, "wc.1") for s in _sentences(section.text)]
    assert "-c, --bytes 输出字节统计数" in sentences
    assert "-m, --chars 输出字符统计数" in sentences
    assert "-l, --lines 输出换行符统计数" in sentences
    assert "--help 显示此帮助信息并退出" in sentences and "--version 显示版本信息并退出" in sentences
    # a lead that ends in ":" still takes the line after it
    assert _sentences("To count lines, run:\n\nwc -l FILE") == ["To count lines, run: wc -l FILE"]
