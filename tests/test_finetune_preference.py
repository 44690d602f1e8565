"""DPO on real (tiny) models: the corrected answer becomes more likely than the rejected one."""
from __future__ import annotations

import shutil

import pytest
import torch

from finetune.data import DataError
from finetune.preference import DPOConfig, PreferencePair, dpo_loss, dpo_tune, pairs_from_records

FACTS = [("Which port does the drone's API use?", "Port 8443.", "Port 80."),
         ("How long does the battery last?", "About 40 minutes.", "Two days."),
         ("What colour is the status light when charging?", "Amber.", "Purple."),
         ("Who can reset the flight log?", "Only an administrator.", "Anyone at all.")]


def test_dpo_loss_is_log2_at_the_reference_and_falls_with_the_margin():
    zero = torch.zeros(3)
    assert float(dpo_loss(zero, zero, zero, zero, beta=0.1)) == pytest.approx(0.6931, abs=1e-4)
    better = dpo_loss(torch.tensor([2.0]), torch.tensor([-2.0]), torch.zeros(1), torch.zeros(1), beta=0.5)
    assert float(better) < 0.2


def test_records_need_two_different_answers():
    pairs = pairs_from_records([{"prompt": "Q?", "chosen": "yes", "rejected": "no"}])
    assert pairs[0].prompt == [{"role": "user", "content": "Q?"}]
    with pytest.raises(DataError, match="record 1"):
        pairs_from_records([{"prompt": "Q?", "chosen": "same", "rejected": "same"}])


def test_dpo_prefers_the_chosen_answers_and_replaces_the_model_in_place(tiny_model, tmp_path):
    from transformers import AutoModelForCausalLM

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model, model_dir)
    pairs = [PreferencePair([{"role": "user", "content": q}], good, bad) for q, good, bad in FACTS]
    report = dpo_tune(model_dir, pairs, DPOConfig(steps=30, lr=5e-3, beta=0.5, batch_size=2, progress=False))

    before, after = report["before"], report["after"]
    assert before["loss"] == pytest.approx(0.6931, abs=1e-3)  # policy == reference at the start
    assert after["loss"] < 0.45 * before["loss"]
    assert after["mean_margin"] > before["mean_margin"] + 1.0
    assert before["reward_accuracy"] == 0.0 and after["reward_accuracy"] == 1.0
    assert after["preference_accuracy"] >= before["preference_accuracy"]
    assert not list(tmp_path.glob("model.*"))  # no staging or backup folder left behind
    tuned = AutoModelForCausalLM.from_pretrained(model_dir)
    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    ids = torch.tensor([[1, 2, 3, 4]])
    assert not torch.allclose(tuned(ids).logits, base(ids).logits)  # merged weights were saved
    assert not any("lora" in name for name, _ in tuned.named_parameters())
