"""A signed-in user may only pick among the models the server lists: never a path or a hub id.

Issue 25, hole 1: `/ask`'s `model` argument loaded whatever a user named. Five spellings of the
served model's folder loaded five copies (808 -> 1,835 MB), `/etc/shadow` answered "not a valid
JSON file" and a missing key file "does not exist". Replayed here against a real server with
logins, through `gradio_client` and the `/v1` API, then the facade's cache on its own.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from foundation.model_paths import resolve_generator
from ui.server import launch

QUESTION = "Which environment variable makes the conversation log use PostgreSQL?"
API_KEY = "models-key-5b1f9c2e7d4a"


@pytest.fixture(scope="module")
def signed_in(demo_bot):
    srv = launch(demo_bot, port=0, auth=[("alice", "wonder")], api_keys=[f"{API_KEY}:alice"])
    yield srv
    srv.close()


def _names_not_offered(bot, tmp_path: Path) -> list[str]:
    """The attack's inputs: what does not exist, what a user must not read, a hub id, then the
    served folder spelled five ways (each loaded one more copy before)."""
    folder = Path(resolve_generator(bot.config.generator, bot.workspace))
    assert (folder / "config.json").exists()
    return ["/etc/shadow", str(tmp_path / "no-such-model"), str(Path.home() / ".ssh" / "id_ed25519"),
            "HuggingFaceTB/SmolLM2-360M-Instruct",
            str(folder), f"{folder}/", f"{folder}/.", f"{folder}//", f"{folder}/../{folder.name}"]


@pytest.fixture
def generator_calls(demo_bot, monkeypatch):
    """Every model name that reaches the facade's loader while the test runs."""
    demo_bot.generator()  # the served model, loaded before the attack as on a warmed-up server
    calls: list[str | None] = []
    real = demo_bot.generator

    def spy(model=None):
        calls.append(model)
        return real(model)

    monkeypatch.setattr(demo_bot, "generator", spy)
    return calls


def test_ask_refuses_every_unlisted_model_with_one_message_and_loads_nothing(demo_bot, signed_in, generator_calls,
                                                                             tmp_path):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    loaded = demo_bot.loaded_models
    alice = Client(signed_in.url, auth=("alice", "wonder"), verbose=False)
    try:
        messages = set()
        for name in _names_not_offered(demo_bot, tmp_path):
            with pytest.raises(AppError) as refused:
                alice.predict(QUESTION, "qa", "", 0, -1.0, name, api_name="/ask")
            messages.add(str(refused.value))
        assert generator_calls == []  # refused before the facade resolved (or opened) anything
        assert demo_bot.loaded_models == loaded
        (message,) = messages  # the same words whatever the name points at: no existence oracle
        assert "does not offer that model" in message and "base" in message
        assert not any(word in message for word in ("exist", "JSON", "/etc", "ssh", "HuggingFace"))

        ans = alice.predict(QUESTION, "qa", "", 0, -1.0, "base", api_name="/ask")  # a listed name works
        assert ans["done"] and ans["text"].strip()
        assert demo_bot.loaded_models == loaded
    finally:
        alice.close()


def test_v1_refuses_the_same_names_with_the_same_message(demo_bot, signed_in, generator_calls, tmp_path):
    loaded = demo_bot.loaded_models
    messages = set()
    for name in _names_not_offered(demo_bot, tmp_path):
        r = httpx.post(f"{signed_in.url}/v1/chat/completions", headers={"Authorization": f"Bearer {API_KEY}"},
                       json={"model": name, "messages": [{"role": "user", "content": QUESTION}]}, timeout=60)
        assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found", r.text[:300]
        messages.add(r.json()["error"]["message"])
    assert generator_calls == [] and demo_bot.loaded_models == loaded
    assert len(messages) == 1 and "/v1/models" in messages.pop()


def test_the_chat_refuses_an_unlisted_model_before_showing_anything(demo_bot, generator_calls, tmp_path):
    import gradio as gr

    from ui.app import ChatHandlers
    from ui.security import UploadPolicy

    h = ChatHandlers(demo_bot, UploadPolicy.for_workspace(demo_bot.workspace), allow_folders=False)
    for name in _names_not_offered(demo_bot, tmp_path)[:5]:
        chat = h.respond(QUESTION, [], None, "qa", name, 0, -1.0, {}, None)
        with pytest.raises(gr.Error, match="does not offer that model"):
            next(chat)
    assert generator_calls == []


def test_generators_are_kept_by_what_they_load_and_bounded(tiny_model, tmp_path):
    """Spellings of one folder share one copy; beyond two extras the least recently used goes."""
    from assistant import Assistant
    from finetune.registry import Registry

    ws = tmp_path / "ws"
    for name in ("ft-a", "ft-b", "ft-c"):
        shutil.copytree(tiny_model, ws / "models" / name)
        Registry(ws).register(name, ws / "models" / name, base="tiny", method="full")
    bot = Assistant.open(ws, generator=str(tiny_model), log_enabled=False)
    served = bot.generator()
    for spelling in (f"{tiny_model}/", f"{tiny_model}/.", f"{tiny_model}/../{tiny_model.name}", "base"):
        assert bot.generator(spelling) is served
    assert bot.loaded_models == [str(tiny_model)]

    ft_a = bot.generator("ft-a")
    bot.generator("ft-b")
    assert bot.generator(str(ws / "models" / "ft-a") + "/") is ft_a  # a path to a registered folder too
    bot.generator("ft-c")  # a third extra: ft-b was used least recently
    assert bot.loaded_models == [str(tiny_model), "ft-a", "ft-c"]
    assert bot.generator() is served  # the served model is never the one unloaded
    bot.unload("ft-a")
    assert bot.loaded_models == ["ft-c", str(tiny_model)]  # least recently used first
