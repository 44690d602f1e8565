"""The fast decoder: CTranslate2 behind the `Generator` interface, on the bundled default model.

Real parts: the bundled SmolLM2, converted once into the shared model cache; compared with the
transformers float32 path on the same prompt. Which precision `auto` decodes in is decided by the
self-check on the machine that runs the suite (tests/test_decoder_selfcheck.py): these tests hold
for whichever path it chose, on any x86 CPU, because the chosen path agrees with float32 there.
"""
from __future__ import annotations

import pytest

from assistant.config import Config
from assistant.generation import load_generator
from assistant.generation.base import GenerationStats

pytest.importorskip("ctranslate2", reason="the fast decoder needs ctranslate2 (a project dependency)")

COLOURS = [{"role": "user", "content": "List three colours, one per line."}]
CAPITAL = [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]


@pytest.fixture(scope="module")
def fast():
    from assistant.generation.ctranslate import CTranslate2Generator

    gen = load_generator(Config(device="cpu"))
    assert isinstance(gen, CTranslate2Generator), "auto picks CTranslate2 for the default model on a CPU"
    assert gen.decoder_info["decoder"] == f"ctranslate2-{gen.precision}"
    return gen


@pytest.fixture(scope="module")
def exact():
    from assistant.generation.local import LocalGenerator

    gen = load_generator(Config(device="cpu", decoder="transformers"))
    assert isinstance(gen, LocalGenerator)
    return gen


def test_streams_token_by_token_with_stats_and_stops(fast):
    stats = GenerationStats()
    pieces = list(fast.stream(COLOURS, max_new_tokens=24, stats=stats))
    full = "".join(pieces)
    assert len(pieces) > 3 and full.strip()
    assert stats.tokens_in > 5 and 0 < stats.tokens_out <= 24 and 0 < stats.ttft_ms <= stats.duration_ms
    stop_word = full.split()[2]
    cut = "".join(fast.stream(COLOURS, max_new_tokens=24, stop=[stop_word]))
    assert stop_word not in cut and full.startswith(cut)
    assert "".join(fast.stream(COLOURS, max_new_tokens=24)) == full  # greedy: reproducible
    assert len("".join(fast.stream(COLOURS, max_new_tokens=3))) < len(full)  # the budget holds


def test_greedy_output_matches_transformers(fast, exact):
    """The path `auto` chose agrees with float32 on this CPU: the same greedy text, a list included
    (int8 on an AVX2 server wrote "1. Blue\n2. Gold\n\nHere is a list ..." where float32 lists three)."""
    assert "".join(fast.stream(CAPITAL, max_new_tokens=24)) == "".join(exact.stream(CAPITAL, max_new_tokens=24))
    assert "".join(fast.stream(COLOURS, max_new_tokens=24)) == "".join(exact.stream(COLOURS, max_new_tokens=24))


def test_chat_tokenizer_matches_transformers_without_importing_it(fast, exact):
    """The cold path reads tokenizer.json and renders the chat template itself: same ids, same text."""
    from assistant.generation.chat_tokenizer import ChatTokenizer

    assert isinstance(fast.tokenizer, ChatTokenizer)
    conversations = [
        CAPITAL,
        [{"role": "system", "content": "Answer from the passage."}, {"role": "user", "content": "Passage: x = 1.\nWhat is x?"}],
        [{"role": "user", "content": "如何导入文档？"}, {"role": "assistant", "content": "用 ingest。"},
         {"role": "user", "content": "and then?  Tabs\tand  spaces"}],
    ]
    for messages in conversations:
        want = exact.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True)["input_ids"]
        assert fast.tokenizer.chat_ids(messages) == list(want)
        assert fast.tokenizer.decode(want) == exact.tokenizer.decode(want, skip_special_tokens=True)
    text = "ASSISTANT_WORKSPACE=/srv/ws  assistant ask \"如何导入文档？\""
    assert fast.tokenizer.encode(text) == exact.tokenizer(text, add_special_tokens=False)["input_ids"]
    assert fast.tokenizer.end_ids == [2]  # <|im_end|>: generation_config's eos and the tokenizer's


def _repeats(text: str, n: int) -> bool:
    words = text.lower().split()
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    return len(grams) != len(set(grams))


def test_repeat_guard_stops_loops_but_lets_the_answer_copy_the_prompt(fast):
    loop = [{"role": "user", "content": "Say 'yes' ten times."}]
    looping = "".join(fast.stream(loop, max_new_tokens=30))
    guarded = "".join(fast.stream(loop, max_new_tokens=30, no_repeat_ngram=2))
    assert _repeats(looping, 4) and not _repeats(guarded, 4), (looping, guarded)
    copy = [{"role": "user", "content": "Repeat this sentence exactly: the quick brown fox jumps over the lazy dog."}]
    assert "quick brown fox jumps over the lazy dog" in "".join(fast.stream(copy, max_new_tokens=30, no_repeat_ngram=4))


def test_forced_int8_streams_whatever_the_check_says():
    """`decoder = ctranslate2-int8` is for those who want int8's speed anyway: loaded unchecked."""
    from assistant.generation.ctranslate import CTranslate2Generator

    gen = load_generator(Config(device="cpu", decoder="ctranslate2-int8"))
    assert isinstance(gen, CTranslate2Generator) and gen.precision == "int8"
    assert "not checked" in gen.decoder_info["reason"]
    stats = GenerationStats()
    assert "".join(gen.stream(CAPITAL, max_new_tokens=12, stats=stats)).strip() and 0 < stats.tokens_out <= 12


def test_decoder_setting_is_checked():
    with pytest.raises(ValueError, match="decoder must be one of"):
        load_generator(Config(device="cpu", decoder="fastest"))
