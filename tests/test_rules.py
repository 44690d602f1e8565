"""The hand-written rules of the answer pipeline are listed in one place, named, documented with
their measured effect, switchable by name, and each does something that switching it off undoes."""
from __future__ import annotations

import importlib
import shutil
from pathlib import Path

import pytest

from assistant.config import Config
from assistant.tasks import qa, rules
from assistant.tasks.answerability import judge
from assistant.tasks.evidence import value_bonus
from assistant.types import Source


def test_every_rule_is_named_documented_and_points_at_its_code():
    names = [r.name for r in rules.RULES]
    assert len(names) == len(set(names)) == len(rules.NAMES)
    for rule in rules.RULES:
        assert rule.protects_against and rule.measured, rule.name
        module, _, function = rule.where.rpartition(".")
        assert callable(getattr(importlib.import_module(module), function)), rule.where


def test_rules_are_switched_off_by_name_and_a_typo_is_an_error():
    assert rules.disabled(" page-name, number-bonus ,") == {"page-name", "number-bonus"}
    assert rules.active(Config(), "page-name") and not rules.active(Config(rules_off="page-name"), "page-name")
    with pytest.raises(ValueError, match="known: .*number-bonus"):
        Config(rules_off="number-bonuses")
    with pytest.raises(ValueError, match="page-nme"):
        Config.load(__import__("pathlib").Path("/nonexistent"), env={"ASSISTANT_RULES_OFF": "page-nme"})


def test_value_bonuses_and_their_switches():
    q_number, q_option = "How many entries does the cache keep?", "Which option lists all files, hidden ones too?"
    assert value_bonus(q_number, "The cache keeps 64 entries.") > 0
    assert value_bonus(q_number, "The cache keeps 64 entries.", frozenset({"number-bonus"})) == 0
    assert value_bonus(q_number, "The cache evicts the oldest entry first.") == 0  # no number stated: no bonus
    assert value_bonus(q_option, "-a, --all do not ignore entries starting with .") > 0
    assert value_bonus(q_option, "-a, --all do not ignore entries", frozenset({"option-bonus"})) == 0
    assert value_bonus("显示隐藏文件要用什么选项？", "-a, --all 列出所有文件") > 0  # the Chinese question pattern
    # asked expressly (an option, "how do I", 怎样): the whole bonus; a bare "which" or "what": half of it
    how = value_bonus("How do I stash files git has never tracked?", "-u, --include-untracked stash them too")
    which = value_bonus("Which files does stash keep?", "-u, --include-untracked stash them too")
    assert how > which > 0


def test_page_name_rule_and_its_switch():
    page = Source(path="git/git-fsck.html", title="git-fsck(1)", locator="", snippet="", score=1.0)
    question, answer = "Which command verifies the connectivity of the objects?", "Verifies the connectivity."
    assert qa._page_name(question, page, answer) == "git-fsck"
    assert qa._page_name(question, page, answer, frozenset({"page-name"})) == ""
    assert qa._page_name("How do I verify the objects?", page, answer) == ""  # not a which-command question


class _Window:
    def __init__(self, text: str, about: str = ""):
        self.text, self.about = text, about


@pytest.mark.parametrize("question, mentions, rule", [
    ("What is the default of fetch.retryBackoffMs?", lambda t: 0, "absent-term"),
    ("Which git command uploads to Bitbucket?", lambda t: 2, "term-not-in-windows"),
    ("How many days are passwords kept?", lambda t: 2, "quantity-without-number"),
])
def test_each_decline_rule_declines_and_its_switch_stops_it(question, mentions, rule):
    windows = [_Window("Passwords are kept in memory by the credential cache.", "git-credential-cache")]
    verdict, _ = judge(question, windows, mentions)
    assert verdict is not None and verdict.rule == rule
    verdict, _ = judge(question, windows, mentions, off=frozenset({rule}))
    assert verdict is None or verdict.rule != rule


def test_a_span_written_against_its_unit_is_a_quantity():
    """systemd.service(5): "RestartSec= ... Defaults to 100ms." answers "How long does systemd wait
    before restarting a service by default?"; read as no number, the rule dropped that window and
    the answer came from another (qa_man58, written after the rules: strict 0.667 -> 0.700)."""
    from assistant.tasks.answerability import states_quantity

    question = "How long does systemd wait before restarting a service by default?"
    window = "Configures the time to sleep before restarting a service. Defaults to 100ms."
    assert states_quantity(window, question)
    verdict, kept = judge(question, [_Window(window)], lambda t: 2)
    assert verdict is None and len(kept) == 1
    for text in ("Defaults to 1min.", "5min 20s", "keep 7d of logs", "a 64KB page", "30s later"):
        assert states_quantity(text), text
    for text in ("sqlite3_open", "x86 and v2", "the 2nd time", "a 3des key", "md5sum", "ext4", "IPv6"):
        assert not states_quantity(text), text


def test_a_version_or_a_date_is_not_the_number_a_quantity_question_asks_for():
    from assistant.tasks.answerability import states_quantity

    question = "How many connections does the connection pool keep open by default?"
    window = "Beginning with version 3.37.0 (2021-11-27), the CLI can hold multiple database connections open."
    assert not states_quantity(window, question)
    verdict, _ = judge(question, [_Window(window)], lambda t: 2)
    assert verdict is not None and verdict.rule == "quantity-without-number"
    assert states_quantity(window.replace("multiple", "10"), question)
    assert states_quantity(window, "Since which version can the CLI hold several connections?")
    assert states_quantity("prune --expire 2.weeks.ago", "How old must objects be before they are pruned?")


@pytest.fixture(scope="module")
def grep_zh_bot(tmp_path_factory):
    """An assistant over one real Chinese manual page (grep(1) from manpages-zh), default models."""
    from assistant import Assistant

    docs = tmp_path_factory.mktemp("man")
    shutil.copy(Path(__file__).parent / "fixtures" / "man" / "grep.zh_CN.1.txt", docs)
    bot = Assistant.open(tmp_path_factory.mktemp("ws") / "ws")
    assert not bot.ingest([docs], progress=False).failed
    yield bot
    bot.close()


def test_option_bonus_on_a_real_page_and_its_switch(grep_zh_bot):
    """"grep, egrep, fgrep - 打印匹配给定模式的行" (the NAME line) shares the most words with the
    question and says nothing the asker did not know; the option line under it answers."""
    from assistant.context import WorkspaceContext
    from assistant.tasks.base import TaskRequest

    question = "grep 怎样只选出不匹配模式的行？"

    def first(**config) -> str:
        ctx = WorkspaceContext(grep_zh_bot.index, grep_zh_bot.config.replace(**config), None, "qa")
        return qa.plan(ctx, TaskRequest(text=question, query=question, history=[], k=5)).evidence[0].text

    assert "--invert-match" in first()
    assert first(rules_off="option-bonus").startswith("grep, egrep, fgrep - ")
