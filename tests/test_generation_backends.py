"""Generation backends: the local transformers model and an OpenAI-compatible HTTP server.

The HTTP backend is tested against a real server: the project's own `/v1/chat/completions`,
launched on loopback over the sample workspace (as a vLLM server would be, from our side).
"""
from __future__ import annotations

import httpx
import pytest

from assistant.generation.base import GenerationStats, cut_at_stop, held_back
from assistant.generation.openai_compat import OpenAICompatibleGenerator


def test_stop_sequences_are_cut_and_partial_stops_held_back():
    assert cut_at_stop("answer. STOP more", ["STOP"]) == ("answer. ", True)
    assert cut_at_stop("no stop here", ["STOP"]) == ("no stop here", False)
    assert held_back("text ST", ["STOP"]) == 2 and held_back("text", ["STOP"]) == 0


def test_local_generator_streams_with_template_stats_and_stop(demo_bot):
    gen = demo_bot.generator()
    messages = [{"role": "user", "content": "List three colours, one per line."}]
    stats = GenerationStats()
    pieces = list(gen.stream(messages, max_new_tokens=24, stats=stats))
    assert len(pieces) > 1 and "".join(pieces).strip()
    assert stats.tokens_in > 5 and 0 < stats.tokens_out <= 24 + 2 and stats.ttft_ms > 0
    full = "".join(pieces)
    stop_word = full.split()[min(2, len(full.split()) - 1)]
    cut = "".join(gen.stream(messages, max_new_tokens=24, stop=[stop_word]))
    assert stop_word not in cut and full.startswith(cut)
    # greedy by default: the same prompt gives the same text
    assert "".join(gen.stream(messages, max_new_tokens=24)) == full


@pytest.fixture(scope="module")
def own_server(demo_bot):
    from ui.server import launch

    running = launch(demo_bot, host="127.0.0.1", port=0)
    yield running
    running.close()


def test_openai_backend_against_a_real_server(own_server):
    base = own_server.url + "/v1"
    models = httpx.get(base + "/models", timeout=30).json()["data"]
    gen = OpenAICompatibleGenerator(base, models[0]["id"])
    stats = GenerationStats()
    text = "".join(gen.stream([{"role": "user", "content": "How do I share the chat with a public link?"}],
                              max_new_tokens=64, stats=stats))
    assert text.strip()
    assert stats.ttft_ms > 0 and stats.tokens_out > 0 and stats.duration_ms >= stats.ttft_ms


def test_assistant_generates_through_the_http_backend(own_server, demo_bot):
    from assistant import Assistant

    models = httpx.get(own_server.url + "/v1/models", timeout=30).json()["data"]
    remote = Assistant.open(demo_bot.workspace, backend="openai", openai_base_url=own_server.url + "/v1",
                            generator=models[0]["id"], log_enabled=False)
    answer = remote.ask("Which command shows recent conversations in the log?")
    assert answer.text.strip() and answer.sources
    assert answer.model == models[0]["id"]


def test_unreachable_server_error_names_the_url():
    gen = OpenAICompatibleGenerator("http://127.0.0.1:9/v1", "m", timeout_s=2)
    with pytest.raises(RuntimeError, match="127.0.0.1:9"):
        "".join(gen.stream([{"role": "user", "content": "hi"}], max_new_tokens=4))


def test_abandoned_stream_stops_generation_and_frees_the_model(demo_bot):
    import threading

    gen = demo_bot.generator()
    before = {t.ident for t in threading.enumerate()}
    stream = gen.stream([{"role": "user", "content": "Write a long story about a lighthouse."}], max_new_tokens=400)
    next(stream)
    assert {t.ident for t in threading.enumerate()} - before  # generate() runs in a worker thread
    stream.close()  # the reader gives up after one piece
    leftover = [t for t in threading.enumerate() if t.ident not in before and t.is_alive()]
    assert not leftover, leftover  # the worker was stopped and joined, not left generating
    after = threading.Thread(target=lambda: "".join(gen.stream([{"role": "user", "content": "Hi"}], max_new_tokens=2)))
    after.start()
    after.join(timeout=60)
    assert not after.is_alive()  # and the model is free for the next answer


def test_repeat_guard_bans_repeats_in_the_answer_but_not_copying_the_prompt():
    import torch

    from assistant.generation.local import AnswerNoRepeatNGram

    prompt = [5, 6, 7, 8]
    guard = AnswerNoRepeatNGram(3, prompt_len=len(prompt))
    # the answer so far copies the prompt's 5 6 7: allowed (the prompt is not the answer's history)
    scores = guard(torch.tensor([prompt + [5, 6]]), torch.zeros(1, 10))
    assert torch.isfinite(scores).all()
    # the answer already said "1 2 3" and now says "1 2" again: 3 is banned, nothing else
    scores = guard(torch.tensor([prompt + [1, 2, 3, 1, 2]]), torch.zeros(1, 10))
    assert scores[0, 3] == float("-inf") and torch.isfinite(scores[0, [0, 1, 2, 4, 5]]).all()
