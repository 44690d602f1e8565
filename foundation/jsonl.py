"""JSON Lines: the one reader and writer for question files, Q/A pairs, exports and token lists.

Users hand us these files (`questions.jsonl`, `pairs.jsonl`), so a bad line is reported with the
file, the line number and what is wrong, never as a bare traceback.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Iterator

from foundation.workspace import atomic_write_text


class JsonlError(ValueError):
    """A JSON Lines file that cannot be read; the message names the file and line."""


def read_jsonl(path: str | Path, *, objects: bool = True) -> Iterator[tuple[int, Any]]:
    """Yield (line number, value) for each non-blank line.

    With `objects` (the default) every line must be a JSON object; a bad line raises `JsonlError`.
    """
    path = Path(path)
    if not path.is_file():
        raise JsonlError(f"{path}: no such file")
    with path.open("r", encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                raise JsonlError(f"{path}:{lineno}: not valid JSON ({exc.msg} at column {exc.colno})") from None
            if objects and not isinstance(value, dict):
                raise JsonlError(f"{path}:{lineno}: expected a JSON object, got {type(value).__name__}")
            yield lineno, value


def to_jsonl(rows: Iterable[Any]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def write_jsonl(path: str | Path, rows: Iterable[Any]) -> None:
    """Write `rows` one per line, atomically (a crash leaves the previous file)."""
    atomic_write_text(Path(path), to_jsonl(rows))
