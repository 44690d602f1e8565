"""Documents as training text: files and folders (`--docs`) and the workspace's index (`--from-index`).

Fine-tuning reads the formats ingest reads, by the one format table (`foundation.formats`):
plain-text formats as their UTF-8 text, the others (HTML, PDF, DOCX, code) through the index's
loaders, so a file either both or neither can read. Files of other types in a folder are
skipped and counted; a file named on its own that no loader reads is an error.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from finetune.errors import DataError
from foundation.formats import PLAIN_TEXT_SUFFIXES, SUPPORTED_SUFFIXES, is_supported
from index.collections import SHARED
from index.document_index import committed_chunks
from index.loaders import LoadError, load_document

log = logging.getLogger(__name__)


@dataclass
class Document:
    path: str
    text: str


def read_document(path: Path) -> str:
    """The text of one file: plain-text formats strictly as UTF-8, the rest through ingest's loader."""
    if path.suffix.lower() in PLAIN_TEXT_SUFFIXES:
        try:
            return path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: not UTF-8 text (byte {exc.start}); convert it or leave it out") from None
    try:
        loaded = load_document(path, path.read_bytes())
    except LoadError as exc:
        raise DataError(f"{path}: {exc}") from None
    return "\n\n".join(section.text for section in loaded.sections)


def _files(root: Path) -> tuple[list[Path], list[Path]]:
    """(readable, skipped) files below `root`, hidden entries left out."""
    found = sorted(p for p in root.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts))
    return [p for p in found if is_supported(p)], [p for p in found if not is_supported(p)]


def load_documents(paths: Iterable[Path]) -> list[Document]:
    """Documents from files and folders (recursively), in every format ingest reads."""
    paths = [Path(p) for p in paths]
    docs: list[Document] = []
    skipped: list[Path] = []
    for root in paths:
        if not root.exists():
            raise DataError(f"{root}: no such file or folder")
        if root.is_file() and not is_supported(root):
            raise DataError(f"{root}: not a format ingest reads ({', '.join(SUPPORTED_SUFFIXES)})")
        files, passed = ([root], []) if root.is_file() else _files(root)
        skipped.extend(passed)
        docs.extend(Document(str(f), text) for f in files if (text := read_document(f)).strip())
    if skipped:
        log.warning("%d file(s) skipped: not a format ingest reads (e.g. %s)", len(skipped), ", ".join(str(p) for p in skipped[:3]))
    if not docs:
        raise DataError(f"no documents in a format ingest reads ({', '.join(SUPPORTED_SUFFIXES)}) under {[str(p) for p in paths]}")
    return docs


def load_index_chunks(workspace: Path) -> list[Document]:
    """The text of every chunk in the workspace's index (whatever the loaders read: PDF, DOCX, HTML...).

    Asks the index for its committed chunks, so it sees exactly what `assistant ingest` committed.
    """
    directory = Path(workspace) / "index"
    chunks = committed_chunks(directory, {SHARED})  # the tuned model may be served to anyone: shared documents only
    if chunks is None:
        raise DataError(f"{directory}: no index yet; run `assistant ingest PATH` first or pass --docs")
    docs = [Document(f"{c.get('path', '?')}#{c.get('ordinal', n)}", c["text"])
            for n, c in enumerate(chunks, 1) if isinstance(c.get("text"), str) and c["text"].strip()]
    if not docs:
        raise DataError(f"{directory}: the index holds no text chunks")
    return docs
