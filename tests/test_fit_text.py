"""`fit_text`: a text cut to a token budget, keeping its head or its tail, never more than the budget."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from assistant.tasks.budget import ELLIPSIS, fit_text

# The tokenizer is not what is tested here: one token per word keeps the budgets easy to read.
WORDS = SimpleNamespace(count_tokens=lambda text: len(text.split()))
TEXT = "alpha beta gamma delta epsilon zeta eta theta"


@pytest.mark.parametrize("keep", ["head", "tail"])
def test_the_cut_text_fits_its_budget_and_keeps_the_side_asked_for(keep):
    for budget in range(1, 9):
        out = fit_text(WORDS, TEXT, budget, keep=keep)
        assert WORDS.count_tokens(out) <= budget, (budget, out)
    assert fit_text(WORDS, TEXT, 8, keep=keep) == TEXT  # it fits: unchanged
    assert fit_text(WORDS, TEXT, 4, keep="head").startswith("alpha beta")
    assert fit_text(WORDS, TEXT, 4, keep="tail").endswith("eta theta")


def test_a_budget_that_holds_only_the_mark_gives_no_text_of_either_end():
    """With room for the '…' alone, the tail cut used to return the whole text (text[-0:])."""
    assert fit_text(WORDS, TEXT, 1, keep="tail").strip() == ELLIPSIS.strip()
    assert fit_text(WORDS, TEXT, 1, keep="head").strip() == ELLIPSIS.strip()
    assert fit_text(WORDS, TEXT, 0, keep="tail") == ""
