"""Follow-ups become standalone queries that retrieval can answer, and still find the right document."""
from __future__ import annotations

import pytest

from assistant.tasks.rewrite import is_follow_up, standalone_query
from assistant.types import Source

INSTALL = [{"role": "user", "content": "How do I install the CLI on Linux?"},
           {"role": "assistant", "content": "Run pip install acme-cli [1]."}]


def test_self_contained_question_is_kept():
    assert standalone_query("How do I rotate API keys?", INSTALL) == "How do I rotate API keys?"
    assert standalone_query("and how do I undo that?", []) == "and how do I undo that?"


@pytest.mark.parametrize("text", ["and how do I undo that?", "what about on Windows?", "Why?", "Is it free?"])
def test_follow_ups_are_detected_and_carry_the_topic(text):
    assert is_follow_up(text)
    query = standalone_query(text, INSTALL)
    assert query.startswith(text)
    assert "install" in query and "CLI" in query


def test_chinese_follow_up_names_the_topic():
    history = [{"role": "user", "content": "max_connections 参数是做什么的？"},
               {"role": "assistant", "content": "它限制数据库连接池的大小。"}]
    query = standalone_query("它的默认值是多少？", history)
    assert "max_connections" in query and "默认值" in query and "它" not in query


def test_topic_reaches_back_past_a_follow_up():
    history = INSTALL + [{"role": "user", "content": "what about on Windows?"},
                         {"role": "assistant", "content": "Run the installer."}]
    query = standalone_query("and how do I undo that?", history)
    assert "Windows" in query and "install" in query


def test_rewritten_follow_up_retrieves_the_right_document():
    from doubles import MemoryContext, default_models

    gen, emb = default_models()
    docs = [
        ("docs/install.md", "On Windows, download the installer acme-setup.exe and run it. To uninstall the "
                            "CLI on Windows, use Apps & Features in the Settings app."),
        ("docs/keys.md", "API keys are rotated with `acme keys rotate`. Undo a rotation with `acme keys restore`."),
        ("docs/backup.md", "Backups run nightly. Restore a backup with `acme backup restore`; undo it by "
                           "restoring the previous snapshot."),
    ]
    ctx = MemoryContext([Source(path=p, title=p, locator="", snippet=t[:60], score=0, text=t) for p, t in docs],
                        gen, emb)
    history = [{"role": "user", "content": "How do I install the CLI on Windows?"},
               {"role": "assistant", "content": "Download acme-setup.exe and run it [1]."}]
    follow_up = "and how do I undo that?"
    assert ctx.retrieve(follow_up, 1)[0].path != "docs/install.md"  # alone it finds the wrong page
    query = standalone_query(follow_up, history)
    assert ctx.retrieve(query, 1)[0].path == "docs/install.md"
