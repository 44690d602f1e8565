"""The newcomer's path on the real default models: ingest the sample docs, ask, find it in the log."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from assistant import Answer, Assistant


def test_ingest_reports_every_sample_document(demo_bot, sample_docs):
    files = sorted(p for p in sample_docs.rglob("*") if p.is_file())
    docs = {Path(d.path).name for d in demo_bot.documents()}
    assert {f.name for f in files} <= docs
    again = demo_bot.ingest([sample_docs], progress=False)
    assert len(again.skipped) == len(files) and not again.added and not again.updated


def test_answer_cites_the_file_that_holds_it_and_is_logged(demo_bot):
    question = "Which environment variable makes the conversation log use PostgreSQL?"
    answer = demo_bot.ask(question)
    assert isinstance(answer, Answer)
    assert answer.text.strip()
    assert any(Path(s.path).name == "conversation-log.md" for s in answer.sources), [s.path for s in answer.sources]
    assert answer.timings.total_ms > 0 and answer.model

    detail = demo_bot.conversation(answer.conversation_id)
    history = demo_bot.history(answer.conversation_id)
    assert [m.role for m in history] == ["user", "assistant"]
    assert history[0].content == question
    assert history[1].content == answer.text
    logged_sources = [s for m in detail.messages for s in getattr(m, "sources", [])]
    assert any(Path(s.path).name == "conversation-log.md" for s in logged_sources)


def test_chinese_question_finds_the_chinese_guide(demo_bot):
    hits = demo_bot.search("如何回退到上一个模型？", k=3)
    assert any(Path(h.path).name == "快速入门.md" for h in hits), [h.path for h in hits]


def test_stream_yields_text_then_the_full_answer(demo_bot):
    stream = demo_bot.stream("How long does the first start take to convert the bundled model?")
    deltas = list(stream)
    assert deltas and stream.answer is not None
    assert "".join(deltas).strip() == stream.answer.text.strip()  # a declined answer is streamed as it reads too
    assert stream.answer.timings.ttft_ms > 0


def test_over_long_question_is_trimmed_not_crashed(demo_bot):
    answer = demo_bot.ask("How do I ingest documents? " * 800, log=False)
    assert any("trimmed" in n for n in answer.extra.get("notes", []))


def test_bundled_model_is_converted_once_then_reused(tmp_path, monkeypatch):
    import foundation.model_paths as mp

    monkeypatch.setenv("ASSISTANT_CACHE", str(tmp_path / "cache"))
    calls = []
    real = mp.convert_gguf
    monkeypatch.setattr(mp, "convert_gguf", lambda *a: (calls.append(a), real(*a)))
    first = mp.bundled_smollm2()
    second = mp.bundled_smollm2()
    assert first == second and len(calls) == 1
    assert (first / "model.safetensors").exists() and (first / "CONVERTED_FROM").exists()
    from transformers import AutoConfig

    assert AutoConfig.from_pretrained(first).model_type == "llama"


def test_unknown_model_error_names_it_and_the_fix(tmp_path):
    from foundation.model_paths import ModelNotFoundError, load_causal_lm

    with pytest.raises(ModelNotFoundError) as err:
        load_causal_lm("no-such-org/no-such-model")
    assert "no-such-org/no-such-model" in str(err.value) and "ASSISTANT_GENERATOR" in str(err.value)


def test_cli_ingest_then_ask_json(tmp_path, sample_docs):
    env_ws = ["--workspace", str(tmp_path / "ws")]
    cli = [sys.executable, "-m", "assistant.cli", *env_ws]
    out = subprocess.run([*cli, "ingest", str(sample_docs / "fine-tuning.md"), "--json"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert len(json.loads(out.stdout)["added"]) == 1
    out = subprocess.run([*cli, "ask", "Which command returns to the previous model?", "--json"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    assert answer["sources"] and Path(answer["sources"][0]["path"]).name == "fine-tuning.md"
    assert answer["conversation_id"] and answer["message_id"]


def test_base_model_name_and_caller_history(demo_bot):
    assert demo_bot.generator("base") is demo_bot.generator(demo_bot.config.generator)
    answer = demo_bot.ask("and how do I undo that?", log=False, history=[
        {"role": "user", "content": "How do I make the assistant serve a fine-tuned model?"},
        {"role": "assistant", "content": "Run assistant models use NAME."},
    ])
    assert "fine-tun" in answer.standalone_query.lower() or "model" in answer.standalone_query.lower()
    assert any(Path(s.path).name == "fine-tuning.md" for s in answer.sources)


def test_cli_eval_retrieval_compares_the_three_modes(demo_bot, tmp_path):
    qa = tmp_path / "qa.jsonl"
    qa.write_text("\n".join(json.dumps(q) for q in [
        {"question": "Which environment variable selects PostgreSQL for the log?", "path": "conversation-log.md"},
        {"question": "How do I roll back to the previous model?", "path": "fine-tuning.md"},
        {"question": "Which file formats can be ingested?", "path": "ingesting-documents.md"},
    ]) + "\n")
    out = subprocess.run([sys.executable, "-m", "assistant.cli", "--workspace", str(demo_bot.workspace), "eval",
                          "retrieval", "--qa", str(qa), "--json", str(tmp_path / "r.json")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "hybrid" in out.stdout and "recall@5" in out.stdout
    result = json.loads((tmp_path / "r.json").read_text())
    assert set(result["modes"]) == {"dense", "keyword", "hybrid"} and result["n_questions"] == 3
    assert result["modes"]["hybrid"]["recall@5"] >= 2 / 3


def test_warm_up_loads_the_model_embedder_and_log_before_the_first_question(tmp_path):
    """`assistant serve` warms up first, so the first visitor does not wait for loading."""

    bot = Assistant.open(tmp_path / "ws")
    try:
        assert not (tmp_path / "ws" / "log.db").exists() and not bot.loaded_models
        bot.warm_up()
        assert (tmp_path / "ws" / "log.db").exists()
        assert bot.loaded_models == [bot.model_name]  # the served generator is loaded
    finally:
        bot.close()


def test_other_settings_for_an_evaluation_leave_the_served_assistant_alone(demo_bot, monkeypatch):
    """The learning loop scores the model on every question (model_margin inf) while the served
    assistant may be answering users: it gets a view, the served one keeps its settings."""
    from assistant.improve import evaluate

    served = demo_bot.config
    seen = []
    monkeypatch.setattr(evaluate, "_heldout_scores",
                        lambda bot, *a, **k: seen.append((bot.config.model_margin, demo_bot.config)) or {})
    evaluate.evaluate_heldout(demo_bot, "base", [], {}, progress=False)
    assert seen == [(float("inf"), served)] and demo_bot.config is served
    view = demo_bot.with_settings(model_margin=float("inf"))
    assert view.index is demo_bot.index and view.generator("base") is demo_bot.generator("base")
    answer = view.ask("How do I ingest documents?", log=False)
    assert not answer.declined and demo_bot.config.model_margin == served.model_margin != float("inf")
