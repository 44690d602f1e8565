"""Loaders keep provenance; the chunker follows structure and sizes chunks in embedder tokens.

These tests use the real embedder tokenizer but never load the embedding model, so they are fast.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from index.chunking import HFTokenCounter, chunk_document, load_token_counter, split_units
from index.loaders import LoadError, load_document

CORPUS = Path(__file__).parent / "fixtures" / "index" / "corpus"


def _build_module():
    spec = importlib.util.spec_from_file_location("index_fixture_build", CORPUS.parent / "build.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def counter() -> HFTokenCounter:
    from foundation.model_paths import resolve_embedder

    c = load_token_counter(resolve_embedder("all-MiniLM-L6-v2"))
    assert isinstance(c, HFTokenCounter), "the real tokenizer must load offline"
    return c


def load(name: str):
    path = CORPUS / name
    return load_document(path, path.read_bytes())


def test_markdown_sections_keep_heading_path_and_lines():
    doc = load("guide.md")
    assert doc.title == "Deployment Guide" and doc.file_type == "markdown"
    by_heading = {" > ".join(s.heading): s for s in doc.sections}
    assert set(by_heading) == {"", "Install > Linux", "Install > macOS", "Configuration", "Troubleshooting"}
    linux = by_heading["Install > Linux"]
    lines = (CORPUS / "guide.md").read_text().split("\n")
    assert "apt install orbit-server" in lines[linux.start_line - 1 + linux.text.split("\n").index(
        next(l for l in linux.text.split("\n") if "apt install" in l))]
    # '#' inside a code fence is not a heading
    assert "This comment is not a heading" in by_heading["Configuration"].text


def test_rst_sections_from_adornments():
    doc = load("api.rst")
    assert doc.title == "Orbit API"
    headings = [" > ".join(s.heading) for s in doc.sections]
    assert headings == ["", "Authentication", "Rate limits", "Rate limits > Pagination"]
    auth = doc.sections[1]
    assert "bearer token" in auth.text and auth.start_line == 9


def test_text_keeps_line_numbers(counter):
    doc = load("notes.txt")
    chunks = chunk_document(doc, counter, chunk_tokens=16, overlap=0)
    bazel = next(c for c in chunks if "Bazel" in c.text)
    assert bazel.start_line == 3
    budget = next(c for c in chunks if "Budget" in c.text)
    assert budget.start_line == budget.end_line == 6


def test_html_drops_scripts_and_keeps_heading_path():
    doc = load("faq.html")
    assert doc.title == "Orbit FAQ"
    text = " ".join(s.text for s in doc.sections)
    assert "tracking" not in text and "color: red" not in text and "Home | Docs" not in text
    hours = next(s for s in doc.sections if "support desk" in s.text)
    assert hours.heading == ["Support", "Hours"]
    assert "Apache 2.0 license" in next(s.text for s in doc.sections if s.heading == ["Licensing"])


def test_pdf_pages_and_title():
    doc = load("handbook.pdf")
    assert doc.title == "Incident Response Handbook"
    assert [s.page for s in doc.sections] == [1, 2, 3]
    assert "escalate to the duty manager" in doc.sections[1].text


def test_encrypted_and_broken_pdf_are_refused(tmp_path):
    build = _build_module()
    locked = build.make_pdf(tmp_path / "locked.pdf", password="s3cret")
    with pytest.raises(LoadError, match="encrypted"):
        load_document(locked, locked.read_bytes())
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.4\n this is not really a pdf \n%%EOF")
    with pytest.raises(LoadError, match="PDF"):
        load_document(broken, broken.read_bytes())


def test_docx_headings_tables_and_title():
    doc = load("travel.docx")
    assert doc.title == "Travel Policy"
    hotels = next(s for s in doc.sections if s.heading == ["Booking", "Hotels"])
    assert "180 euros per night" in hotels.text and "Paris | 180 euros" in hotels.text


def test_python_code_split_by_definition(counter):
    doc = load("server.py")
    headings = [" > ".join(s.heading) for s in doc.sections]
    assert headings == ["", "def parse_request", "class JobQueue", "def compute_checksum"]
    checksum = doc.sections[-1]
    assert checksum.start_line == 25 and checksum.kind == "code"
    chunks = chunk_document(doc, counter)
    assert chunks[-1].start_line == 25 and chunks[-1].end_line == 27


def test_long_python_class_is_split_into_methods(counter):
    methods = "\n".join(f"    def method_{i}(self):\n" + "".join(f"        x{j} = {j}\n" for j in range(8))
                        for i in range(10))
    src = f"class Big:\n    \"\"\"A long class.\"\"\"\n\n{methods}\n"
    doc = load_document(Path("/tmp/big.py"), src.encode())
    headings = [" > ".join(s.heading) for s in doc.sections]
    assert "class Big > def method_0" in headings and "class Big > def method_9" in headings


@pytest.mark.parametrize("name,expected", [
    ("client.go", ["type Client", "func FetchStatus", "func RetryBackoff"]),
    ("app.js", ["function formatInvoiceTotal", "class ShoppingCart"]),
    ("Util.java", ["class Util"]),
    ("mathlib.c", ["gcd()"]),
])
def test_brace_languages_split_by_block(name, expected):
    doc = load(name)
    headings = [s.heading[-1] for s in doc.sections if s.heading]
    for h in expected:
        assert h in headings, (h, headings)
    gcd = load("mathlib.c").sections[-1]
    assert gcd.start_line == 3 and "return a;" in gcd.text  # comment above the function kept with it


def test_chinese_is_split_on_sentence_punctuation_not_spaces(counter):
    text = "数据库备份每天凌晨两点自动运行。备份文件保存在对象存储中，保留三十天！需要恢复吗？请联系值班工程师；然后等待。"
    units = [text[a:b] for a, b in split_units(text, "prose")]
    assert units == ["数据库备份每天凌晨两点自动运行。", "备份文件保存在对象存储中，保留三十天！", "需要恢复吗？",
                     "请联系值班工程师；", "然后等待。"]
    doc = load_document(Path("/tmp/zh.txt"), (text * 6).encode())
    chunks = chunk_document(doc, counter, chunk_tokens=40, overlap=10)
    assert len(chunks) > 2
    for c in chunks:
        assert c.text[-1] in "。！？；"  # every chunk ends on a sentence boundary
        assert counter.counts([c.text])[0] <= 40


def test_chunks_respect_token_budget_and_overlap(counter):
    sentences = [f"Sentence number {i} talks about topic {i} in some detail." for i in range(60)]
    doc = load_document(Path("/tmp/long.md"), ("# T\n\n## Part\n\n" + " ".join(sentences)).encode())
    chunks = chunk_document(doc, counter, chunk_tokens=60, overlap=16)
    assert len(chunks) > 5
    assert all(counter.counts([c.text])[0] <= 60 for c in chunks)
    assert all(c.heading == "Part" for c in chunks)
    for prev, nxt in zip(chunks, chunks[1:]):
        last_sentence = prev.text.split(". ")[-1]
        assert last_sentence in nxt.text  # the overlap carries the tail of the previous chunk
    # a single giant "sentence" is cut on token boundaries
    giant = load_document(Path("/tmp/g.txt"), ("word " * 1000).encode())
    pieces = chunk_document(giant, counter, chunk_tokens=100, overlap=20)
    assert len(pieces) >= 10 and all(counter.counts([p.text])[0] <= 100 for p in pieces)


def test_long_sections_without_line_numbers_get_numbered_parts(counter):
    """An HTML page with no subheadings: "part 2 of 4" tells its chunks apart, as lines do for Markdown."""
    from index.search import locator

    body = " ".join(f"<p>Paragraph {i} explains step {i} of the zlib stream in detail.</p>" for i in range(30))
    html = load_document(Path("/tmp/zlib.html"), f"<html><head><title>Usage</title></head><body>{body}</body></html>".encode())
    chunks = chunk_document(html, counter, chunk_tokens=60, overlap=10)
    assert len(chunks) > 2 and [c.part for c in chunks] == list(range(1, len(chunks) + 1))
    assert {c.parts for c in chunks} == {len(chunks)} and all(c.start_line is None for c in chunks)
    where = [locator({"heading": c.heading, "part": c.part, "parts": c.parts}, "html") for c in chunks]
    assert len(set(where)) == len(chunks) and where[1].endswith(f"part 2 of {len(chunks)}")
    assert locator({"heading": "Intro", "page": 3, "part": 1, "parts": 2}, "pdf") == "Intro, page 3, part 1 of 2"
    md = load_document(Path("/tmp/long.md"), ("# T\n\n" + " ".join(f"Sentence {i} is here." for i in range(80))).encode())
    assert all(c.parts is None for c in chunk_document(md, counter, chunk_tokens=60, overlap=10))  # lines suffice


@pytest.mark.parametrize("data,reason", [
    (b"", "empty"),
    (b"   \n\n", "empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
])
def test_bad_text_inputs(data, reason):
    with pytest.raises(LoadError, match=reason):
        load_document(Path("/tmp/x.txt"), data)


def test_unsupported_extension_and_latin1():
    with pytest.raises(LoadError, match="unsupported"):
        load_document(Path("/tmp/x.xyz"), b"hello")
    doc = load_document(Path("/tmp/x.txt"), "Café crème brûlée, déjà vu à Paris.".encode("latin-1"))
    assert "Café" in doc.sections[0].text


def test_pdf_bookmarks_give_pages_a_heading_path(tmp_path):
    build = _build_module()
    pages = [["Cover page text."], ["Alerts fire to the pager."], ["Escalate after thirty minutes."],
             ["Postmortems are blameless."]]
    pdf = build.make_pdf(tmp_path / "outlined.pdf", pages=pages,
                         outline=[("Operations", 1, None), ("Escalation", 2, "Operations"), ("Review", 3, None)])
    doc = load_document(pdf, pdf.read_bytes())
    assert [(s.page, s.heading) for s in doc.sections] == [
        (1, []), (2, ["Operations"]), (3, ["Operations", "Escalation"]), (4, ["Review"])]
    from index.search import locator

    assert locator({"heading": "Operations > Escalation", "page": 3}, "pdf") == "Operations > Escalation, page 3"
    assert locator({"heading": "", "page": 1}, "pdf") == "page 1"


def test_the_chunkers_counter_reads_tokenizer_json_without_transformers(counter):
    """Ingest counts tokens with `tokenizers` alone (no transformers, hence no torch, on the int8
    path), and the counts and character spans are transformers' own."""
    from transformers import AutoTokenizer

    from foundation.model_paths import resolve_embedder
    from index.chunking import FastTokenCounter

    assert isinstance(counter, FastTokenCounter)
    reference = HFTokenCounter(AutoTokenizer.from_pretrained(resolve_embedder("all-MiniLM-L6-v2")))
    texts = ["Run `git push --force-with-lease` first.", "如何导入文档？请看第 3 节。", "word " * 600, "naïve café — ok"]
    assert counter.counts(texts) == reference.counts(texts)
    assert counter.counts(texts)[2] == 600  # no truncation from the tokenizer.json's own settings
    assert all(counter.spans(t) == reference.spans(t) for t in texts)
