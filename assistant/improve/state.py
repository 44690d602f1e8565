"""A cycle's state: what persists between cycles (`state.json`) and what one run hands from step to step.

`WORKSPACE/improve/state.json` (written atomically) keeps the held-out set (message ids and the
accepted answers, so cycles are compared on the same questions even after log retention), the
message ids the served model has learnt (only a *promoted* cycle marks its data learnt, so a
rejected candidate's data is tried again next time), and cached evaluations of unchanged models.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from assistant.core import Assistant
from assistant.improve.config import ImproveConfig
from assistant.improve.data import CycleData
from assistant.improve.report import cycle_dirs, improve_dir
from foundation.workspace import atomic_write_json

STATE_FILE = "state.json"


class CycleBusy(RuntimeError):
    """Another `assistant improve` holds this workspace."""


def load_state(workspace: Path) -> dict[str, Any]:
    path = improve_dir(workspace) / STATE_FILE
    state: dict[str, Any] = {}
    if path.exists():
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise RuntimeError(f"{path}: not valid JSON ({exc}); restore it or delete it to start over") from None
    state.setdefault("heldout", {})
    state.setdefault("learnt", [])
    state.setdefault("eval_cache", {})
    state.setdefault("cycles", [])
    return state


def save_state(workspace: Path, state: dict[str, Any]) -> None:
    atomic_write_json(improve_dir(workspace) / STATE_FILE, state)


@contextlib.contextmanager
def cycle_lock(workspace: Path) -> Iterator[None]:
    """One cycle at a time per workspace (two would race on the registry and the cycle numbers)."""
    root = improve_dir(workspace)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "a+") as fh:
        try:
            import fcntl

            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise CycleBusy(f"another `assistant improve` is running on {workspace}; wait for it to finish") from None
        except ImportError:  # Windows: single-writer assumption
            pass
        yield


def next_cycle_dir(workspace: Path) -> tuple[int, Path]:
    existing = cycle_dirs(workspace)
    number = int(existing[-1].name[6:]) + 1 if existing else 1
    path = improve_dir(workspace) / f"cycle-{number:03d}"
    path.mkdir(parents=True)
    return number, path


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class CycleRun:
    """One cycle in progress: its inputs, the persistent state it updates and the report it fills."""

    workspace: Path
    bot: Assistant
    cfg: ImproveConfig
    say: Callable[[str], None] = print
    state: dict[str, Any] = field(default_factory=dict)
    number: int = 0
    folder: Path = Path(".")  # WORKSPACE/improve/cycle-NNN
    current: str = ""  # the served model the candidate must beat
    candidate: str = ""  # the candidate's registry name, once one is trained
    data: CycleData | None = None
    report: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)

    def tell(self, message: str) -> None:
        self.say(f"cycle {self.number}: {message}")
