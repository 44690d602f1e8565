"""Summaries: find the named document, map-reduce what does not fit, cite the sections used."""
from __future__ import annotations

import re

import pytest

from assistant.config import Config
from assistant.tasks import summarize
from assistant.tasks.base import Result, Status, TaskRequest, TextDelta
from doubles import FixedGenerator, MemoryContext, default_models
from assistant.types import Source

TOPICS = {
    "Backups": "Backups run every night at 02:00 and are kept for thirty days in the backup bucket.",
    "Keys": "API keys are rotated with acme keys rotate; the old key stays valid for one day.",
    "Logging": "Logs are written as JSON lines to the log directory and rotated when they reach 100 MB.",
    "Upgrades": "Upgrades are installed with acme upgrade, which downloads the release and restarts the server.",
    "Users": "Administrators invite users by e-mail; each user gets the viewer role until promoted.",
    "Alerts": "Alerts are sent to Slack or e-mail when the error rate exceeds five percent for ten minutes.",
}
FILLER = (" The operations team reviews this part of the handbook every quarter and records any change in "
          "the changelog so that everyone knows what is current.")


def handbook() -> list[Source]:
    """A long document: one section per topic, each padded so the whole needs several parts."""
    sources = []
    for i, (topic, fact) in enumerate(TOPICS.items()):
        text = f"{topic}. {fact}" + FILLER * 6
        sources.append(Source(path="docs/ops-handbook.md", title="Operations handbook", locator=f"§ {topic}",
                              snippet=text[:80], score=0.0, text=text, chunk_id=f"h{i}", heading=topic))
    sources.append(Source(path="docs/other.md", title="Other", locator="", snippet="x", score=0.0,
                          text="The cafeteria opens at noon."))
    return sources


@pytest.fixture(scope="module")
def models():
    return default_models()


def collect(ctx, text):
    events = list(summarize.run(ctx, TaskRequest(text=text, query=text)))
    assert isinstance(events[-1], Result)
    answer = events[-1].answer
    assert "".join(e.text for e in events if isinstance(e, TextDelta)).strip() == answer.text
    return answer, [e.text for e in events if isinstance(e, Status)]


@pytest.mark.parametrize("text, name", [
    ("summarize docs/install.md", "docs/install.md"),
    ("Summarise the release notes", "release notes"),
    ("Give me a summary of the security policy document, please", "security policy"),
    ('TL;DR of "Operations handbook"', "Operations handbook"),
    ("总结一下发布说明", "发布说明"),
    # a page or module named as people name them
    ("Summarise the manual page for fstab in one sentence.", "fstab"),
    ("Summarise fstab(5) in 3 bullet points.", "fstab(5)"),
    ("Give a one-sentence summary of this manual page (ln).", "ln"),
    ("Write a short paragraph summarising the Python module compileall.", "compileall"),
    ("In one sentence, what is the os.path module for?", "os.path"),
    ("What does the issue(5) manual page cover? Answer with three bullet points.", "issue(5)"),
    ("总结一下 sort 的手册页", "sort"),
])
def test_document_names(text, name):
    assert name in summarize.document_names(text)
    assert not {"for", "the", "module", "in"} & set(summarize.document_names(text))


def test_by_default_a_summary_is_the_documents_own_opening_and_key_points(models):
    """No form asked for: the opening sentence, then one key point per section, each quoted from the
    document with the section it came from; the model writes nothing it could invent."""
    _, emb = models
    gen = FixedGenerator(["The handbook is a powerful tool for data analysis."], context_window=1024)
    ctx = MemoryContext(handbook(), gen, emb, Config(max_new_tokens=128))
    answer, _ = collect(ctx, "Summarise the operations handbook")
    assert not gen.prompts and "powerful tool" not in answer.text
    opening, points = answer.text.split("\n\nKey points:\n")
    assert "Backups run every night" in opening and opening.endswith("[1]")
    lines = points.splitlines()
    assert len(lines) == 4 and lines[0].endswith("[2]")
    for line in lines:
        n = int(line.rsplit("[", 1)[1].rstrip("]"))
        assert line[2:].split(" [")[0] in answer.sources[n - 1].text  # quoted from the section it cites
    assert all(c.supported for c in answer.sentences)


def test_long_document_is_map_reduced_with_section_citations(models):
    _, emb = models
    final = ("Backups run every night and are kept for thirty days. "
             "Alerts go to Slack when the error rate is high. "
             "API keys are rotated with acme keys rotate.")
    gen = FixedGenerator(["Part summary one about backups and keys."] * 3 + [final], context_window=1024)
    ctx = MemoryContext(handbook(), gen, emb, Config(max_new_tokens=128, summary_style="generated"))
    answer, status = collect(ctx, "Summarise the operations handbook")
    parts = [s for s in status if s.startswith("summarising part")]
    assert len(parts) >= 3 and parts[0] == f"summarising part 1/{len(parts)}"
    assert re.fullmatch(rf"summarising part {len(parts)}/{len(parts)}, about \d+ (s|min) left", parts[-1])
    assert answer.extra["map_reduce"] and answer.extra["document"]
    assert len(answer.sources) == 6 and all(s.path == "docs/ops-handbook.md" for s in answer.sources)
    cited = {c.text.split(" [")[0]: [answer.sources[n - 1].heading for n in c.citations] for c in answer.sentences}
    assert cited == {"Backups run every night and are kept for thirty days.": ["Backups"],
                     "Alerts go to Slack when the error rate is high.": ["Alerts"],
                     "API keys are rotated with acme keys rotate.": ["Keys"]}
    assert re.findall(r"\[(\d)\]", answer.text) == ["1", "6", "2"]
    # every map prompt stayed within the window
    assert all(ctx.count_tokens(m[-1]["content"]) < 1024 for m in gen.prompts)


def test_repeating_model_is_cut(models):
    _, emb = models
    loop = "Backups run every night. " * 20
    ctx = MemoryContext(handbook()[:1], FixedGenerator(loop), emb, Config(summary_style="generated"))
    answer, _ = collect(ctx, "summarise docs/ops-handbook.md")
    assert answer.text == "Backups run every night. [1]"


def test_unsupported_summary_gets_quoted_key_sentences(models):
    _, emb = models
    nonsense = "The handbook is a poem about the sea. It was written by pirates in 1802."
    ctx = MemoryContext(handbook(), FixedGenerator(["Part."] * 3 + [nonsense], context_window=1024), emb,
                        Config(max_new_tokens=128, summary_style="generated"))
    answer, _ = collect(ctx, "Summarise the operations handbook")
    assert answer.extra["unsupported"] and "Key sentences from it" in answer.text
    points = answer.extra["key_points"]
    assert 2 <= len(points) <= 4
    for point in points:  # quoted verbatim from the section its citation names
        sentence, n = point.rsplit(" [", 1)
        assert sentence in answer.sources[int(n.rstrip("]")) - 1].text
    assert len({p.rsplit(" [", 1)[1] for p in points}) >= 2  # spread over sections, not one


def test_unknown_document_falls_back_to_retrieval_and_declines_when_irrelevant(models):
    _, emb = models
    gen = FixedGenerator("Nothing.")
    ctx = MemoryContext(handbook(), gen, emb)
    answer, status = collect(ctx, "Summarise the quarterly sales figures for Antarctica penguins")
    assert "searching the documents" in status
    assert answer.declined and gen.prompts == []


def test_real_model_summarises_a_long_document(models):
    gen, emb = models
    ctx = MemoryContext(handbook()[:4], gen, emb, Config(max_new_tokens=64, summary_style="generated"))  # two parts: keeps CI fast
    answer, status = collect(ctx, "Summarise the operations handbook")
    parts = [s for s in status if s.startswith("summarising part")]
    assert len(parts) >= 2
    assert answer.text and answer.sentences
    nums = [int(n) for n in re.findall(r"\[(\d+)\]", answer.text)]
    assert nums and all(1 <= n <= len(answer.sources) for n in nums)


def test_a_manual_page_is_summarised_from_its_name_line_and_summary(models):
    """`assistant ask "Summarise sqlite3.1.txt"` on the real sqlite3(1) page: the overview opens
    with the page's NAME line and the sentence its SUMMARY section starts with, cited, before
    its key points; asked for one sentence, the NAME line is the sentence. The model writes none."""
    from test_summary_lead import SQLITE3_MAN, SQLITE3_NAME, SQLITE3_SUMMARY, sources_of  # the fixture page, chunked

    _, emb = models
    gen = FixedGenerator("sqlite3 is a powerful tool for data analysis.")
    ctx = MemoryContext(sources_of("man/sqlite3.1.txt", SQLITE3_MAN), gen, emb)
    answer, _ = collect(ctx, "Summarise sqlite3.1.txt")
    opening, points = answer.text.split("\n\nKey points:\n")
    assert opening.startswith(SQLITE3_NAME + " [1] " + SQLITE3_SUMMARY), opening
    assert len(points.splitlines()) == 4 and "Copyright" not in points and "[options]" not in points
    answer, _ = collect(ctx, "Summarise sqlite3.1.txt in one sentence")
    assert answer.text == SQLITE3_NAME + " [1]" and not gen.prompts
