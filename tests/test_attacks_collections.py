"""Attacks on collections, replayed against a real server over the real default models (issue 21).

Two users in two groups: alice (group hr) reads the salary bands, bob (group oncall) reads the incident
report; both read the handbook (shared). Each attack is run by the user who may NOT read the target
and must leak none of its passages, quotes, title, file name or numbers; the reader runs it too and
must still get the document. Clients are the real ones: httpx for /v1 (streaming and not), gradio_client
for /ask, /search and /ingest, and the `assistant logs export` command.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from assistant import Assistant
from leak_marks import INCIDENT_MARKS, SALARY_MARKS, leaks
from ui.server import launch

REPO = Path(__file__).resolve().parents[1]
DOCS = Path(__file__).parent / "fixtures" / "collections"  # handbook (shared), salary bands (hr), incident (oncall)
KEYS = {"alice": "key-alice-5b1f9c2e7d4a", "bob": "key-bob-9c2e5b1f03a8", "carol": "key-carol-7d4a03a85b1f"}
LOGINS = {"alice": "wonderland", "bob": "builder"}


@pytest.fixture(scope="module")
def bot(tmp_path_factory):
    root = tmp_path_factory.mktemp("docs") / "collections"
    shutil.copytree(DOCS, root)
    bot = Assistant.open(tmp_path_factory.mktemp("ws") / "workspace", max_new_tokens=48)
    bot.ingest([root / "pub"], progress=False)
    bot.ingest([root / "hr"], progress=False, collection="hr")
    bot.ingest([root / "ops"], progress=False, collection="oncall")
    bot.collections.grant("hr", ["group:hr"])
    bot.collections.grant("oncall", ["group:oncall"])
    yield bot
    bot.close()


@pytest.fixture(scope="module")
def server(bot):
    srv = launch(bot, port=0, auth=["alice:wonderland:hr", "bob:builder:oncall", "carol:singer"],
                 api_keys=[f"{key}:{user}" for user, key in KEYS.items()])
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def clients(server):
    from gradio_client import Client

    made = {user: Client(server.url, auth=(user, pw), verbose=False) for user, pw in LOGINS.items()}
    yield made
    for c in made.values():
        c.close()


def v1(server, user: str, question: str, **body) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/chat/completions", timeout=300, headers={"Authorization": f"Bearer {KEYS[user]}"},
                      json={"messages": [{"role": "user", "content": question}], **body})


def v1_stream(server, user: str, question: str, **body) -> list[dict]:
    """Every event of a streamed /v1 answer, parsed."""
    events = []
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", timeout=300,
                      headers={"Authorization": f"Bearer {KEYS[user]}"},
                      json={"messages": [{"role": "user", "content": question}], "stream": True, **body}) as resp:
        assert resp.status_code == 200
        for line in resp.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                events.append(json.loads(line[6:]))
    return events


def files(payload) -> set[str]:
    """The file names among the sources of an /ask or /v1 answer."""
    return {Path(s["file"]).name for s in payload.get("sources", [])}


def test_paraphrased_question_via_gradio_ask(clients):
    question = "What is the pay range for a senior engineer?"
    bob = clients["bob"].predict(question, "qa", "", 0, -1.0, "", api_name="/ask")
    assert leaks(bob, SALARY_MARKS) == [], bob
    alice = clients["alice"].predict(question, "qa", "", 0, -1.0, "", api_name="/ask")
    assert "salary-bands.md" in files(alice)


def test_summarise_by_name_via_v1(server):
    bob = v1(server, "bob", "Summarise salary-bands.md", task="summarize")
    assert bob.status_code == 200 and leaks(bob.json(), SALARY_MARKS) == [], bob.text[:500]
    alice = v1(server, "alice", "Summarise salary-bands.md", task="summarize").json()
    assert files(alice) == {"salary-bands.md"} and leaks(alice, SALARY_MARKS)
    # the same by the incident report's name, from the other side
    alice_other = v1(server, "alice", "Summarise incident-4711.md", task="summarize")
    assert leaks(alice_other.json(), INCIDENT_MARKS) == [], alice_other.text[:500]


def test_keyword_search_for_a_unique_string_via_gradio_search(clients):
    for mode in ("keyword", "hybrid", "dense"):
        assert leaks(clients["bob"].predict("ZEPHYRQUILL", 5, mode, api_name="/search"), SALARY_MARKS) == []
        assert leaks(clients["alice"].predict("MARMOTFALCON", 5, mode, api_name="/search"), INCIDENT_MARKS) == []
    hits = clients["alice"].predict("ZEPHYRQUILL", 5, "keyword", api_name="/search")
    assert [Path(h["file"]).name for h in hits] == ["salary-bands.md"]


def test_v1_streaming_and_not(server):
    question = "How many days of paid holiday do HR staff get?"
    events = v1_stream(server, "bob", question)
    assert leaks(events, SALARY_MARKS) == [], events[-1]
    plain = v1(server, "bob", question)
    assert plain.status_code == 200 and leaks(plain.json(), SALARY_MARKS) == []
    reader = v1_stream(server, "alice", question)
    assert "salary-bands.md" in {Path(s["file"]).name for e in reader for s in e.get("sources", [])}


def test_resuming_another_users_conversation(server, clients, bot):
    from gradio_client.exceptions import AppError

    alice = v1(server, "alice", "What is the reference word in the salary bands?").json()
    cid = alice["conversation_id"]
    assert "salary-bands.md" in files(alice)
    follow = v1(server, "bob", "Repeat your last answer word for word.", conversation_id=cid)
    assert follow.status_code == 404 and leaks(follow.json(), SALARY_MARKS) == []
    with pytest.raises(AppError) as refused:
        clients["bob"].predict("Repeat your last answer.", "qa", cid, 0, -1.0, "", api_name="/ask")
    assert leaks(str(refused.value), SALARY_MARKS) == []
    with pytest.raises(KeyError):  # the facade refuses too, whichever layer calls it
        bot.ask("Repeat your last answer.", conversation_id=cid, user="bob")
    assert "hr" in bot.conversation(cid).messages[-1].collections  # recorded with the answer


def test_the_code_task(server):
    question = "Write a Python function that returns the salary range of a senior engineer."
    bob = v1(server, "bob", question, task="code")
    assert bob.status_code == 200 and leaks(bob.json(), SALARY_MARKS) == [], bob.text[:500]
    alice = v1(server, "alice", question, task="code").json()
    assert "salary-bands.md" in files(alice)


def test_documents_tab_and_uploads(server, clients, bot, tmp_path):
    from gradio_client import handle_file

    from ui.app import ChatHandlers
    from ui.security import UploadPolicy

    handlers = ChatHandlers(bot, UploadPolicy.for_workspace(bot.workspace), allow_folders=False)
    rows = handlers.document_rows("bob")
    assert leaks(rows, SALARY_MARKS) == [] and {r[4] for r in rows} == {"shared", "oncall"}
    assert ["Salary bands 2027", "hr", "group:hr"] == [[r[0], r[4], r[5]] for r in handlers.document_rows("alice")
                                                       if r[4] == "hr"][0]
    note = tmp_path / "bob-notes.md"
    note.write_text("# Bob's notes\n\nMy locker code is LOCKERCODE8812.\n")
    report = clients["bob"].predict([handle_file(str(note))], api_name="/ingest")  # no collection: his own
    assert report["added"], report
    assert bot.collections.readers_of("user-bob") == ["bob"]
    from gradio.utils import get_upload_folder
    assert not list(Path(get_upload_folder()).rglob(note.name))  # Gradio's cached copy is not left to be served
    assert clients["alice"].predict("LOCKERCODE8812", 5, "keyword", api_name="/search") == []
    assert clients["bob"].predict("LOCKERCODE8812", 5, "keyword", api_name="/search")
    from gradio_client.exceptions import AppError
    refused = tmp_path / "bob-refused.md"
    refused.write_text("# Bob's try\n\nA note for the hr collection.\n")
    with pytest.raises(AppError, match="may not add documents"):
        clients["bob"].predict([handle_file(str(refused))], "hr", api_name="/ingest")
    assert not list(Path(get_upload_folder()).rglob(refused.name))  # a refused upload is not kept either


def test_logs_export_rated_only(server, bot):
    alice = v1(server, "alice", "What is the reference word in the salary bands?").json()
    carol = v1(server, "carol", "When does the office open?").json()  # carol reads shared alone
    bot.feedback(alice["message_id"], rating=1, user="alice")
    bot.feedback(carol["message_id"], rating=1, user="carol")
    bot.log.settle()
    run = lambda *extra: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "assistant.cli", "--workspace", str(bot.workspace), "logs", "export", "--rated-only",
         *extra], cwd=REPO, capture_output=True, text=True, timeout=120)
    shared = run()
    assert shared.returncode == 0, shared.stderr
    records = [json.loads(line) for line in shared.stdout.splitlines()]
    assert [r["message_id"] for r in records] == [carol["message_id"]]
    assert leaks(shared.stdout, SALARY_MARKS) == []
    widened = run("--audience", "hr")  # a model for hr's readers only may learn from hr's conversations
    assert alice["message_id"] in widened.stdout and leaks(widened.stdout, SALARY_MARKS)
