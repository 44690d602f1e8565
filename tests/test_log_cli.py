"""`assistant logs ...` run through the real CLI entry point against a real workspace log."""
from __future__ import annotations

import json

import pytest

from assistant.cli import main
from assistant.config import Config
from assistant.log import ConversationLog, log_url
from index.types import Source


@pytest.fixture
def workspace(tmp_path):
    ws = tmp_path / "workspace"
    log = ConversationLog.open(log_url(Config(), ws))
    cid = log.start_conversation(user="ann")
    ids = []
    for question, reply, declined in [("How do I rotate keys?", "Run vault rotate [1].", False),
                                      ("Where is the audit log?", "I could not find that.", True)]:
        qid = log.record_question(cid, question, task="qa")
        aid = log.begin_answer(cid, qid, task="qa", model="smollm2", options={"temperature": 0})
        log.finish_answer(aid, content=reply, sources=[Source("docs/keys.md", "Keys", "§ Rotation", "vault rotate", 0.8)],
                          supported=[True], declined=declined)
        ids.append(aid)
    log.add_feedback(ids[0], rating=1, user="ann")
    log.add_feedback(ids[1], rating=-1, correction="In /var/log/audit, see [1].")
    log.close()
    return ws, cid, ids


def run(capsys, ws, *argv: str) -> str:
    assert main(["--workspace", str(ws), "logs", *argv]) == 0
    return capsys.readouterr().out


def test_list_show_search(capsys, workspace):
    ws, cid, ids = workspace
    (row,) = json.loads(run(capsys, ws, "list", "--json"))
    assert (row["id"], row["title"], row["user"], row["n_messages"]) == (cid, "How do I rotate keys?", "ann", 4)
    assert cid in run(capsys, ws, "list")
    shown = run(capsys, ws, "show", cid)
    assert "Run vault rotate [1]." in shown and "docs/keys.md" in shown and "declined" in shown
    detail = json.loads(run(capsys, ws, "show", cid, "--json"))
    assert [m["id"] for m in detail["messages"]][1::2] == ids
    hits = json.loads(run(capsys, ws, "search", "audit", "--json"))
    assert {h["content"] for h in hits} == {"Where is the audit log?"}
    assert cid in run(capsys, ws, "search", "rotate")


def test_export_jsonl_with_corrections(capsys, workspace, tmp_path):
    ws, cid, ids = workspace
    out = tmp_path / "train.jsonl"
    run(capsys, ws, "export", "--format", "jsonl", "--rated-only", "--since", "2020-01-01", "--output", str(out))
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["message_id"] for r in records] == ids
    assert records[1]["messages"][1] == {"role": "assistant", "content": "In /var/log/audit, see [1]."}
    assert records[1]["original"] == "I could not find that."
    assert run(capsys, ws, "export", "--since", "2999-01-01") == ""
    assert len(run(capsys, ws, "export").splitlines()) == 2


def test_stats_prune_and_opt_out(capsys, workspace):
    ws, cid, ids = workspace
    stats = json.loads(run(capsys, ws, "stats", "--json"))
    assert (stats["questions"], stats["declined_share"], stats["average_rating"]) == (2, 0.5, 0.0)
    assert "Where is the audit log?" in run(capsys, ws, "stats")
    assert "deleted 0 conversation" in run(capsys, ws, "prune", "--days", "1")
    run(capsys, ws, "opt-out", "ann")
    assert run(capsys, ws, "export") == ""


def test_bad_input_and_empty_workspace(capsys, workspace, tmp_path):
    ws, _, _ = workspace
    assert main(["--workspace", str(ws), "logs", "show", "no-such-id"]) == 2
    assert "no conversation" in capsys.readouterr().err
    assert main(["--workspace", str(ws), "logs", "prune"]) == 2  # no --days and no retention_days
    with pytest.raises(SystemExit):
        main(["--workspace", str(ws), "logs", "export", "--since", "last tuesday"])
    empty = tmp_path / "empty"
    assert run(capsys, empty, "export") == ""
    assert json.loads(run(capsys, empty, "list", "--json")) == []
    assert not (empty / "log.db").exists()  # reading never creates a log
