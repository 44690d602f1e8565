"""The model registry and the `models` CLI: the file format the assistant reads, use / rollback."""
from __future__ import annotations

import argparse
import json

import pytest

from foundation.model_paths import registry_model_path, resolve_generator, served_model_name
from finetune.cli import add_parsers
from finetune.registry import Registry, RegistryError


@pytest.fixture()
def ws(tmp_path):
    ws = tmp_path / "workspace"
    for name in ("v1", "v2"):
        (ws / "models" / name / "model").mkdir(parents=True)
        (ws / "models" / name / "model" / "config.json").write_text("{}")
    return ws


def register(reg: Registry, name: str):
    return reg.register(name, reg.root / name / "model", base="smollm2", method="lora",
                        metrics={"tuned": {"token_f1": 0.5}}, data_fingerprint="abc", adapter_path=reg.root / name / "adapter")


def test_register_writes_the_format_the_assistant_reads(ws):
    reg = Registry(ws)
    register(reg, "v1")
    data = json.loads((ws / "models" / "registry.json").read_text())
    assert data["current"] is None and data["previous"] is None
    entry = data["models"]["v1"]
    assert entry["path"] == "v1/model" and entry["adapter_path"] == "v1/adapter"  # relative: the workspace can move
    assert {"base", "method", "created_at", "metrics", "data_fingerprint"} <= set(entry)
    assert registry_model_path(ws, "v1") == ws / "models" / "v1" / "model"
    assert resolve_generator("v1", ws) == str(ws / "models" / "v1" / "model")


def test_use_and_rollback(ws):
    reg = Registry(ws)
    register(reg, "v1")
    register(reg, "v2")
    reg.use("v1")
    reg.use("v2")
    assert served_model_name(ws) == "v2" and reg.previous == "v1"
    assert registry_model_path(ws, "current") == ws / "models" / "v2" / "model"
    assert reg.rollback() == "v1"
    assert served_model_name(ws) == "v1"
    assert reg.rollback() == "v2"  # a second rollback rolls forward
    reg.use("base")
    assert served_model_name(ws) is None and reg.previous == "v2"
    assert reg.rollback() == "v2"


def test_bad_names_and_unknown_models(ws):
    reg = Registry(ws)
    with pytest.raises(RegistryError, match="no model named 'nope'"):
        reg.use("nope")
    with pytest.raises(RegistryError, match="reserved"):
        register(reg, "base")
    with pytest.raises(RegistryError, match="use 1-64 letters"):
        register(reg, "../escape")
    with pytest.raises(RegistryError, match="nothing to roll back"):
        reg.rollback()
    register(reg, "v1")
    reg.use("v1")
    with pytest.raises(RegistryError, match="being served"):
        reg.remove("v1")


def test_corrupt_registry_is_reported_not_overwritten(ws):
    (ws / "models" / "registry.json").write_text("{not json")
    with pytest.raises(RegistryError, match="not valid JSON"):
        Registry(ws).list()
    assert (ws / "models" / "registry.json").read_text() == "{not json"


def run_cli(ws, *argv):
    parser = argparse.ArgumentParser()
    add_parsers(parser.add_subparsers(dest="command"))
    args = parser.parse_args(list(argv))
    args.workspace = ws
    return args.func(args)


def test_models_cli(ws, capsys):
    reg = Registry(ws)
    register(reg, "v1")
    register(reg, "v2")
    (ws / "models" / "v1" / "README.md").write_text("# v1 card")
    assert run_cli(ws, "models", "use", "v1") == 0
    assert run_cli(ws, "models", "use", "v2") == 0
    assert run_cli(ws, "models", "list") == 0
    out = capsys.readouterr().out
    assert "* v2" in out and "  v1" in out and "  base" in out
    assert run_cli(ws, "models", "rollback") == 0
    assert served_model_name(ws) == "v1"
    assert run_cli(ws, "models", "show", "v1") == 0
    assert "# v1 card" in capsys.readouterr().out
    assert run_cli(ws, "models", "use", "missing") == 2
    assert "no model named 'missing'" in capsys.readouterr().err
