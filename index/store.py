"""The index on disk: immutable generation folders and a pointer file swapped atomically.

    DIR/CURRENT            "gen-000007"      (replaced with os.replace: the commit point)
    DIR/gen-000007/        manifest.json, documents.json, chunks.jsonl, vectors.npy, vectors.faiss, bm25/
    DIR/.lock              held (flock) by the one process that is ingesting

An ingest writes a complete new generation into a temporary folder, fsyncs it, renames it, and
only then points CURRENT at it. A crash or kill at any moment leaves CURRENT naming the previous,
complete generation; leftovers are deleted by the next ingest. The previous generation is kept one
round so that a reader that has just read CURRENT can still load it.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import platform
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from index.keyword import KeywordIndex
from index.vectors import VectorIndex

FORMAT_VERSION = 1
POINTER = "CURRENT"


@dataclass
class DocumentInfo:
    """One indexed file, as `documents()` lists it."""

    path: str
    title: str
    file_type: str
    n_chunks: int
    sha256: str
    size: int
    mtime_ns: int = 0
    ingested_at: str = ""
    chunk_tokens: int = 0  # the chunking it was cut with; a change re-chunks it on the next ingest
    chunk_overlap: int = 0
    # Who may read it is decided per collection (`index.collections`); an index written before
    # collections existed has no such field, so every one of its documents loads as "shared".
    collection: str = "shared"
    reader: int = 1  # the loader's output version it was read with (`index.loaders.READER_VERSIONS`)


@dataclass
class State:
    """Everything one generation holds, loaded in memory; replaced whole, never mutated in place."""

    generation: str
    manifest: dict[str, Any]
    documents: dict[str, DocumentInfo]
    chunks: list[dict[str, Any]]  # path, text, heading, page, start_line, end_line, ordinal, id
    vectors: np.ndarray  # (n, d) float32 unit rows, row i = chunk i = FAISS id i
    vector_index: VectorIndex | None
    keyword: KeywordIndex
    doc_of_chunk: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    doc_paths: list[str] = field(default_factory=list)
    # Derived lookups computed on first use (e.g. `doc_ranking.document_names`); never saved.
    derived: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.doc_paths = sorted(self.documents)
        pos = {p: i for i, p in enumerate(self.doc_paths)}
        self.doc_of_chunk = np.fromiter((pos[c["path"]] for c in self.chunks), dtype=np.int32, count=len(self.chunks))


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "format": str(FORMAT_VERSION)}
    for pkg in ("faiss-cpu", "faiss-gpu-cu12", "sentence-transformers", "bm25s", "transformers", "numpy"):
        with contextlib.suppress(PackageNotFoundError):
            out[pkg] = version(pkg)
    return out


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def current_generation(directory: Path) -> str | None:
    try:
        name = (directory / POINTER).read_text().strip()
    except FileNotFoundError:
        return None
    return name or None


def load_state(directory: Path, generation: str, use_gpu: bool = False) -> State:
    gen = directory / generation
    manifest = json.loads((gen / "manifest.json").read_text())
    docs = {d["path"]: DocumentInfo(**d) for d in json.loads((gen / "documents.json").read_text())}
    with (gen / "chunks.jsonl").open(encoding="utf-8") as fh:
        chunks = [json.loads(line) for line in fh if line.strip()]
    vectors = np.load(gen / "vectors.npy", mmap_mode="r") if chunks else np.zeros((0, manifest["dimension"] or 0), np.float32)
    if len(vectors) != len(chunks):
        raise RuntimeError(f"{gen}: {len(chunks)} chunks but {len(vectors)} vectors; the generation is corrupt")
    vindex = None
    if (gen / "vectors.faiss").exists():
        info = manifest["index"]
        vindex = VectorIndex.load(gen / "vectors.faiss", info["kind"], manifest["dimension"], info["params"], use_gpu)
    keyword = KeywordIndex.load(gen / "bm25")
    return State(generation, manifest, docs, chunks, vectors, vindex, keyword)


def load_latest(directory: Path, generation: str, use_gpu: bool = False) -> State:
    """Load `generation`; if it is missing or damaged, the newest complete older one, with a warning."""
    import logging

    try:
        return load_state(directory, generation, use_gpu)
    except (OSError, ValueError, KeyError, RuntimeError) as first:
        error = first
    for gen in sorted((p.name for p in directory.glob("gen-*") if (p / "manifest.json").exists()), reverse=True):
        if gen == generation:
            continue
        try:
            state = load_state(directory, gen, use_gpu)
        except (OSError, ValueError, KeyError, RuntimeError):
            continue
        logging.getLogger(__name__).warning(
            "Index generation %s in %s is unreadable (%s); using %s. The next ingest repairs the pointer.",
            generation, directory, error, gen)
        return state
    raise RuntimeError(f"The index in {directory} is unreadable ({error}) and no earlier generation "
                       f"is complete; delete the folder and ingest again.") from error


def empty_state(manifest: dict[str, Any]) -> State:
    dim = manifest.get("dimension") or 0
    return State("", manifest, {}, [], np.zeros((0, dim), np.float32), None, KeywordIndex(None, 0))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_file(path: Path, data: bytes) -> None:
    with path.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def write_generation(directory: Path, state: State) -> str:
    """Write `state` as the next generation and make it current. Returns the generation name."""
    previous = current_generation(directory)
    number = int(previous.split("-")[1]) + 1 if previous else 1
    name = f"gen-{number:06d}"
    tmp = directory / f".{name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    manifest = dict(state.manifest, generation=name, written_at=now_iso(), versions=versions(),
                    counts={"documents": len(state.documents), "chunks": len(state.chunks)})
    if state.vector_index is not None:
        manifest["index"] = {"kind": state.vector_index.kind, "params": state.vector_index.params}
        state.vector_index.save(tmp / "vectors.faiss")
    docs = [asdict(d) for d in sorted(state.documents.values(), key=lambda d: d.path)]
    _write_file(tmp / "documents.json", json.dumps(docs, ensure_ascii=False, indent=1).encode())
    lines = "".join(json.dumps(c, ensure_ascii=False) + "\n" for c in state.chunks)
    _write_file(tmp / "chunks.jsonl", lines.encode("utf-8"))
    with (tmp / "vectors.npy").open("wb") as fh:
        np.save(fh, np.ascontiguousarray(state.vectors, dtype=np.float32))
        fh.flush()
        os.fsync(fh.fileno())
    state.keyword.save(tmp / "bm25")
    for written in (tmp / "bm25").iterdir():  # bm25s does not fsync; a power cut must not leave holes
        fd = os.open(written, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    # The manifest goes last: a folder with a manifest is complete.
    _write_file(tmp / "manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False).encode())
    for sub in (tmp / "bm25", tmp):
        _fsync_dir(sub)
    final = directory / name
    if final.exists():  # a crashed earlier attempt that got as far as the rename but not the pointer
        shutil.rmtree(final)
    os.rename(tmp, final)
    pointer_tmp = directory / f".{POINTER}.tmp-{os.getpid()}"
    _write_file(pointer_tmp, (name + "\n").encode())
    os.replace(pointer_tmp, directory / POINTER)  # the commit point
    _fsync_dir(directory)
    state.manifest = manifest
    state.generation = name
    cleanup(directory, keep={name, previous})
    return name


def cleanup(directory: Path, keep: set[str | None]) -> None:
    """Remove generations older than `keep` and temporary leftovers of crashed ingests."""
    for child in directory.iterdir():
        stale_tmp = child.name.startswith((".gen-", f".{POINTER}.tmp"))
        old_gen = child.name.startswith("gen-") and child.name not in keep
        if stale_tmp or old_gen:
            if child.is_dir():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)


@contextlib.contextmanager
def writer_lock(directory: Path) -> Iterator[None]:
    """One ingesting process per index folder; others wait (readers never take the lock)."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
