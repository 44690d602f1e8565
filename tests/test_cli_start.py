"""The cold command line: what a newcomer's first commands cost, and that they fail fast when they must."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

HEAVY = ("torch", "gradio", "transformers", "ctranslate2", "onnxruntime")


def _modules_after(argv: list[str], tmp_path) -> set[str]:
    """Run the CLI in a fresh interpreter and return the heavy modules it imported."""
    code = ("import sys; from assistant.cli import main\n"
            f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
            f"print('HEAVY:' + ','.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "ASSISTANT_WORKSPACE": str(tmp_path / "ws")})
    assert out.returncode == 0, out.stderr
    return {m for m in out.stdout.rsplit("HEAVY:", 1)[1].strip().split(",") if m}


@pytest.mark.parametrize("argv", [["--help"], ["logs", "list"], ["ask", "--help"]])
def test_light_commands_import_no_heavy_library(argv, tmp_path):
    assert _modules_after(argv, tmp_path) == set()


def test_share_without_auth_is_refused_before_any_model_loads(tmp_path):
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "assistant.cli", "--workspace", str(tmp_path / "ws"), "serve", "--share"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "--auth" in out.stderr
    assert time.perf_counter() - start < 10


def test_uncached_hub_id_fails_at_once_without_retry_noise(tmp_path):
    from foundation.model_paths import ModelNotFoundError, load_causal_lm

    start = time.perf_counter()
    with pytest.raises(ModelNotFoundError) as err:
        load_causal_lm("no-such-org/no-such-model")  # conftest sets HF_HUB_OFFLINE=1
    assert time.perf_counter() - start < 5
    assert "no-such-org/no-such-model" in str(err.value) and "not in the local cache" in str(err.value)


def test_uncached_hub_embedder_fails_at_once(monkeypatch):
    from foundation.model_paths import ModelNotFoundError, resolve_embedder

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match="ASSISTANT_EMBEDDER"):
        resolve_embedder("no-such-org/no-such-embedder")


def test_a_cold_answer_on_a_cpu_needs_neither_torch_nor_transformers(demo_bot):
    """The int8 decoder and embedder read their tokenizers with `tokenizers` and the device is known
    without torch on a machine with no GPU driver: a cold `ask` skips ~2 s of imports."""
    from foundation.devices import no_accelerator_here

    code = ("import sys; from assistant.cli import main\n"
            f"main(['--workspace', {str(demo_bot.workspace)!r}, 'ask', 'Which environment variable chooses the workspace folder?'])\n"
            "print('LOADED:' + ','.join(m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "ASSISTANT_WORKSPACE" in out.stdout  # it answered, from the bundled configuration page
    loaded = {m for m in out.stdout.rsplit("LOADED:", 1)[1].strip().split(",") if m}
    if no_accelerator_here():
        assert loaded == set(), loaded
    else:  # a GPU machine asks torch which device to use
        assert "transformers" not in loaded or "torch" in loaded
