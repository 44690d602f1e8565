"""Durability: concurrent writers from threads and processes lose nothing; a crash mid-answer
leaves the question recorded and the answer marked incomplete."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from sqlalchemy import text

from assistant.log import ConversationLog
from index.types import Source

REPO = Path(__file__).resolve().parents[1]
THREADS, ANSWERS_PER_THREAD = 8, 200
SOURCES = [Source(path=f"docs/{i}.md", title=f"Doc {i}", locator=f"§ {i}", snippet="s", score=0.5) for i in range(2)]


def scalar(log: ConversationLog, sql: str):
    with log.db.read() as s:
        return s.connection().execute(text(sql)).scalar_one()


def write_answers(log: ConversationLog, n: int, tag: str) -> list[str]:
    """n complete answers, a new conversation every 20: what a busy server does."""
    ids: list[str] = []
    cid = ""
    for i in range(n):
        if i % 20 == 0:
            cid = log.start_conversation(user=tag)
        qid = log.record_question(cid, f"question {tag} {i}", task="qa")
        aid = log.begin_answer(cid, qid, task="qa", model="m", options={"i": i})
        log.finish_answer(aid, content=f"answer {tag} {i}", sources=SOURCES, tokens_out=i)
        ids += [qid, aid]
    return ids


def assert_intact(log: ConversationLog, ids: list[str], answers: int) -> None:
    assert len(set(ids)) == len(ids) == 2 * answers
    assert scalar(log, "SELECT COUNT(*) FROM messages") == 2 * answers
    assert scalar(log, "SELECT COUNT(*) FROM messages WHERE role = 'assistant' AND status = 'complete'") == answers
    assert scalar(log, "SELECT COUNT(*) FROM sources") == len(SOURCES) * answers
    with log.db.read() as s:
        stored = {r[0] for r in s.connection().execute(text("SELECT id FROM messages"))}
    assert stored == set(ids)
    if log.db.dialect == "sqlite":
        assert scalar(log, "PRAGMA integrity_check") == "ok"
        assert scalar(log, "SELECT COUNT(*) FROM messages_fts") == 2 * answers


def test_eight_threads_lose_no_row(url):
    log = ConversationLog.open(url)
    results: dict[int, list[str]] = {}
    errors: list[BaseException] = []

    def worker(t: int) -> None:
        try:
            results[t] = write_answers(log, ANSWERS_PER_THREAD, f"t{t}")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        assert_intact(log, [i for ids in results.values() for i in ids], THREADS * ANSWERS_PER_THREAD)
        assert len(log.list_conversations(limit=1000)) == THREADS * ANSWERS_PER_THREAD // 20
    finally:
        log.close()


WORKER = textwrap.dedent("""
    import json, sys, time
    from assistant.log import ConversationLog
    from index.types import Source
    url, n, tag, go = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
    log = ConversationLog.open(url)
    while time.time() < go:  # start together
        time.sleep(0.005)
    ids, cid = [], ""
    src = [Source(path=f"docs/{i}.md", title=f"Doc {i}", locator=f"§ {i}", snippet="s", score=0.5) for i in range(2)]
    for i in range(n):
        if i % 20 == 0:
            cid = log.start_conversation(user=tag)
        qid = log.record_question(cid, f"question {tag} {i}", task="qa")
        aid = log.begin_answer(cid, qid, task="qa", model="m", options={})
        log.finish_answer(aid, content=f"answer {tag} {i}", sources=src)
        ids += [qid, aid]
    print(json.dumps(ids))
""")


def test_two_processes_writing_the_same_database(url):
    ConversationLog.open(url).close()  # migrate once up front; each worker also opens (a no-op)
    n, go = 150, time.time() + 3.0
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, url, str(n), f"p{p}", str(go)], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for p in range(2)]
    ids = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        ids += json.loads(out)
    log = ConversationLog.open(url)
    try:
        assert_intact(log, ids, 2 * n)
    finally:
        log.close()


CRASHER = textwrap.dedent("""
    import json, sys, time
    from assistant.log import ConversationLog
    log = ConversationLog.open(sys.argv[1])
    cid = log.start_conversation()
    qid = log.record_question(cid, "What happens if the server dies mid-answer?", task="qa")
    aid = log.begin_answer(cid, qid, task="qa", model="m", options={"max_new_tokens": 256})
    print(json.dumps([cid, qid, aid]), flush=True)
    time.sleep(60)  # "generating": killed here, before finish_answer
    log.finish_answer(aid, content="never written", sources=[])
""")


def test_crash_mid_answer_leaves_it_incomplete(url):
    proc = subprocess.Popen([sys.executable, "-c", CRASHER, url], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        cid, qid, aid = json.loads(line)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    log = ConversationLog.open(url)
    try:
        question, answer = log.history(cid)
        assert (question.id, question.content, question.status) == (qid, "What happens if the server dies mid-answer?", "complete")
        assert (answer.id, answer.status, answer.content) == (aid, "incomplete", "")
        assert log.stats()["incomplete"] == 1
        assert log.export() == []  # half answers never become training data
        if log.db.dialect == "sqlite":
            assert scalar(log, "PRAGMA integrity_check") == "ok"
    finally:
        log.close()


def test_racing_ratings_by_one_user_leave_one_row(url):
    log = ConversationLog.open(url)
    try:
        cid = log.start_conversation()
        qid = log.record_question(cid, "q", task="qa")
        aid = log.begin_answer(cid, qid, task="qa", model="m", options={})
        log.finish_answer(aid, content="a", sources=[])
        barrier, ids, errors = threading.Barrier(8), [], []

        def rate(i: int) -> None:
            try:
                barrier.wait()
                ids.append(log.add_feedback(aid, rating=1 if i % 2 else -1, comment=f"click {i}", user="ann"))
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=rate, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == [] and len(set(ids)) == 1
        assert scalar(log, "SELECT COUNT(*) FROM feedback") == 1
    finally:
        log.close()
