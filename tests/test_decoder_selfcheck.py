"""The decoder self-check: a fast path is used only where it matches float32 on this machine.

Real parts: the bundled model in transformers float32 (the reference) and in CTranslate2 int8 and
float32. The properties hold on any x86 CPU: whatever `auto` chose here agrees with float32 when
measured again; int8 run on the AVX2 kernels that servers without VNNI get (forced here with
oneDNN's own switch, so the test bites on VNNI machines too) is rejected; a path made to disagree on
purpose is skipped for the next one; the verdict is cached per machine fingerprint.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from assistant.config import Config
from assistant.generation import bundled_generator_path, load_generator
from assistant.generation import selfcheck
from assistant.generation.selfcheck import (MAX_LOGIT_DIFF, TIE, PathCheck, Verdict, compare, ctranslate2_logits,
                                            decoder_verdict, float32_reference, run_check)
from foundation.machine import describe, fingerprint
from foundation.model_paths import resolve_generator

pytest.importorskip("ctranslate2", reason="the fast decoder needs ctranslate2 (a project dependency)")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def model_path() -> str:
    return resolve_generator("smollm2")


@pytest.fixture(scope="module")
def reference(model_path):
    return float32_reference(model_path)


def _teacher_forced(model_path, decoder, reference):
    raw = ctranslate2_logits(model_path, decoder, [r.prompt_ids + r.answer_ids[:-1] for r in reference])
    return [lg[len(r.prompt_ids) - 1:len(r.prompt_ids) - 1 + len(r.answer_ids)] for lg, r in zip(raw, reference)]


def test_the_decoder_auto_chose_agrees_with_float32_when_measured_again(model_path, reference):
    gen = load_generator(Config(device="cpu"))
    decoder = gen.decoder_info["decoder"]
    assert decoder in ("ctranslate2-int8", "ctranslate2-float32", "transformers"), gen.decoder_info
    assert "float32" in gen.decoder_info["reason"]
    verdict = selfcheck.cached_verdict(model_path)
    assert verdict is not None and verdict.decoder == decoder and verdict.machine == fingerprint(selfcheck.LIBRARIES)
    if decoder != "transformers":
        check = compare(reference, _teacher_forced(model_path, decoder, reference), decoder)
        assert check.agrees and check.confident_flips == 0 and check.max_logit_diff <= MAX_LOGIT_DIFF, check
        assert check.positions >= 8 * 5  # every prompt answered with a few tokens at least


def test_int8_on_avx2_kernels_is_rejected():
    """The kernels a CPU without VNNI runs (oneDNN limited to AVX2, MKL off): the bundled model's logits move
    by ~8-14 and its greedy answers change; the check must see it, on any x86 machine."""
    code = ("import json; from assistant.generation.selfcheck import run_check; "
            "from foundation.machine import fingerprint; from foundation.model_paths import resolve_generator; "
            "v = run_check(resolve_generator('smollm2'), ['ctranslate2-int8'], fingerprint()); "
            "print(json.dumps(v.to_json()))")
    env = {**os.environ, "CT2_USE_MKL": "0", "ONEDNN_MAX_CPU_ISA": "AVX2", "DNNL_MAX_CPU_ISA": "AVX2"}
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    verdict = Verdict.from_json(json.loads(done.stdout.strip().splitlines()[-1]))
    (int8,) = verdict.checks
    assert not int8.agrees and verdict.decoder == "transformers", int8
    assert int8.max_logit_diff > MAX_LOGIT_DIFF and int8.confident_flips >= 1
    assert "no fast path matches float32" in verdict.reason


def test_a_path_made_to_disagree_is_skipped_for_the_next(model_path, reference):
    """Injected logits: float32's own plus noise well under float32 rounding agree; one confident flip, or
    noise past the bound, does not; with every path rejected the reference itself answers."""
    rng = np.random.default_rng(0)
    exact = [r.logits.copy() for r in reference]
    flipped = [r.logits.copy() for r in reference]
    row, want = flipped[0][0], reference[0].answer_ids[0]
    row[np.argsort(row)[-2]] = row[want] + 1.0  # the runner-up now wins by a margin no tie explains
    noisy = [r.logits + rng.normal(0, MAX_LOGIT_DIFF, r.logits.shape).astype(np.float32) for r in reference]
    assert compare(reference, [x + 1e-4 for x in exact], "x").agrees
    bad = compare(reference, flipped, "x")
    assert not bad.agrees and bad.confident_flips == 1 and bad.flip_margins[0] >= TIE
    assert not compare(reference, noisy, "x").agrees

    def logits_of(candidates):
        def pad(decoder, sequences):  # full-sequence rows, as CTranslate2 returns them
            rows = candidates[decoder]
            return [np.concatenate([np.zeros((len(r.prompt_ids) - 1, r.logits.shape[1]), np.float32), x])
                    for r, x in zip(reference, rows)]
        return pad

    machine = fingerprint(selfcheck.LIBRARIES)
    original = selfcheck.float32_reference
    selfcheck.float32_reference = lambda path: reference
    try:
        v = run_check(model_path, ["ctranslate2-int8", "ctranslate2-float32"], machine,
                      logits_of({"ctranslate2-int8": flipped, "ctranslate2-float32": exact}))
        assert v.decoder == "ctranslate2-float32" and [c.agrees for c in v.checks] == [False, True]
        v = run_check(model_path, ["ctranslate2-int8"], machine, logits_of({"ctranslate2-int8": noisy}))
        assert v.decoder == "transformers"
    finally:
        selfcheck.float32_reference = original


def test_verdict_is_cached_per_machine_and_checked_again_on_another(tmp_path, monkeypatch, model_path):
    """A model cache copied to another CPU (or the same CPU told to use other kernels) is checked again."""
    monkeypatch.setenv("ASSISTANT_CACHE", str(tmp_path))
    runs = []

    def fake_run(path, paths, machine, logits_of=None):
        runs.append(machine)
        return Verdict("ctranslate2-float32", "measured", machine, [PathCheck("ctranslate2-float32", True, 10)])

    monkeypatch.setattr(selfcheck, "run_check", fake_run)
    first = decoder_verdict(model_path)
    assert decoder_verdict(model_path).to_json() == first.to_json() and len(runs) == 1
    assert list((tmp_path / "selfcheck").glob("decoder-*.json"))
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "SSE41")  # other kernels: another fingerprint
    decoder_verdict(model_path)
    assert len(runs) == 2 and runs[1]["env"]["ONEDNN_MAX_CPU_ISA"] == "SSE41" != runs[0]["env"].get("ONEDNN_MAX_CPU_ISA")
    monkeypatch.setattr(selfcheck, "fingerprint", lambda libs: {**fingerprint(libs), "model": "Another CPU"})
    decoder_verdict(model_path)
    assert len(runs) == 3 and "Another CPU" in describe(runs[2])


def test_doctor_shows_the_choice_and_its_reason(tmp_path, capsys):
    from assistant.cli import main

    load_generator(Config(device="cpu"))  # the verdict exists now
    assert main(["--workspace", str(tmp_path / "ws"), "doctor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    decoder = report["decoder"]
    assert decoder["decoder"] in ("ctranslate2-int8", "ctranslate2-float32", "transformers")
    assert "float32" in decoder["reason"] and report["machine"]["model"]
    assert report["embedder"]["backend"] in ("onnx-int8", "torch")
    assert main(["--workspace", str(tmp_path / "ws"), "doctor"]) == 0
    text = capsys.readouterr().out
    assert "decoder" in text and decoder["decoder"] in text and "CPU" in text
    (how,) = report["formats"].values()  # manual page sources: read with groff, or what to install
    assert how == "read with groff" or "apt install groff-base" in how
    assert f"formats   manual page sources (ls.1, open.2.gz): {how}" in text


def test_bundled_path_is_what_auto_compares(model_path):
    assert str(bundled_generator_path()) == model_path
