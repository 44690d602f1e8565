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
