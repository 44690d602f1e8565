"""The model registry: which fine-tuned models a workspace has, and which one it serves.

`WORKSPACE/models/registry.json` is the only thing the assistant reads
(`foundation.model_paths.registry_model_path` / `served_model_name`), so switching or rolling back
a model is one atomic rewrite of a small file: instant, and a crash leaves the old state.

    {"current": name|null, "previous": name|null,
     "models": {name: {"path": "<dir relative to WORKSPACE/models>", "base": ..., "method": "lora|full",
                       "created_at": ..., "metrics": {...}, "data_fingerprint": ..., "adapter_path": ...}}}

The name "base" means "no fine-tuned model": `use("base")` sets current to null.

Rankers (`assistant finetune --recipe ranker`) are entries of their own kind, kept apart so they are
never offered as generators: `"rankers": {name: {...same fields, "method": "ranker"}}` and
`"current_ranker"` (read by `index.reranking` when `reranker = "auto"`). `use(name)` of a ranker
serves it; `use("no-ranker")` stops reranking.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from foundation.model_paths import RegistryError, read_registry, registry_file
from foundation.workspace import atomic_write_json

BASE = "base"
NO_RANKER = "no-ranker"
RESERVED = {BASE, NO_RANKER, "current", "served", "previous", "default", "smollm2"}
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def check_name(name: str) -> str:
    if not NAME_RE.match(name or ""):
        raise RegistryError(f"model name {name!r}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    if name.lower() in RESERVED:
        raise RegistryError(f"model name {name!r} is reserved ({', '.join(sorted(RESERVED))})")
    return name


class Registry:
    """Read-modify-write access to one workspace's `models/registry.json` (file-locked)."""

    def __init__(self, workspace: str | os.PathLike[str]):
        self.workspace = Path(workspace)
        self.root = self.workspace / "models"
        self.file = registry_file(self.workspace)

    # --- reading
    def load(self) -> dict[str, Any]:
        return read_registry(self.workspace)

    def list(self) -> dict[str, dict[str, Any]]:
        return self.load()["models"]

    @property
    def current(self) -> str | None:
        return self.load()["current"]

    @property
    def previous(self) -> str | None:
        return self.load()["previous"]

    def get(self, name: str) -> dict[str, Any]:
        """A generator model's entry, or a ranker's."""
        models = {**self.rankers(), **self.list()}
        if name not in models:
            known = ", ".join(sorted(models)) or "none yet"
            raise RegistryError(f"no model named {name!r} in {self.file} (known: {known})")
        return models[name]

    def model_dir(self, name: str) -> Path:
        """Absolute path of a model's merged weights (what `from_pretrained` loads)."""
        path = Path(self.get(name)["path"])
        return path if path.is_absolute() else self.root / path

    # --- writing
    @contextlib.contextmanager
    def _edit(self) -> Iterator[dict[str, Any]]:
        """Lock, load, let the caller change the dict, write it back atomically."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".registry.lock", "a+") as lock:
            try:
                import fcntl

                fcntl.flock(lock, fcntl.LOCK_EX)
            except ImportError:  # Windows: single-writer assumption
                pass
            data = self.load()
            yield data
            atomic_write_json(self.file, data)

    def register(
        self,
        name: str,
        path: str | os.PathLike[str],
        *,
        base: str,
        method: str,
        metrics: dict[str, Any] | None = None,
        data_fingerprint: str = "",
        adapter_path: str | os.PathLike[str] | None = None,
        created_at: str | None = None,
        make_current: bool = False,
        **extra: Any,
    ) -> dict[str, Any]:
        """Add (or replace) a model entry; paths inside WORKSPACE/models are stored relative."""
        check_name(name)
        if method not in ("lora", "full"):
            raise RegistryError(f"method must be 'lora' or 'full', got {method!r}")
        entry = {
            "path": self._rel(path),
            "base": base,
            "method": method,
            "created_at": created_at or dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "metrics": metrics or {},
            "data_fingerprint": data_fingerprint,
            "adapter_path": self._rel(adapter_path) if adapter_path else None,
            **extra,
        }
        with self._edit() as data:
            data["models"][name] = entry
            if make_current:
                self._set_current(data, name)
        return entry

    def register_ranker(self, name: str, path: str | os.PathLike[str], *, base: str, metrics: dict[str, Any],
                        make_current: bool = False) -> dict[str, Any]:
        """Add (or replace) a ranker; `make_current` serves it (the recipe asks only when it won on held-out pages)."""
        check_name(name)
        if name in self.list():
            raise RegistryError(f"{name!r} is already a generator model's name; choose another for the ranker")
        entry = {"path": self._rel(path), "base": base, "method": "ranker", "metrics": metrics,
                 "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
        with self._edit() as data:
            data.setdefault("rankers", {})[name] = entry
            if make_current:
                data["current_ranker"] = name
        return entry

    def rankers(self) -> dict[str, dict[str, Any]]:
        return self.load().get("rankers", {})

    @property
    def current_ranker(self) -> str | None:
        return self.load().get("current_ranker")

    def use(self, name: str) -> None:
        """Serve `name` from now on ("base" = the untuned model); the old one becomes `previous`.
        A ranker's name (or "no-ranker") switches the ranker instead and leaves the generator alone."""
        with self._edit() as data:
            if name == NO_RANKER or name in data.get("rankers", {}):
                data["current_ranker"] = None if name == NO_RANKER else name
                return
            if name != BASE and name not in data["models"]:
                known = ", ".join(sorted(data["models"])) or "none yet"
                raise RegistryError(f"no model named {name!r} (known: {known}; 'base' = no fine-tuned model)")
            self._set_current(data, None if name == BASE else name)

    def rollback(self) -> str | None:
        """Swap current and previous (so a second rollback rolls forward); returns the new current."""
        with self._edit() as data:
            if data["current"] == data["previous"]:
                raise RegistryError("nothing to roll back to: no previous model recorded")
            data["current"], data["previous"] = data["previous"], data["current"]
            return data["current"]

    def remove(self, name: str) -> None:
        """Forget a model (its files stay); refuses the one being served."""
        with self._edit() as data:
            if name not in data["models"]:
                raise RegistryError(f"no model named {name!r}")
            if data["current"] == name:
                raise RegistryError(f"{name!r} is being served; `use` another model (or 'base') first")
            del data["models"][name]
            if data["previous"] == name:
                data["previous"] = None

    @staticmethod
    def _set_current(data: dict[str, Any], name: str | None) -> None:
        if data["current"] != name:
            data["previous"] = data["current"]
            data["current"] = name

    def _rel(self, path: str | os.PathLike[str]) -> str:
        p = Path(path)
        if not p.is_absolute():
            return p.as_posix()
        try:
            return p.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return str(p)  # outside the workspace: kept absolute, but then the workspace is not movable
