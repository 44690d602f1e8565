"""The shared low-level pieces: atomic folders, the format table, the JSONL reader, one tokeniser."""
from __future__ import annotations

import pytest

from foundation.formats import PLAIN_TEXT_SUFFIXES, SUPPORTED_SUFFIXES, file_type_of
from foundation.jsonl import JsonlError, read_jsonl
from foundation.text import content_tokens, search_tokens, stem
from foundation.workspace import atomic_folder


def test_an_atomic_folder_appears_whole_or_not_at_all(tmp_path):
    target = tmp_path / "converted"
    with atomic_folder(target) as tmp:
        (tmp / "weights").write_text("v1")
    assert (target / "weights").read_text() == "v1"
    with pytest.raises(RuntimeError):
        with atomic_folder(target) as tmp:
            (tmp / "weights").write_text("half")
            raise RuntimeError("crash mid-conversion")
    assert (target / "weights").read_text() == "v1"  # the last good copy survives
    assert [p.name for p in tmp_path.iterdir()] == ["converted"]  # no temporary left behind


def test_one_format_table_for_ingest_upload_and_finetuning():
    assert file_type_of("a/B.MD") == "markdown" and file_type_of("x.docx") == "docx"
    assert file_type_of("notebook.ipynb") is None and ".ipynb" not in SUPPORTED_SUFFIXES
    assert set(PLAIN_TEXT_SUFFIXES) <= set(SUPPORTED_SUFFIXES) and ".adoc" not in SUPPORTED_SUFFIXES


def test_jsonl_errors_name_the_line(tmp_path):
    f = tmp_path / "q.jsonl"
    f.write_text('{"question": "a"}\n\nnot json\n', encoding="utf-8")
    with pytest.raises(JsonlError, match=r"q.jsonl:3: not valid JSON"):
        list(read_jsonl(f))


def test_search_and_claim_tokens_share_one_stemmer():
    assert stem("rotating") == stem("rotate") == "rotat"
    assert "load" in search_tokens("load_causal_lm") and "causal" in search_tokens("load_causal_lm")
    assert "1.2.3" in content_tokens("Version 1.2.3 is out") and "the" not in content_tokens("the key")


def test_device_choice_needs_torch_only_where_a_gpu_driver_is(monkeypatch):
    from foundation import devices

    assert devices.pick_device("cuda:1") == "cuda:1"  # named: taken as asked
    monkeypatch.setattr(devices.os.path, "exists", lambda p: False)
    monkeypatch.delitem(devices.sys.modules, "torch", raising=False)
    monkeypatch.setattr(devices.sys, "platform", "linux")
    assert devices.no_accelerator_here() and devices.pick_device() == "cpu"
    monkeypatch.setattr(devices.os.path, "exists", lambda p: p == "/dev/nvidiactl")
    assert not devices.no_accelerator_here()  # a driver is there: torch decides
    monkeypatch.setattr(devices.os.path, "exists", lambda p: False)
    monkeypatch.setattr(devices.sys, "platform", "darwin")
    assert not devices.no_accelerator_here()  # macOS may have MPS: torch decides
