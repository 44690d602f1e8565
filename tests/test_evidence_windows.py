"""Evidence chosen by meaning (issue 20): a question in other words than the manual's gets the window
that holds the answer.

A manual states a default in a line of its own ("(Default: 1234)") or after the sentence that names
the topic; a question asked in the user's words shares few words with either. Scored as the window
the model will read (the sentence and its neighbours), the topic's words and meaning and the value
come together. Real text: 24 of git's own manual pages (tests/fixtures/ranker/git), default models.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from assistant.context import WorkspaceContext
from assistant.tasks.base import TaskRequest
from assistant.tasks.qa import plan

MANUAL = Path(__file__).parent / "fixtures" / "ranker" / "git"


@pytest.fixture(scope="module")
def git_bot(tmp_path_factory):
    """An assistant over 24 real git manual pages, default models."""
    from assistant import Assistant

    bot = Assistant.open(tmp_path_factory.mktemp("git") / "ws")
    assert not bot.ingest([MANUAL], progress=False).failed
    yield bot
    bot.close()


def _first_window(bot, question: str, **config) -> str:
    ctx = WorkspaceContext(bot.index, bot.config.replace(**config), None, "qa")
    found = plan(ctx, TaskRequest(text=question, query=question, history=[], k=bot.config.top_k))
    return found.evidence[0].text


@pytest.mark.slow
@pytest.mark.parametrize("question, answer", [
    # git-instaweb: "-p --port The port number to bind the httpd to. (Default: 1234)"
    ("On what port does the instant web view listen when I give no port?", "1234"),
    ("Which port does the web browsing tool use unless I choose another?", "1234"),
    # git-index-pack: 'The title is "Receiving objects" by default and "Indexing objects" when --stdin is specified.'
    ("What does the pack checker print to show progress when reading from standard input?", "Indexing objects"),
])
def test_a_paraphrase_gets_the_window_that_holds_the_answer(git_bot, question, answer):
    """Scored sentence by sentence (evidence_windows off) the first window of each of these misses
    the value: it is another option's ("-l --local Only bind the web server to the local IP",
    "-v Be verbose about what is going on, including progress status")."""
    assert answer in _first_window(git_bot, question)


@pytest.mark.slow
@pytest.mark.parametrize("question, term", [
    # git-index-pack: "--threads=<n>" + four sentences; the one that matches is the fourth.
    ("Which option of git index-pack reduces packing time on multiprocessor machines?", "--threads=<n>"),
    # git-hash-object: "--path" + "Hash object as it were located at the given path." + ... the third matches.
    ("Which git hash-object option is useful for hashing temporary files located outside of the working directory?",
     "--path"),
])
def test_a_window_inside_a_definition_is_led_by_its_term(git_bot, question, term):
    """A manual's option is the term of a definition list; the sentence that matches the question is
    often a later one of its description. The window starts there, and still names the option: the
    loader makes the term head its definition, and `narrow` leads the window with it."""
    window = _first_window(git_bot, question)
    assert window.startswith(term), window  # "--path: <the matching sentence> ...", or the term's own line
