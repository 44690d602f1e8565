"""Finding the files an ingest considers: folders walked, tool folders skipped, duplicates dropped.

The first stage of `index.ingest`; it touches names and `stat` only, never file contents.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from foundation.formats import file_type_of
from index.types import FailedFile, IngestReport

SKIP_DIRS = {".git", "node_modules", "__pycache__", ".venv", "venv", ".tox", ".mypy_cache", ".pytest_cache"}


def walk(root: Path, report: IngestReport) -> list[Path]:
    """Indexable files under `root`, sorted; hidden and tool folders skipped.

    Symbolic links are followed only when they resolve inside `root`: a link to a file or folder
    elsewhere (say /etc) is reported in `report.failed` and not read, so ingesting a folder never
    makes files outside it searchable. A dangling link is kept, to be reported as unreadable.
    """
    found = []
    root = root.resolve()
    for dirpath, dirnames, filenames in os.walk(root):  # does not descend into linked folders
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
        for d in dirnames:
            link = Path(dirpath) / d
            if link.is_symlink() and not _inside(link.resolve(), root):
                report.failed.append(FailedFile(str(link), _outside(link)))
        for fname in sorted(filenames):
            p = Path(dirpath) / fname
            if fname.startswith(".") or file_type_of(p) is None:
                continue
            if p.is_symlink() and p.exists():
                target = p.resolve()
                if not _inside(target, root):
                    report.failed.append(FailedFile(str(p), _outside(p)))
                    continue
                p = target
            found.append(p)
    return found


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _outside(link: Path) -> str:
    return f"symbolic link to {os.path.realpath(link)}, outside the folder being ingested; not followed"


def scan(paths: list[Path], report: IngestReport) -> tuple[list[Path], list[Path]]:
    """(files to consider, roots they came from). Missing paths are reported, not raised."""
    files: list[Path] = []
    roots: list[Path] = []
    for raw in paths:
        p = Path(raw).expanduser()
        p = p.resolve() if p.exists() else Path(os.path.abspath(p))
        roots.append(p)
        if p.is_dir():
            files.extend(walk(p, report))
        elif p.is_file():
            files.append(p)
        else:
            report.failed.append(FailedFile(str(p), "no such file or directory"))
    return list(dict.fromkeys(files)), roots


def under(path: str, root: Path) -> bool:
    """Whether the stored `path` is `root` or lies below it (string test: the file may be gone)."""
    r = str(root)
    return path == r or path.startswith(r.rstrip(os.sep) + os.sep)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
