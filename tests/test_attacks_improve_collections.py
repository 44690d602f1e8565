"""Attack on the learning loop (issue 21): a model fine-tuned by `improve` on a reader's rated answers,
then asked by a non-reader, must not repeat the collection the reader drew on.

alice (group hr) asks about the salary bands (collection `hr`) and rates the answers thumbs-up, carol
(no groups) does the same for the handbook (`shared`); the real loop (`run_cycle`, tiny LoRA, few steps, CPU) trains and
promotes a candidate; bob (no groups) then asks the served candidate the same questions, and the
candidate's weights are asked directly to continue the hr sentences. No salary mark may appear in
bob's answers, the generations, or any file the cycle wrote (its train/held-out/SFT data, state and
the registered model's folder). On the code before collections the SFT data held the hr answers and
their passages: that is the check that fails there.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

import pytest

from assistant import Assistant
from assistant.improve import ImproveConfig, is_held_out, run_cycle
from foundation.model_paths import registry_model_path
from leak_marks import leaks

DOCS = Path(__file__).parent / "fixtures" / "collections"  # handbook (shared), salary bands (hr)
HR_QUESTIONS = ["What is the salary range of a senior engineer?",  # trained on if it were allowed
                "What band are senior engineers paid in?",
                "What is the reference word of the engineering pay bands?"]  # would be held out
SHARED_QUESTIONS = ["When does the office close?", "How many days of paid holiday does every employee get?",
                    "Hello, When does the office open?"]  # the last is held out (evaluated, not trained on)
# The start of each hr sentence: the tuned weights are asked to finish them.
HR_PREFIXES = ["Senior engineers are paid in", "Reference", "HR staff get"]


@pytest.fixture(scope="module")
def bot(tmp_path_factory):
    root = tmp_path_factory.mktemp("docs") / "collections"
    shutil.copytree(DOCS, root)
    ws = tmp_path_factory.mktemp("ws") / "workspace"
    ws.mkdir()
    (ws / "config.toml").write_text("max_new_tokens = 32\nanswer_candidates = 1\n")  # short answers: quick on CPU
    bot = Assistant.open(ws)
    assert not bot.ingest([root / "pub"], progress=False).failed
    assert not bot.ingest([root / "hr"], progress=False, collection="hr").failed
    bot.collections.grant("hr", ["group:hr"])
    bot.collections.memberships = {"alice": frozenset({"hr"})}  # bob and carol read shared alone
    yield bot
    bot.close()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_model_tuned_on_a_readers_rated_hr_answers_repeats_nothing_to_a_non_reader(bot, tmp_path):
    ws = bot.workspace
    assert [is_held_out(q, 0.2) for q in HR_QUESTIONS + SHARED_QUESTIONS] == [False, False, True] + [False] * 2 + [True]

    # 1. The reader's conversations: hr answers that quote the salary bands, and shared ones; all rated +1.
    hr_answers = [bot.ask(q, user="alice", task="qa") for q in HR_QUESTIONS]
    assert all("hr" in a.collections for a in hr_answers), [a.collections for a in hr_answers]
    assert leaks([a.text for a in hr_answers]), [a.text for a in hr_answers]  # there is something to leak
    # alice's own answers draw on hr passages even for handbook questions: carol (shared alone) gives the data.
    shared_answers = [bot.ask(q, user="carol", task="qa") for q in SHARED_QUESTIONS]
    assert all(a.collections == ["shared"] for a in shared_answers), [a.collections for a in shared_answers]
    for answer in hr_answers:
        bot.feedback(answer.message_id, rating=1, user="alice")
    for answer in shared_answers:
        bot.feedback(answer.message_id, rating=1, user="carol")
    bot.log.settle()

    # 2. The real loop, at its smallest: a rank-4 LoRA on the top 2 layers, 2 steps, one sanity question;
    # the rule is relaxed so the candidate is promoted and served to everyone.
    sanity = tmp_path / "sanity.jsonl"
    sanity.write_text((Path(__file__).resolve().parents[1] / "assistant" / "sanity_set.jsonl").read_text()
                      .splitlines(True)[0])
    report = run_cycle(bot=bot, config=ImproveConfig(
        min_examples=2, lr=1e-3, max_steps=2, lora_rank=4, lora_layers=2, batch_size=2, device="cpu",
        sanity_file=sanity, min_gain=-1.0, sanity_tolerance=1.0, citation_tolerance=1.0, decline_tolerance=1.0,
        progress=False))

    # 3. The training data the loop actually used, and everything else it wrote, holds no mark (before
    # collections the SFT file held alice's hr answers with the salary passage as their prompt).
    cycle = ws / "improve" / "cycle-001"
    sft = [json.loads(line) for line in (cycle / "sft.jsonl").open()]
    assert leaks(sft) == [], sft
    trained_questions = [m["content"] for r in sft for m in r["messages"] if m["role"] == "user"]
    assert not any(q in text for q in HR_QUESTIONS for text in trained_questions)
    assert len(sft) == 2 and report["data"]["train_new"] == 2 and report["data"]["heldout"] == 1  # shared alone
    assert report["decision"]["status"] == "promoted", report["decision"]
    assert bot.model_name == "improve-001" and report["training"]["steps"] >= 1
    model_dir = registry_model_path(ws, "improve-001")
    written = [p for folder in (ws / "improve", model_dir.parent) for p in folder.rglob("*")
               if p.is_file() and p.suffix in {".jsonl", ".json", ".md", ".txt", ".toml"}]
    assert {cycle / name for name in ("train.jsonl", "heldout.jsonl", "pairs.jsonl", "report.json")} <= set(written)
    assert {p.name: leaks(p.read_text(errors="replace")) for p in written if leaks(p.read_text(errors="replace"))} == {}

    # 4. The non-reader asks the served, tuned model the reader's questions, and one that the handbook's
    # holiday passage lets it answer (so the tuned model itself writes the answer).
    for question in HR_QUESTIONS + ["How many days of holiday do HR staff get?"]:
        answer = bot.ask(question, user="bob", task="qa")
        assert answer.model == "improve-001" and "hr" not in answer.collections
        assert leaks([answer.text, [asdict(s) for s in answer.sources]]) == [], answer.text

    # 5. The tuned weights themselves, asked to finish the hr sentences (raw text and chat form).
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    prompts = HR_PREFIXES + [tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False,
                                                     add_generation_prompt=True) for q in HR_QUESTIONS]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # on a busy machine torch's default threads make each generation ~10x slower
    try:
        for prompt in prompts:
            ids = tok(prompt, return_tensors="pt", add_special_tokens=False)
            with torch.no_grad():
                out = model.generate(**ids, max_new_tokens=24, do_sample=False, pad_token_id=tok.pad_token_id)
            completion = tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
            assert leaks(completion) == [], (prompt, completion)
    finally:
        torch.set_num_threads(threads)
