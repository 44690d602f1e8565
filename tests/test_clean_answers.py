"""Clean answers (issue 20): quotes are whole sentences of real pages, the answering one in bold, and
a model sentence that says nothing (the question or instruction read back, a circular one) is not shown."""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import pytest

from assistant.evaluation.ragged import count, ends_mid_sentence, has_navigation, starts_mid_sentence
from assistant.grounding import says_nothing, strip_citations, without_read_back
from assistant.tasks import qa
from assistant.tasks.base import Result, TaskRequest, TextDelta
from assistant.tasks.evidence import Evidence, _sentences, window
from doubles import FixedGenerator, MemoryContext, default_models
from foundation.model_paths import resolve_embedder
from index.chunking import chunk_document, load_token_counter
from index.loaders import load_document
from index.types import Source

PAGES = sorted((Path(__file__).parent / "fixtures" / "html").glob("*/*.html"))
INSTRUCTION = qa.INSTRUCTION_ONE
# A model sentence of typical length (the dev set's median answer is ~20 words): the quote gets the rest.
ANSWER = "The page says that this is done with the command shown below, in the way that the manual describes here."


_BLOCKS = ("p", "li", "dt", "dd", "td", "th", "pre", "h1", "h2", "h3", "h4", "h5", "h6", "div", "blockquote", "caption")
_ENDS = re.compile(r"[.!?:;][\"')”’\]]*$")


def _bare(text: str) -> str:
    """No whitespace, no [n] markers: loaders and parsers differ in where they put spaces."""
    return re.sub(r"\s+", "", re.sub(r"\[\d{1,3}\]", "", text))


@lru_cache(maxsize=None)
def page(path: Path) -> tuple[str, tuple[str, ...], list[Source]]:
    """The page as lxml reads it, independently of our loader (its whole text and the text of each
    block element, both `_bare`), and its chunks as sources (our loader, the embedder's tokenizer)."""
    from lxml import html as lxml_html  # the reference reading of the page

    tree = lxml_html.fromstring(path.read_bytes())
    blocks = tuple(_bare(strip_citations(" ".join(e.text_content().split()))) for e in tree.iter(*_BLOCKS))
    blocks += tuple(_bare(ln) for e in tree.iter("pre") for ln in e.text_content().split("\n"))  # a command line
    doc = load_document(path, path.read_bytes())
    chunks = chunk_document(doc, load_token_counter(resolve_embedder("default")))
    sources = [Source(path=str(path), title=doc.title, locator=c.heading, snippet=c.text[:80], score=0.0,
                      text=c.text, chunk_id=f"{path.stem}-{i}", heading=c.heading) for i, c in enumerate(chunks)]
    return _bare(tree.text_content()), blocks, sources


def quoted(answer_text: str) -> str:
    """The quote under an answer, as the page has it: no "> ", no page name, no [1], no bold."""
    quote = answer_text.split("\n\n> ", 1)[1] if "\n\n> " in answer_text else answer_text
    quote = re.sub(r"^[\w.+-]+: ", "", quote.replace("**", ""))
    return strip_citations(quote).strip()


def boundary_problems(quote: str, flat: str, blocks: tuple[str, ...]) -> list[str]:
    """Where `quote` starts or ends inside a sentence of the page (empty when it does not): it must
    start a block (paragraph, list item, cell) or follow a sentence's end, and end one or end a sentence."""
    head, tail = _bare(quote[:60]), _bare(quote[-60:])  # (a quote may span blocks: "run:" + a command)
    first, last = flat.find(head), flat.find(tail)
    if first < 0 or last < 0:
        return [f"not found in the page: {quote[:80]!r}"]
    problems = []
    if not any(b.startswith(head) or len(b) >= 5 and head.startswith(b) for b in blocks if b) and not _ENDS.search(flat[:first]):
        problems.append(f"starts mid-sentence: …{flat[max(0, first - 30):first]!r} | {quote[:40]!r}")
    if not any(b.endswith(tail) or len(b) >= 8 and tail.endswith(b) for b in blocks if b) and not _ENDS.search(tail):
        problems.append(f"ends mid-sentence: {quote[-40:]!r} | {flat[last + len(tail):last + len(tail) + 30]!r}…")
    return problems


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.name)
def test_a_quote_never_starts_or_ends_mid_sentence_on_real_pages(path):
    """Every window the narrowing can pick on a real page, quoted under a short answer."""
    flat, blocks, sources = page(path)
    problems, quotes = [], 0
    for source in sources:
        sentences = _sentences(source.text)
        for best in range(len(sentences)):
            ev = Evidence(0, window(sentences, best), sentences[best], 1.0)
            quote = qa._evidence_quote(ev, ANSWER)
            if quote:
                quotes += 1
                problems += boundary_problems(quoted(quote), flat, blocks)
    assert quotes >= 3
    assert not problems, f"{len(problems)} of {quotes} quotes: {problems[:4]}"


# ---- the QA task on real pages ---------------------------------------------------------------

@pytest.fixture(scope="module")
def models():
    return default_models()


def ask(ctx, question: str):
    events = list(qa.run(ctx, TaskRequest(text=question, query=question)))
    assert isinstance(events[-1], Result)
    answer = events[-1].answer
    assert "".join(e.text for e in events if isinstance(e, TextDelta)).strip() == answer.text
    return answer


def test_the_real_model_answer_quotes_whole_sentences_with_the_answer_marked(models):
    generator, embedder = models
    path = next(p for p in PAGES if p.name == "server.html")
    flat, blocks, sources = page(path)
    answer = ask(MemoryContext(sources, generator, embedder), "What does the development server do in debug mode?")
    assert not answer.declined
    assert "\n\n> " in answer.text and "**" in answer.text  # the quote, its answering sentence in bold
    assert not boundary_problems(quoted(answer.text), flat, blocks)
    assert not count([answer.text]).starts_mid_sentence and not count([answer.text]).ends_mid_sentence


def test_a_circular_model_sentence_is_not_shown(models):
    _, embedder = models
    path = next(p for p in PAGES if p.name == "server.html")
    reply = ("The development server is a server that runs the development server. "
             "In debug mode, this server provides an interactive debugger and will reload when code is changed.")
    ctx = MemoryContext(page(path)[2], FixedGenerator(reply), embedder)
    answer = ask(ctx, "What does the development server do in debug mode?")
    assert "runs the development server" not in answer.text
    assert answer.text.startswith("In debug mode, this server provides an interactive debugger")


def test_the_instruction_read_back_is_not_shown(models):
    _, embedder = models
    path = next(p for p in PAGES if p.name == "debugging.html")
    reply = "The assistant can answer in one sentence: the debugger allows executing arbitrary Python code."
    answer = ask(MemoryContext(page(path)[2], FixedGenerator(reply), embedder),
                 "Why must the debugger not run in production?")
    assert "assistant" not in answer.text.lower() and "one sentence" not in answer.text
    assert "allows executing arbitrary Python code" in answer.text


# ---- sentences that say nothing -----------------------------------------------------------------

@pytest.mark.parametrize("sentence,question", [
    ("The data page for Brin is a data page that stores information about the BRIN data page.",
     "What does a BRIN data page store?"),
    ("The default fillfactor is only used if I set one.", "What is the default fillfactor?"),
    ("The assistant can answer in one sentence.", "How do I undo the last commit?"),
    ("Git daemon listens on a port by default.", "Which port does git daemon listen on by default?"),
    ("I need a dummy package that does nothing but satisfy a dependency on a package installed outside the "
     "scope of the packaging system.", "I need a dummy package that does nothing but satisfy a dependency. "
     "Which Debian tool builds such fake packages?"),
])
def test_sentences_that_say_nothing(sentence, question):
    assert says_nothing(sentence, question, INSTRUCTION)


@pytest.mark.parametrize("sentence,question", [
    ("Git daemon listens on port 9418 by default.", "Which port does git daemon listen on by default?"),
    ("Use git reset --soft HEAD~1 to undo my last commit.", "How do I undo my last commit but keep my changes staged?"),
    ("A bare repository is a repository without a working tree.", "What is a bare repository?"),
    ("Yes, git gc removes unreachable objects.", "Does git gc remove unreachable objects?"),
    ("The index is a file that stores the staging area.", "What is the index?"),
])
def test_sentences_that_answer(sentence, question):
    assert not says_nothing(sentence, question, INSTRUCTION)


def test_a_read_back_prefix_is_cut_off():
    assert without_read_back("The assistant can answer in one sentence: use git reset --soft.", INSTRUCTION) \
        == "use git reset --soft."
    assert without_read_back("To keep the changes: use --soft.", INSTRUCTION) == "To keep the changes: use --soft."


# ---- the checker behind the dev-set counts -----------------------------------------------------

def test_the_ragged_checker_flags_the_issues_examples():
    assert starts_mid_sentence("server using this tunnel, you connect to port 9418.")
    assert starts_mid_sentence("memory buffers. The default is 64.")
    assert not starts_mid_sentence("git-daemon: The daemon listens on port 9418.")
    assert not starts_mid_sentence("--soft Does not touch the index file.")
    assert ends_mid_sentence("The default is …") and ends_mid_sentence("which points to the directory where the")
    assert not ends_mid_sentence("Run it as follows:\n$ git daemon --reuseaddr")
    assert has_navigation("Prev | Up | Home | Next")
    ragged = count(["Use --soft. [1]\n\n> **memory buffers.** The default is … [1]"])
    assert (ragged.answers, ragged.starts_mid_sentence, ragged.ends_mid_sentence) == (1, 1, 1)
