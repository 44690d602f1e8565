"""Training data: validation with file:line errors, SFT masking, log filtering, packing, split."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from finetune.data import (
    IGNORE, Chat, DataError, build_dataset, load_documents, load_log, load_qa, pack_documents, split, tokenize_chat,
)


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from foundation.model_paths import resolve_generator

    return AutoTokenizer.from_pretrained(resolve_generator("smollm2"))


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def test_malformed_jsonl_names_file_and_line(tmp_path):
    f = write_jsonl(tmp_path / "qa.jsonl", [{"question": "a?", "answer": "b"}, "", '{"question": "c?", "answer": ', {"question": "d?", "answer": "e"}])
    with pytest.raises(DataError, match=r"qa\.jsonl:3: not valid JSON"):
        load_qa(f)


@pytest.mark.parametrize(
    "record, message",
    [
        ({"question": "q"}, "'answer' must be a non-empty string"),
        ({"answer": "a"}, "expected 'question'"),
        ({"messages": [{"role": "user", "content": "hi"}]}, "no non-empty assistant message"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "role must be one of"),
        (["not", "an", "object"], "expected a JSON object"),
    ],
)
def test_invalid_records_are_explained(tmp_path, record, message):
    f = write_jsonl(tmp_path / "bad.jsonl", [{"question": "ok?", "answer": "ok"}, json.dumps(record)])
    with pytest.raises(DataError) as err:
        load_qa(f)
    assert str(err.value).startswith(f"{f}:2:") and message in str(err.value)


def test_sft_masks_everything_but_the_assistant_reply(tokenizer):
    chat = Chat([{"role": "user", "content": "What port does the API use?"},
                 {"role": "assistant", "content": "Port 8080."}], "t:1")
    ex = tokenize_chat(tokenizer, chat, max_length=256)
    targets = [t for t, l in zip(ex.input_ids, ex.labels) if l != IGNORE]
    assert all(l in (IGNORE, t) for t, l in zip(ex.input_ids, ex.labels))
    assert tokenizer.decode(targets) == "Port 8080.<|im_end|>"  # the reply and its stop token, nothing else
    first_target = next(i for i, l in enumerate(ex.labels) if l != IGNORE)
    assert "What port does the API use?" in tokenizer.decode(ex.input_ids[:first_target])  # prompt is masked
    assert ex.n_targets == len(targets)


def test_multi_turn_chat_trains_on_every_assistant_turn(tokenizer):
    chat = Chat([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "One?"},
                 {"role": "assistant", "content": "Uno."}, {"role": "user", "content": "Two?"},
                 {"role": "assistant", "content": "Dos."}], "t:1")
    ex = tokenize_chat(tokenizer, chat, max_length=256)
    decoded = tokenizer.decode([t for t, l in zip(ex.input_ids, ex.labels) if l != IGNORE])
    assert decoded == "Uno.<|im_end|>Dos.<|im_end|>"


def test_truncated_away_reply_is_dropped(tokenizer):
    chat = Chat([{"role": "user", "content": "word " * 300}, {"role": "assistant", "content": "yes"}], "t:1")
    assert tokenize_chat(tokenizer, chat, max_length=64) is None


def test_log_export_keeps_positive_and_corrections_only(tmp_path):
    def rec(q, a, rating, correction=None):
        row = {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": correction or a}],
               "rating": rating, "correction": correction, "message_id": q}
        if correction:
            row["original"] = a
        return row

    f = write_jsonl(tmp_path / "log.jsonl", [
        rec("good?", "yes", 1), rec("bad?", "wrong", -1), rec("fixed?", "wrong", -1, "right"),
        rec("meh?", "hmm", 0), rec("unrated?", "x", None),
    ])
    chats, counts = load_log(f)
    assert [c.messages[-1]["content"] for c in chats] == ["yes", "right"]  # the correction, not the original
    assert counts == {"kept_positive": 1, "kept_correction": 1, "skipped_negative": 1, "skipped_unrated": 2}
    assert all(c.source == "log" for c in chats)


def test_log_export_bad_rating_reports_line(tmp_path):
    f = write_jsonl(tmp_path / "log.jsonl", [{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "rating": 5}])
    with pytest.raises(DataError, match=r"log\.jsonl:1: 'rating' must be"):
        load_log(f)


def test_documents_are_read_recursively_and_packed(tokenizer, tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.md").write_text("# Keys\nRotate keys with `vault rotate` every 90 days.\n" * 20)
    (tmp_path / "sub" / "b.rst").write_text("Backups\n=======\nNightly at 02:00 UTC.\n" * 20)
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    (tmp_path / ".hidden.md").write_text("secret")
    docs = load_documents([tmp_path])
    assert sorted(Path(d.path).name for d in docs) == ["a.md", "b.rst"]
    blocks = pack_documents(tokenizer, docs, max_length=64)
    assert all(len(b.input_ids) <= 64 for b in blocks) and all(len(b.input_ids) == 64 for b in blocks[:-1])
    assert all(b.labels == b.input_ids for b in blocks)  # continued pre-training: every token is a target
    stream = [t for b in blocks for t in b.input_ids]
    assert stream.count(tokenizer.eos_token_id) == 2  # one separator per document


def test_undecodable_document_is_an_error(tmp_path):
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 na\xefve".encode("latin-1"))
    with pytest.raises(DataError, match="latin1.txt: not UTF-8"):
        load_documents([tmp_path])


def test_split_is_deterministic_and_stable_under_additions():
    items = [f"record {i}" for i in range(200)]
    train1, val1 = split(items, str, 0.2)
    train2, val2 = split(list(reversed(items)), str, 0.2)
    assert sorted(val1) == sorted(val2) and 20 <= len(val1) <= 60
    _, val3 = split(items + [f"new {i}" for i in range(50)], str, 0.2)
    assert set(val1) <= set(val3)  # adding data never moves an old record between splits


def test_build_dataset_mixes_sources_with_a_fingerprint(tokenizer, tmp_path):
    qa = write_jsonl(tmp_path / "qa.jsonl", [{"question": f"Q{i}?", "answer": f"A{i}."} for i in range(10)])
    logf = write_jsonl(tmp_path / "log.jsonl", [{"messages": [{"role": "user", "content": "x?"}, {"role": "assistant", "content": "y"}], "rating": 1}])
    (tmp_path / "doc.md").write_text("Some domain text. " * 50)
    ds = build_dataset(tokenizer, docs=[tmp_path / "doc.md"], qa=[qa], logs=[logf], max_length=64, val_fraction=0.2)
    assert {e.source for e in ds.train + ds.val} == {"docs", "qa", "log"}
    assert ds.stats["qa_records"] == 10 and ds.stats["log"]["kept_positive"] == 1
    again = build_dataset(tokenizer, docs=[tmp_path / "doc.md"], qa=[qa], logs=[logf], max_length=64, val_fraction=0.2)
    assert again.fingerprint == ds.fingerprint
    write_jsonl(qa, [{"question": f"Q{i}?", "answer": f"A{i}!"} for i in range(10)])
    changed = build_dataset(tokenizer, qa=[qa], docs=[tmp_path / "doc.md"], logs=[logf], max_length=64, val_fraction=0.2)
    assert changed.fingerprint != ds.fingerprint
    with pytest.raises(DataError, match="no training data"):
        build_dataset(tokenizer)


def test_index_chunks_are_documents(tokenizer, tmp_path):
    """The text `assistant ingest` committed (a real index) becomes continued pre-training data."""
    from index.document_index import DocumentIndex

    from finetune.data import load_index_chunks

    with pytest.raises(DataError, match="no index yet"):
        load_index_chunks(tmp_path / "ws")
    src = tmp_path / "src"
    src.mkdir()
    (src / "keys.md").write_text("# Keys\n\nRotate the signing keys with `keyctl rotate --all` every 90 days.\n")
    (src / "page.html").write_text("<html><body><h1>Backups</h1><p>Backups run nightly at 02:00 UTC.</p></body></html>")
    report = DocumentIndex.open(tmp_path / "ws" / "index").ingest([src], progress=False)
    assert not report.failed
    docs = load_index_chunks(tmp_path / "ws")
    text = " ".join(d.text for d in docs)
    assert "keyctl rotate --all" in text and "nightly at 02:00 UTC" in text and "<p>" not in text
    ds = build_dataset(tokenizer, documents=docs, max_length=64, val_fraction=0.0)
    assert ds.stats["documents"] == len(docs) and all(e.source == "docs" for e in ds.train)


def test_documents_are_read_as_ingest_reads_them(tmp_path, caplog):
    """One format table: HTML is parsed by ingest's loader (text, not tags); a type ingest skips is skipped and counted."""
    (tmp_path / "page.html").write_text("<html><body><h1>Backups</h1><p>Backups run nightly at 02:00 UTC.</p></body></html>")
    (tmp_path / "notes.adoc").write_text("= Notes\nAsciiDoc that ingest does not read.\n")
    docs = load_documents([tmp_path])
    assert [Path(d.path).name for d in docs] == ["page.html"]
    assert "nightly at 02:00 UTC" in docs[0].text and "<p>" not in docs[0].text
    assert any("1 file(s) skipped" in r.getMessage() and "notes.adoc" in r.getMessage() for r in caplog.records)
    with pytest.raises(DataError, match="notes.adoc: not a format ingest reads"):
        load_documents([tmp_path / "notes.adoc"])
