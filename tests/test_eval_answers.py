"""`assistant eval answers` / `eval summaries`: the figures, recomputed by hand from what was answered."""
from __future__ import annotations

import json
import re
from pathlib import Path

from assistant.cli import main
from assistant.evaluation.answers import AnswerItem, judge, summarise
from assistant.evaluation.metrics import rouge_l, strict_match, word_count
from assistant.evaluation.summaries import form_respected
from assistant.types import Answer, SentenceCheck, Source

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "eval"


def test_rouge_l_matches_a_hand_computed_value():
    # candidate and reference share "the cat ... on the mat": LCS 5 of 6 words each side
    assert abs(rouge_l("The cat sat on the mat.", "the cat is on the mat") - 5 / 6) < 1e-9
    assert rouge_l("", "anything") == 0.0
    # 2 of 4 candidate words, 2 of 2 reference words: P = 0.5, R = 1, F = 2/3
    assert abs(rouge_l("list directory contents quickly", "directory contents") - 2 / 3) < 1e-9


def test_strict_match_needs_the_string_and_a_short_answer():
    assert strict_match("A table holds at most 2,000 columns [1].", ["2,000", "2000"])
    assert not strict_match("A table holds many columns [1].", ["2,000"])
    long = "It is 2000. " + "word " * 80
    assert word_count(long) > 80 and not strict_match(long, ["2000"])
    assert strict_match("默认是 四 个", ["默认是四个"])  # Chinese ignores spaces


def test_judge_and_summary_figures():
    src = Source(path="/docs/limits.html", title="Limits", locator="", snippet="", score=1.0)
    other = Source(path="/docs/faq.html", title="FAQ", locator="", snippet="", score=0.5)
    right = Answer(text="At most 2000 columns [1].", sources=[src, other], sentences=[SentenceCheck("x", [1])])
    wrong_cite = Answer(text="At most 2000 columns [2].", sources=[src, other], sentences=[SentenceCheck("x", [2])])
    declined = Answer(text="The documents do not seem to contain an answer to this.", declined=True)
    item = AnswerItem("How many columns?", ["2000"], ["limits.html"], True)
    unanswerable = AnswerItem("Turbo mode?", [], [], False)
    outcomes = [judge(item, right), judge(item, wrong_cite), judge(item, declined),
                judge(unanswerable, declined), judge(unanswerable, right)]
    assert [o.correct for o in outcomes] == [True, True, False, False, False]
    assert [o.cited_right for o in outcomes] == [True, False, None, None, None]
    figures = summarise(outcomes)
    assert figures["strict_accuracy"] == round(2 / 3, 4)
    assert figures["citation_accuracy"] == 0.5
    assert figures["false_declines"] == round(1 / 3, 4)
    assert figures["declined_unanswerable"] == 0.5


def test_form_of_a_summary():
    assert form_respected("The ls command lists directory contents [1].", "sentence")
    assert not form_respected("It lists files. It sorts them.", "sentence")
    assert form_respected("- one\n- two\n- three", "bullets:3")
    assert not form_respected("- one\n- two", "bullets:3")
    assert form_respected("It lists files. It sorts them.", "paragraph")
    assert not form_respected("First.\n\nSecond.", "paragraph")


def _normalised(text: str) -> str:
    return " ".join(re.sub(r"\[\d+\]", " ", text).lower().split())


def test_eval_answers_on_the_sample_docs(demo_bot, tmp_path, capsys):
    out = tmp_path / "answers.json"
    qa = FIXTURES / "answers.jsonl"
    assert main(["--workspace", str(demo_bot.workspace), "eval", "answers", "--qa", str(qa), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "strict accuracy" in printed and "unanswerable declined" in printed
    result = json.loads(out.read_text())
    rows = result["per_question"]
    assert len(rows) == 5
    # Recompute every figure from the answers themselves.
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]
    correct = [not r["declined"] and len(r["text"].split()) <= 80
               and any(a.lower() in _normalised(r["text"]) for a in r["answers"]) for r in answerable]
    assert result["all"]["strict_accuracy"] == round(sum(correct) / len(answerable), 4)
    assert result["all"]["declined_unanswerable"] == round(sum(r["declined"] for r in unanswerable) / len(unanswerable), 4)
    assert result["all"]["false_declines"] == round(sum(r["declined"] for r in answerable) / len(answerable), 4)
    answered = [r for r in answerable if not r["declined"]]
    if answered:
        cited = [any(Path(p).name == r["paths"][0] for p in r["cited"]) for r in answered]
        assert result["all"]["citation_accuracy"] == round(sum(cited) / len(answered), 4)
    # The swallow question has nothing to do with the documents: it must be declined.
    assert next(r for r in rows if r["id"] == "un-2")["declined"]


def test_eval_summaries_on_the_sample_docs(demo_bot, tmp_path, capsys):
    out = tmp_path / "summaries.json"
    assert main(["--workspace", str(demo_bot.workspace), "eval", "summaries", "--set",
                 str(FIXTURES / "summaries.jsonl"), "--json", str(out)]) == 0
    assert "ROUGE-L" in capsys.readouterr().out
    result = json.loads(out.read_text())
    rows = result["per_document"]
    assert len(rows) == 2
    for row in rows:
        assert row["rouge_l"] == round(rouge_l(row["summary"], row["reference"]), 4)
        assert row["summary"].strip()
    assert result["all"]["rouge_l"] == round(sum(r["rouge_l"] for r in rows) / 2, 4)
    assert result["all"]["form_respected"] == round(sum(r["form_respected"] for r in rows) / 2, 4)
    assert result["all"]["right_document"] == round(sum(r["right_document"] for r in rows) / 2, 4) == 1.0


def test_eval_summaries_by_name_finds_each_document_from_the_request_alone(demo_bot, tmp_path):
    """--by-name: no path is handed over, so the request's own words ("Summarise configuration.md ...")
    must name the document, as in a chat; a request that names another document is counted as such."""
    set_file = tmp_path / "summaries.jsonl"
    rows = [json.loads(line) for line in (FIXTURES / "summaries.jsonl").read_text().splitlines()]
    rows[1]["request"] = "Summarise configuration.md in 3 bullets."  # its path is still conversation-log.md
    set_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "by-name.json"
    assert main(["--workspace", str(demo_bot.workspace), "eval", "summaries", "--set", str(set_file),
                 "--by-name", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert [r["right_document"] for r in result["per_document"]] == [True, False]
    assert result["all"]["right_document"] == 0.5
