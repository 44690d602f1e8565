"""Shared fixtures: an offline environment, and one ingested sample workspace per test session.

Models are real (the bundled SmolLM2 and all-MiniLM-L6-v2); they load once per session.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# Nothing in the suite may reach a model hub: fail loudly instead of hanging on the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.pop("ASSISTANT_WORKSPACE", None)
os.environ.pop("DATABASE_URL", None)

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"


@pytest.fixture(scope="session")
def sample_docs(tmp_path_factory) -> Path:
    """A private copy of the bundled sample documents (tests may add or change files)."""
    target = tmp_path_factory.mktemp("sample") / "docs"
    shutil.copytree(DOCS, target, ignore=shutil.ignore_patterns("images"))
    return target


@pytest.fixture(scope="session")
def demo_bot(tmp_path_factory, sample_docs):
    """An Assistant over the ingested sample documents with the real default models."""
    from assistant import Assistant

    bot = Assistant.open(tmp_path_factory.mktemp("ws") / "workspace")
    report = bot.ingest([sample_docs], progress=False)
    assert not report.failed, report.failed
    yield bot
    bot.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    """A fresh conversation-log database URL on each backend (the log tests run on both).

    PostgreSQL needs TEST_POSTGRES_URL (`eval "$(bash scripts/start_postgres.sh)"`); without a
    server those variants are skipped with a loud warning, never silently.
    """
    from log_backends import BACKENDS, backend_url, skip_postgres_loudly

    assert request.param in BACKENDS
    try:
        with backend_url(request.param, tmp_path) as u:
            yield u
    except LookupError as exc:
        skip_postgres_loudly(str(exc))
        pytest.skip(str(exc))


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on at the moment."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A randomly initialised 2-layer Llama with the default model's tokenizer and vocabulary."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from foundation.model_paths import resolve_generator

    tok = AutoTokenizer.from_pretrained(resolve_generator("smollm2"))
    cfg = LlamaConfig(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny") / "tiny-llama"
    LlamaForCausalLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path
