"""Training recipes on real models: full tuning of a tiny Llama, LoRA on the bundled SmolLM2,
resume, two-process DDP over gloo, the conversation log as data, and out-of-memory advice."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from finetune.registry import Registry
from finetune.train import OutOfMemory, TrainConfig, train

REPO = Path(__file__).resolve().parents[1]
QA = REPO / "tests" / "fixtures" / "finetune" / "qa.jsonl"


def tiny_config(tiny_model, **kw) -> TrainConfig:
    base = dict(base=str(tiny_model), qa=[QA], max_length=96, batch_size=4, lr=3e-3, eval_qa_examples=1,
                eval_max_new_tokens=8, progress=False)
    base.update(kw)
    return TrainConfig(**base)


def test_full_finetune_of_tiny_model_registers_a_loadable_model(tiny_model, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ws = tmp_path / "ws"
    res = train(tiny_config(tiny_model, method="full", max_steps=12, workspace=ws, name="tiny-full"))
    assert res.metrics["trainable_params"] == res.metrics["total_params"]
    assert sum(res.losses[-3:]) / 3 < sum(res.losses[:3]) / 3 - 0.5
    assert res.metrics["tuned"]["loss"] < res.metrics["base"]["loss"]  # held-out answers got likelier
    entry = Registry(ws).get("tiny-full")
    assert entry["method"] == "full" and entry["path"] == "tiny-full/model" and entry["adapter_path"] is None
    assert entry["data_fingerprint"] == res.data_fingerprint
    run = ws / "models" / "tiny-full"
    for f in ("README.md", "metrics.json", "train_config.json", "loss_curve.png", "model/model.safetensors"):
        assert (run / f).exists(), f
    assert not (run / "checkpoints").exists()
    model = AutoModelForCausalLM.from_pretrained(run / "model")
    tok = AutoTokenizer.from_pretrained(run / "model")
    out = model.generate(**tok("Hello", return_tensors="pt"), max_new_tokens=3, do_sample=False)
    assert out.shape[1] > 1
    with pytest.raises(Exception, match="already registered"):
        train(tiny_config(tiny_model, method="full", max_steps=1, workspace=ws, name="tiny-full"))


def test_resume_follows_the_uninterrupted_trajectory(tiny_model, tmp_path):
    # LoRA with dropout: resuming must restore the adapter, optimizer, schedule, data position and RNG.
    common = dict(method="lora", max_steps=6, lora_rank=4, lora_dropout=0.1, eval_qa_examples=0, register=False)
    full = train(tiny_config(tiny_model, output=tmp_path / "a", **common))

    stop_at_3 = lambda info: info.step == 3  # noqa: E731
    first = train(tiny_config(tiny_model, output=tmp_path / "b", callbacks=[stop_at_3], **common))
    assert first.stopped_early and len(first.losses) == 3 and first.model_path is None
    assert (tmp_path / "b" / "checkpoints" / "latest").read_text().strip() == "step-000003"
    resumed = train(tiny_config(tiny_model, output=tmp_path / "b", resume=True, **common))
    assert len(resumed.losses) == 6
    assert resumed.losses == pytest.approx(full.losses, rel=1e-5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_processes_on_gloo_match_one_process(tiny_model, tmp_path, strategy):
    """2 ranks x micro-batch 2 must follow one process with micro-batch 4 (same global batch);
    with FSDP, also across a checkpoint and resume of the sharded state."""
    single = train(tiny_config(tiny_model, method="full", max_steps=4, batch_size=4, eval_qa_examples=0,
                               output=tmp_path / "single", register=False))
    ws = tmp_path / "ws"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
           "-m", "finetune.cli", "--workspace", str(ws), "finetune", "--method", "full", "--base", str(tiny_model),
           "--qa", str(QA), "--max-steps", "4", "--batch-size", "2", "--max-length", "96", "--lr", "3e-3",
           "--eval-qa-examples", "1", "--eval-every", "2", "--device", "cpu", "--name", strategy, "--no-progress",
           "--strategy", strategy]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    if strategy == "fsdp":  # also split the run: checkpoint the sharded state after 2 steps, resume
        first = subprocess.run(cmd + ["--stop-after-steps", "2"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
        assert first.returncode == 0, first.stderr[-3000:]
        assert "stopped after step 2" in first.stdout and not (ws / "models" / "registry.json").exists()
        cmd = cmd + ["--resume"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads((ws / "models" / strategy / "metrics.json").read_text())
    assert info["metrics"]["world_size"] == 2
    assert info["losses"] == pytest.approx(single.losses, rel=1e-4)
    assert len(info["val_losses"]) == 2 and "token_f1" in info["metrics"]["tuned"]
    assert Registry(ws).get(strategy)["method"] == "full"
    from transformers import AutoModelForCausalLM

    saved = AutoModelForCausalLM.from_pretrained(ws / "models" / strategy / "model")  # the full, unsharded weights
    assert sum(p.numel() for p in saved.parameters()) == info["metrics"]["total_params"]


def test_conversation_log_export_is_training_data(tiny_model, tmp_path):
    from assistant.config import Config
    from assistant.log import ConversationLog, log_url

    ws = tmp_path / "ws"
    ws.mkdir()
    with ConversationLog.open(log_url(Config.load(ws), ws)) as clog:
        for q, a, rating, correction in [("Port?", "7443", 1, None), ("Owner?", "Nobody", -1, "The Discovery team"),
                                         ("Size?", "Huge", -1, None), ("Zone?", "UTC", 0, None)]:
            cid = clog.start_conversation()
            qid = clog.record_question(cid, q, task="qa")
            aid = clog.begin_answer(cid, qid, task="qa", model="smollm2", options={})
            clog.finish_answer(aid, content=a, sources=[])
            clog.add_feedback(aid, rating=rating, correction=correction)
    from assistant.cli import rated_log_records  # the reader the assistant injects into `finetune --from-log`

    res = train(tiny_config(tiny_model, method="full", qa=[], from_log=True, workspace=ws, max_steps=2,
                            val_fraction=0.0, name="from-log", log_reader=rated_log_records))
    assert res.stats["log"] == {"kept_positive": 1, "kept_correction": 1, "skipped_negative": 1, "skipped_unrated": 0}
    assert res.stats["train_examples"] == 2  # the unrated answer is not even exported (rated_only)


def test_from_log_without_the_assistant_says_how_to_run_it(tiny_model, tmp_path, capsys):
    """`python -m finetune.cli` (e.g. under torchrun) has no conversation log: it names the command that has."""
    from finetune.cli import main

    code = main(["--workspace", str(tmp_path / "ws"), "finetune", "--base", str(tiny_model), "--from-log", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "assistant finetune" in err and "-m assistant.cli finetune" in err and "--logs" in err


@pytest.mark.parametrize("how", ["exception", "signal"])
def test_ctrl_c_checkpoints_the_finished_steps_and_says_how_to_resume(tiny_model, tmp_path, caplog, how, request):
    """Ctrl-C (a real SIGINT, or KeyboardInterrupt from a callback) after step 2 of 5: a checkpoint of
    step 2, a message with --resume, and the resumed run ends where an uninterrupted one does."""
    import signal

    # Python's own Ctrl-C handler, whatever the suite was started with (a background job of a
    # non-interactive shell starts with SIGINT ignored, which a user's Ctrl-C never meets)
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    request.addfinalizer(lambda: signal.signal(signal.SIGINT, before))
    common = dict(method="full", max_steps=5, eval_qa_examples=0, register=False, val_fraction=0.0)
    whole = train(tiny_config(tiny_model, output=tmp_path / "whole", **common))
    infos = []

    def ctrl_c_at_2(info):
        infos.append(info)
        if info.step == 2:
            if how == "signal":
                os.kill(os.getpid(), signal.SIGINT)
            else:
                raise KeyboardInterrupt

    cut = train(tiny_config(tiny_model, output=tmp_path / "cut", callbacks=[ctrl_c_at_2], **common))
    assert cut.stopped_early and cut.stop_reason == "interrupted" and len(cut.losses) == 2 and cut.model_path is None
    assert (tmp_path / "cut" / "checkpoints" / "latest").read_text().strip() == "step-000002"
    assert "interrupted after step 2" in cut.resume_hint and "--resume" in cut.resume_hint
    assert any("--resume" in r.getMessage() for r in caplog.records)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is put back
    # steps left x mean step time: positive at each step (their order depends on how busy the machine is)
    assert all(i.eta_s is not None and i.eta_s > 0 for i in infos)
    resumed = train(tiny_config(tiny_model, output=tmp_path / "cut", resume=True, **common))
    assert not resumed.stopped_early and resumed.losses == pytest.approx(whole.losses, rel=1e-5)
    assert (tmp_path / "cut" / "model" / "model.safetensors").exists()


def test_time_left_is_steps_left_times_the_mean_step_time():
    from finetune.progress import eta_seconds

    assert eta_seconds(1, 5, 1, 3.0) == 12.0 and eta_seconds(2, 5, 2, 4.0) == 6.0  # 4 x 3 s, then 3 x 2 s
    assert eta_seconds(3, 5, 1, 2.0) == 4.0  # a resumed run counts only this session's steps
    assert eta_seconds(0, 5, 0, 0.0) is None and eta_seconds(6, 5, 6, 6.0) == 0


def test_out_of_memory_ends_with_advice(tiny_model, tmp_path):
    def boom(info):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    with pytest.raises(OutOfMemory) as err:
        train(tiny_config(tiny_model, method="full", max_steps=2, output=tmp_path / "o", register=False,
                          eval_qa_examples=0, callbacks=[boom]))
    msg = str(err.value)
    assert "Tried to allocate" in msg and "--grad-checkpointing" in msg and "--method lora" in msg and "--batch-size 2" in msg


@pytest.mark.slow
def test_lora_on_default_model_learns_registers_and_merges_exactly(tmp_path):
    """The real SmolLM2: a few LoRA steps lower the loss; the merged model equals base + adapter."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ws = tmp_path / "ws"
    two = tmp_path / "two.jsonl"  # the same two records every step: the loss must fall
    two.write_text("".join(QA.read_text().splitlines(keepends=True)[:2]))
    res = train(TrainConfig(method="lora", qa=[two], max_length=96, batch_size=2, max_steps=5, lr=2e-3,
                            lora_rank=8, val_fraction=0.0, workspace=ws, name="smol-lora", use=True, progress=False))
    assert res.losses[-1] < res.losses[0] - 0.3, res.losses
    assert res.metrics["trainable_params"] < 0.1 * res.metrics["total_params"]
    reg = Registry(ws)
    assert reg.current == "smol-lora"
    merged_dir = reg.model_dir("smol-lora")
    tok = AutoTokenizer.from_pretrained(merged_dir)
    merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    prompt = tok.apply_chat_template([{"role": "user", "content": "How often are backups taken?"}],
                                     tokenize=False, add_generation_prompt=True)
    enc = tok(prompt, return_tensors="pt", add_special_tokens=False)
    out = merged.generate(**enc, max_new_tokens=12, do_sample=False)
    assert tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True).strip()

    from foundation.model_paths import resolve_generator

    base = AutoModelForCausalLM.from_pretrained(resolve_generator("smollm2"))
    adapted = PeftModel.from_pretrained(base, ws / "models" / reg.get("smol-lora")["adapter_path"]).eval()
    with torch.no_grad():
        a = adapted(**enc).logits
        b = merged(**enc).logits
        with adapted.disable_adapter():
            untuned = adapted(**enc).logits
    assert torch.allclose(a, b, atol=2e-3), (a - b).abs().max()
    assert (a - untuned).abs().max() > 1e-2  # the adapter really changed the model


def test_cli_reports_a_bad_record_with_its_line_and_trains_nothing(tiny_model, tmp_path, capsys):
    from finetune.cli import main

    bad = tmp_path / "qa.jsonl"
    bad.write_text(QA.read_text() + '{"question": "unterminated?", "answer": \n')
    ws = tmp_path / "ws"
    code = main(["--workspace", str(ws), "finetune", "--base", str(tiny_model), "--qa", str(bad), "--max-steps", "1",
                 "--no-progress", "--name", "never"])
    assert code == 2
    assert f"{bad}:13: not valid JSON" in capsys.readouterr().err
    assert not (ws / "models" / "registry.json").exists() and not (ws / "models" / "never").exists()


def test_evaluate_model_scores_a_saved_model(tiny_model):
    from finetune.evaluate import evaluate_model

    records = [json.loads(line) for line in QA.read_text().splitlines()[:3]]
    res = evaluate_model(str(tiny_model), records, max_new_tokens=4, progress=False)
    assert res["n"] == 3 and 0.0 <= res["token_f1"] <= 1.0 and res["exact_match"] == 0.0
    assert res["perplexity"] > 1000  # a random model over a 49k vocabulary is nearly uniform
    assert len(res["samples"]) == 3


def test_accumulation_and_checkpointing_do_not_change_the_math(tiny_model, tmp_path):
    """Micro-batch 4 == 2 x accumulated micro-batch 2 == the same with activation recomputation."""
    common = dict(method="full", max_steps=3, eval_qa_examples=0, register=False, val_fraction=0.0)
    plain = train(tiny_config(tiny_model, batch_size=4, output=tmp_path / "p", **common))
    accum = train(tiny_config(tiny_model, batch_size=2, grad_accum=2, output=tmp_path / "a", **common))
    recompute = train(tiny_config(tiny_model, batch_size=2, grad_accum=2, grad_checkpointing=True, output=tmp_path / "c", **common))
    assert accum.losses == pytest.approx(plain.losses, rel=1e-4)
    assert recompute.losses == pytest.approx(plain.losses, rel=1e-4)
