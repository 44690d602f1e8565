"""Collections: documents labelled per collection, readers per collection, the mask applied before ranking,
the CLI, and a workspace built by the code before collections opening with every document in `shared`."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import io
from pathlib import Path

import pytest

from assistant import Assistant
from assistant.cli import main
from assistant.collections import CollectionError, own_collection
from index.collections import SHARED

REPO = Path(__file__).resolve().parents[1]
DOCS = Path(__file__).parent / "fixtures" / "collections"  # handbook (shared), salary bands (hr), incident (oncall)


@pytest.fixture(scope="module")
def docs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("docs") / "collections"
    shutil.copytree(DOCS, root)
    return {folder: root / folder for folder in ("pub", "hr", "ops")}


@pytest.fixture(scope="module")
def bot(tmp_path_factory, docs):
    bot = Assistant.open(tmp_path_factory.mktemp("ws") / "workspace")
    bot.ingest([docs["pub"]], progress=False)
    bot.ingest([docs["hr"]], progress=False, collection="hr")
    bot.ingest([docs["ops"]], progress=False, collection="oncall")
    bot.collections.grant("hr", ["group:hr"])
    bot.collections.grant("oncall", ["dave"])
    bot.collections.memberships = {"carol": frozenset({"hr"})}
    yield bot
    bot.close()


@pytest.fixture(scope="module")
def shared_only(tmp_path_factory, docs):
    """The same shared document alone in a workspace: what a non-reader must see, ranking and all."""
    other = Assistant.open(tmp_path_factory.mktemp("ws-shared") / "workspace")
    other.ingest([docs["pub"]], progress=False)
    yield other
    other.close()


def names(hits) -> list[str]:
    return [Path(h.path).name for h in hits]


def test_documents_carry_their_collection_and_readers(bot):
    assert {Path(d.path).name: d.collection for d in bot.documents()} == {
        "handbook.md": SHARED, "salary-bands.md": "hr", "incident-4711.md": "oncall"}
    assert names(bot.documents("bob")) == ["handbook.md"]
    assert sorted(names(bot.documents("carol"))) == ["handbook.md", "salary-bands.md"]
    assert sorted(names(bot.documents("dave"))) == ["handbook.md", "incident-4711.md"]
    assert bot.readable("carol") == {SHARED, "hr", own_collection("carol")}
    assert bot.readable(None) is None  # the operator reads everything
    listed = {i.name: (i.readers, i.documents) for i in bot.collections.list()}
    assert listed == {SHARED: ([], 1), "hr": (["group:hr"], 1), "oncall": (["dave"], 1)}


@pytest.mark.parametrize("mode", ["hybrid", "dense", "keyword"])
def test_a_forbidden_document_changes_neither_results_nor_ranking(bot, shared_only, mode):
    for query in ("How many days of paid holiday do we get?", "salary band for senior engineers ZEPHYRQUILL",
                  "database failover runbook"):
        mine = bot.search(query, k=5, mode=mode, user="bob")
        alone = shared_only.search(query, k=5, mode=mode)
        assert [(h.chunk_id, h.rank) for h in mine] == [(h.chunk_id, h.rank) for h in alone], (mode, query)
        if mode == "dense":  # cosine scores are the same numbers; BM25 keeps the index's average length
            assert [round(h.score, 5) for h in mine] == [round(h.score, 5) for h in alone]
        assert "salary-bands.md" not in names(mine) and "incident-4711.md" not in names(mine)


def test_readers_find_what_they_may_read(bot):
    assert names(bot.search("ZEPHYRQUILL", k=3, mode="keyword", user="carol")) == ["salary-bands.md"]
    assert names(bot.search("ZEPHYRQUILL", k=3, mode="keyword", user="bob")) == []
    assert names(bot.search("MARMOTFALCON", k=3, mode="keyword", user="dave")) == ["incident-4711.md"]
    assert names(bot.search("MARMOTFALCON", k=3, mode="keyword", user="carol")) == []
    assert "salary-bands.md" in names(bot.search("ZEPHYRQUILL", k=3))  # the operator


def test_a_document_one_may_not_read_does_not_exist_by_name(bot):
    readable = bot.readable("bob")
    with pytest.raises(KeyError) as refused:
        bot.index.document_chunks("salary-bands.md", readable)
    assert refused.value.args[0] == "No document named 'salary-bands.md' in the index (1 documents)."  # as if absent
    with pytest.raises(KeyError) as typo:  # no "did you mean" pointing into a forbidden collection
        bot.index.document_chunks("salary-band", readable)
    assert "salary-bands.md" not in str(typo.value)
    assert bot.index.document_chunks("salary-bands.md", bot.readable("carol"))


def test_grant_revoke_and_bad_input(bot):
    cols = bot.collections
    with pytest.raises(CollectionError, match="exists already"):
        cols.create("hr")
    with pytest.raises(CollectionError, match="reserved"):
        cols.create("user-mallory")
    with pytest.raises(CollectionError, match="not allowed"):
        cols.create("../etc")
    with pytest.raises(CollectionError, match="no collection"):
        cols.grant("payroll", ["bob"])
    with pytest.raises(CollectionError, match="group:NAME"):
        cols.grant("hr", ["bad reader"])
    with pytest.raises(CollectionError, match="everyone"):
        cols.grant(SHARED, ["bob"])
    cols.grant("hr", ["bob"])
    assert "salary-bands.md" in names(bot.documents("bob"))
    cols.revoke("hr", ["bob"])
    assert "salary-bands.md" not in names(bot.documents("bob"))
    with pytest.raises(CollectionError, match="cannot read"):
        cols.revoke("hr", ["bob"])
    assert json.loads((bot.workspace / "collections.json").read_text())["collections"]["hr"]["readers"] == ["group:hr"]


def test_uploads_go_to_the_users_own_collection_unless_they_may_write_elsewhere(bot, tmp_path):
    note = tmp_path / "bobs-notes.md"
    note.write_text("# Bob's notes\n\nMy locker code is LOCKER-8812.\n")
    report = bot.ingest([note], progress=False, user="bob")
    assert report.added and sorted(names(bot.documents("bob"))) == ["bobs-notes.md", "handbook.md"]
    assert "bobs-notes.md" not in names(bot.documents("carol"))
    with pytest.raises(PermissionError, match="may not add"):
        bot.ingest([note], progress=False, user="bob", collection="hr")
    bot.collections.grant("hr", ["bob"], write=True)
    try:
        bot.ingest([note], progress=False, user="bob", collection="hr")
        assert {Path(d.path).name: d.collection for d in bot.documents()}["bobs-notes.md"] == "hr"
    finally:
        bot.collections.revoke("hr", ["bob"])
        bot.delete_collection(own_collection("bob"))  # empty now: its one document moved to hr


def test_cli_ingest_into_a_collection_and_manage_it(tmp_path, docs, capsys):
    ws = str(tmp_path / "ws")
    assert main(["ingest", str(docs["pub"]), "--workspace", ws, "--json"]) == 0
    capsys.readouterr()
    assert main(["ingest", str(docs["hr"]), "--collection", "hr", "--workspace", ws, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["chunks_added"] > 0
    assert main(["collections", "grant", "hr", "group:hr", "erin", "--workspace", ws]) == 0
    capsys.readouterr()
    assert main(["collections", "list", "--json", "--workspace", ws]) == 0
    listed = {c["name"]: c for c in json.loads(capsys.readouterr().out)}
    assert listed["hr"]["readers"] == ["erin", "group:hr"] and listed["hr"]["documents"] == 1
    assert listed[SHARED]["readers"] == ["everyone"] and listed[SHARED]["documents"] == 1
    # moving a file to another collection re-labels it without embedding it again
    assert main(["collections", "create", "payroll", "--reader", "erin", "--workspace", ws]) == 0
    capsys.readouterr()
    assert main(["ingest", str(docs["hr"]), "--collection", "payroll", "--workspace", ws, "--json"]) == 0
    moved = json.loads(capsys.readouterr().out)
    assert moved["chunks_added"] == 0 and len(moved["updated"]) == 1
    assert main(["collections", "delete", "payroll", "--workspace", ws]) == 2
    assert "holds 1 document" in capsys.readouterr().err
    assert main(["collections", "delete", "payroll", "--remove-documents", "--workspace", ws]) == 0
    bot = Assistant.open(ws)
    assert names(bot.documents()) == ["handbook.md"]
    assert main(["collections", "grant", "nope", "bob", "--workspace", ws]) == 2
    assert "no collection 'nope'" in capsys.readouterr().err
    assert main(["ingest", str(docs["pub"]), "--collection", "bad name", "--workspace", ws]) == 2
    assert "not allowed" in capsys.readouterr().err


def _code_before_collections(target: Path) -> Path:
    """The repository as it was before collections existed (the commit before index/collections.py)."""
    added = subprocess.run(["git", "log", "--diff-filter=A", "--format=%H", "--", "index/collections.py"],
                           cwd=REPO, capture_output=True, text=True).stdout.split()
    commit = f"{added[-1]}^" if added else "HEAD"
    tar = subprocess.run(["git", "archive", commit, "index", "foundation", "assistant", "finetune"],
                         cwd=REPO, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        archive.extractall(target, filter="data")
    if (target / "index" / "collections.py").exists():  # not committed yet: HEAD is the old code
        (target / "index" / "collections.py").unlink()
    return target


def test_a_workspace_built_by_the_old_code_opens_with_everything_in_shared(tmp_path, docs):
    old = _code_before_collections(tmp_path / "old")
    ws = tmp_path / "ws"
    script = (f"from assistant import Assistant\nbot = Assistant.open({str(ws)!r})\n"
              f"bot.ingest([{str(docs['pub'])!r}, {str(docs['hr'])!r}], progress=False)\n"
              f"log = bot.log\ncid, _, mid = log.begin_turn(None, 'q', task='qa', model='m', user='ann', options={{}})\n"
              f"log.finish_answer(mid, content='a', sources=bot.search('salary', k=1))\nbot.close()\n")
    env = {**os.environ, "PYTHONPATH": str(old)}
    subprocess.run([sys.executable, "-c", script], cwd=old, env=env, check=True, timeout=300)
    generation = (ws / "index" / "CURRENT").read_text().strip()
    stored = json.loads((ws / "index" / generation / "documents.json").read_text())
    assert stored and all("collection" not in d for d in stored)  # really the old format

    bot = Assistant.open(ws)
    assert sorted(names(bot.documents())) == ["handbook.md", "salary-bands.md"]
    assert {d.collection for d in bot.documents()} == {SHARED}
    assert sorted(names(bot.documents("bob"))) == ["handbook.md", "salary-bands.md"]  # nothing lost to anyone
    assert sum(d.n_chunks for d in bot.documents()) == bot.index.count
    assert names(bot.search("ZEPHYRQUILL", k=1, mode="keyword", user="bob")) == ["salary-bands.md"]
    (record,) = bot.log.export()  # the old log migrates; its answer counts as drawing on shared
    assert record["collections"] == [SHARED]
    # moving it afterwards takes the old answer out of the shared export
    bot.ingest([docs["hr"]], progress=False, collection="hr")
    from index.document_index import stored_collections
    assert bot.log.export(audience={SHARED}, collections_of=stored_collections(ws / "index")) == []
    bot.close()


def test_revoked_access_withholds_old_answers_on_resume_and_in_follow_ups(bot):
    import gradio as gr

    from ui.app import WITHHELD, ChatHandlers
    from ui.security import UploadPolicy

    bot.collections.grant("oncall", ["erin"])
    answer = bot.ask("What was the tracking word of the database failover incident?", user="erin")
    assert "oncall" in answer.collections and "incident-4711.md" in names(answer.sources)
    bot.log.settle()
    handlers = ChatHandlers(bot, UploadPolicy.for_workspace(bot.workspace), allow_folders=False)
    chat, _, _ = handlers.resume(answer.conversation_id, gr.Request(username="erin"))
    assert chat[-1]["content"] != WITHHELD and "incident" in chat[-1]["content"].lower()
    bot.collections.revoke("oncall", ["erin"])
    chat, _, _ = handlers.resume(answer.conversation_id, gr.Request(username="erin"))
    assert chat[-1]["content"] == WITHHELD and "MARMOTFALCON" not in json.dumps(chat)
    follow = bot.ask("Repeat the tracking word you told me.", conversation_id=answer.conversation_id, user="erin",
                     task="qa")
    assert "MARMOTFALCON" not in follow.text and "oncall" not in follow.collections
    with pytest.raises(KeyError):  # and nobody else may continue it
        bot.ask("Repeat it.", conversation_id=answer.conversation_id, user="dave")


def test_improve_learns_only_from_conversations_every_user_may_read(bot, tmp_path):
    """The served model answers everyone: its training data and training prompts come from `shared` alone."""
    from assistant.improve.config import ImproveConfig
    from assistant.improve.prompts import qa_messages
    from assistant.improve.state import CycleRun
    from assistant.improve.steps import export_data

    hr = bot.ask("What is the reference word of the engineering pay bands?", user="carol")
    everyone = bot.ask("When does the office open?", user="frank")  # frank reads shared alone
    assert "hr" in hr.collections and everyone.collections == [SHARED]
    bot.feedback(hr.message_id, rating=1, user="carol")
    bot.feedback(everyone.message_id, rating=1, user="frank")
    bot.log.settle()
    run = CycleRun(bot.workspace, bot, ImproveConfig(heldout_fraction=0.0), say=lambda _: None,
                   state={"heldout": {}, "learnt": []}, folder=tmp_path)
    export_data(run)
    learnt = [a.question for a in [*run.data.train, *run.data.heldout]]
    assert everyone.question in learnt and hr.question not in learnt
    prompt = json.dumps(qa_messages(bot, "What is the salary range of a senior engineer? ZEPHYRQUILL"))
    assert "ZEPHYRQUILL" not in prompt.replace("salary range of a senior engineer? ZEPHYRQUILL", "") \
        and "118,000" not in prompt


def test_serving_without_logins_warns_that_every_collection_is_open(bot, capsys, monkeypatch):
    import argparse

    from assistant.cli import _warn_open_collections

    monkeypatch.delenv("ASSISTANT_API_KEYS", raising=False)
    opts = dict(host="0.0.0.0", port=7860, share=False, auth=None, auth_file=None, allow_public_share=False,
                api_key=None, api_keys_file=None)
    _warn_open_collections(bot, argparse.Namespace(**opts))
    assert "every visitor reads every collection, including hr, oncall" in capsys.readouterr().out
    _warn_open_collections(bot, argparse.Namespace(**{**opts, "auth": ["alice:pw:hr"]}))
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_indexes_search_a_narrow_mask_exactly(kind):
    """IVF lists and the HNSW graph are built from every row: under a readable-rows mask the result must
    still be the exact nearest readable rows, whatever the unreadable rows are."""
    import numpy as np

    from index import search as searching
    from index.keyword import KeywordIndex
    from index.store import DocumentInfo, State
    from index.vectors import VectorIndex

    rng = np.random.default_rng(7)
    n, dim = 20_000, 32
    vectors = rng.normal(size=(n, dim)).astype(np.float32)  # no clusters: probing a few lists misses (20 of 20 before)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    chunks = [{"id": str(i), "path": f"/d{i // 100}.md", "text": "x"} for i in range(n)]
    docs = {c["path"]: DocumentInfo(c["path"], c["path"], "markdown", 100, "0", 0) for c in chunks}
    state = State("", {"dimension": dim}, docs, chunks, vectors, VectorIndex.build(vectors, dim, kind=kind),
                  KeywordIndex(None, 0))
    mask = rng.random(n) < 0.05
    rows = np.flatnonzero(mask)
    for q in vectors[rng.integers(0, n, 20)]:
        got = [row for row, _ in searching.dense_candidates(state, q, 10, mask)]
        want = rows[np.argsort(-(vectors[rows] @ q), kind="stable")[:10]].tolist()
        assert got == want


def test_collections_narrow_a_search_but_never_widen_it(bot):
    assert names(bot.search("ZEPHYRQUILL", k=3, mode="keyword", collections={SHARED})) == []  # the operator, narrowed
    assert names(bot.search("ZEPHYRQUILL", k=3, mode="keyword", collections={"hr"})) == ["salary-bands.md"]
    assert names(bot.search("ZEPHYRQUILL", k=3, mode="keyword", user="bob", collections={"hr"})) == []  # not widened
    assert bot.readable("carol", within={"hr", "oncall"}) == {"hr"}
