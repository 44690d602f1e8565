"""The ingest pipeline as named stages: scan -> diff against stored -> load + chunk -> embed -> write.

`run_ingest` reads as that list; each stage is a function below it. Ingest sees the index only
through `IngestTarget` (its settings, its embedder, its folder), which `DocumentIndex` provides,
so this module and `index.document_index` do not import each other.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

import numpy as np

from foundation.text import search_tokens
from index.budget import LoadLimits
from index.chunking import Chunk, TokenCounter, chunk_document
from index.keyword import KeywordIndex
from index.sections import LoadError, reader_version
from index.scan import scan, sha256_bytes, under
from index.collections import SHARED
from index.store import DocumentInfo, State, now_iso, write_generation
from index.types import FailedFile, IngestReport
from index.vectors import updated_vectors
from index.worker import shared_loader

log = logging.getLogger(__name__)

Progress = bool | Callable[[str, int, int], None]


class IngestTarget(Protocol):
    """What ingest needs from an index; `DocumentIndex` is the one implementation."""

    directory: Path
    chunk_tokens: int
    chunk_overlap: int
    max_file_bytes: int
    index_kind: str
    approx_threshold: int
    load_limits: LoadLimits

    @property
    def embedder_name(self) -> str: ...
    @property
    def embedder_path(self) -> str: ...
    @property
    def dimension(self) -> int: ...
    @property
    def uses_gpu(self) -> bool: ...
    def embed(self, texts: list[str], *, progress: bool | Callable[[int, int], None] = False) -> np.ndarray: ...
    def token_counter(self) -> TokenCounter: ...


@dataclass
class Changed:
    """A file whose bytes differ from what the index holds (or that it does not hold yet)."""

    path: Path
    data: bytes
    digest: str
    stat: os.stat_result
    old: DocumentInfo | None


@dataclass
class Loaded:
    info: DocumentInfo
    chunks: list[Chunk]
    replaces: bool  # an updated file: its stored chunks are dropped


def embed_text(title: str, heading: str, text: str) -> str:
    """What the embedder and BM25 see: the passage under its "Title > Heading" path."""
    return f"{title} > {heading}\n{text}" if heading else f"{title}\n{text}"


def run_ingest(index: IngestTarget, base: State, paths: list[Path], *, prune: bool,
               progress: Progress, collection: str | None = None) -> tuple[IngestReport, State | None]:
    """Ingest `paths` on top of `base`; returns the report and the committed state (None: nothing to commit).

    `collection` labels the files ingested (None: a stored file keeps its own, a new one goes to `shared`)."""
    report = IngestReport()
    files, roots = scan(paths, report)
    if not paths:
        return report, None
    rep = _Reporter(progress)
    moves: dict[str, str] = {}  # unchanged files given another collection: relabelled, not re-embedded
    try:
        changed = diff_against_stored(index, base, files, report, collection, moves)
        loaded = load_and_chunk(index, changed, report, rep, total=len(files), collection=collection)
        touched = {d.info.path for d in loaded if d.replaces}  # stored docs to drop: updated or pruned
        if prune:
            touched |= prune_vanished(base, files, roots, report)
        if not loaded and not touched and not moves:
            return report, None
        new_chunks, new_vectors = embed_chunks(index, loaded, report, rep)
    finally:
        rep.close()
    state = new_state(index, relabel(base, moves) or base, loaded, touched, new_chunks, new_vectors, roots)
    write_generation(index.directory, state)  # the commit point; a crash before it loses nothing
    return report, state


# --- stage: diff against stored ---------------------------------------------------------------

def diff_against_stored(index: IngestTarget, base: State, files: list[Path], report: IngestReport,
                        collection: str | None = None,
                        moves: dict[str, str] | None = None) -> Iterator[tuple[int, Changed | None]]:
    """(file number, Changed or None) per file: None when it is unchanged (skipped) or unreadable (failed).

    Lazy, one file's bytes at a time. A file chunked with other sizes is re-chunked even when
    unchanged, so granularities do not mix; so is one read by an older version of its loader. An
    unchanged file asked into another `collection` is recorded in `moves` (and reported as updated).
    """
    moves = {} if moves is None else moves

    def unchanged(key: str, old: DocumentInfo) -> None:
        if collection is not None and old.collection != collection:
            moves[key] = collection
            report.updated.append(key)
        else:
            report.skipped.append(key)

    for n, path in enumerate(files, start=1):
        key = str(path)
        old = base.documents.get(key)
        rechunk = old is not None and ((old.chunk_tokens, old.chunk_overlap) != (index.chunk_tokens, index.chunk_overlap)
                                       or old.reader != reader_version(old.file_type))
        try:
            st = path.stat()
            if st.st_size > index.max_file_bytes:
                raise LoadError(f"file too large ({st.st_size / 1e6:.1f} MB > limit "
                                f"{index.max_file_bytes / 1e6:.1f} MB; raise max_file_bytes to index it)")
            if old is not None and not rechunk and old.size == st.st_size and old.mtime_ns == st.st_mtime_ns:
                unchanged(key, old)
                yield n, None
                continue
            data = path.read_bytes()
        except LoadError as exc:
            report.failed.append(FailedFile(key, str(exc)))
            yield n, None
            continue
        except OSError as exc:
            report.failed.append(FailedFile(key, f"unreadable: {exc.strerror or exc}"))
            yield n, None
            continue
        digest = sha256_bytes(data)
        if old is not None and not rechunk and old.sha256 == digest:
            unchanged(key, old)
            yield n, None
            continue
        yield n, Changed(path, data, digest, st, old)


# --- stage: load + chunk ----------------------------------------------------------------------

def load_and_chunk(index: IngestTarget, changed: Iterator[tuple[int, Changed | None]], report: IngestReport,
                   rep: "_Reporter", total: int, collection: str | None = None) -> list[Loaded]:
    """Parse and chunk each changed file; a file that fails is reported and the others go on.

    Parsing runs in the loader process (`index.worker`) under the index's `load_limits`, so a
    hostile file costs at most its time and memory budget and the server's threads keep answering.
    """
    rep.stage("Loading files", total)
    loaded: list[Loaded] = []
    for n, item in changed:
        if item is not None:
            result = _load_one(index, item, report, collection)
            if result is not None:
                loaded.append(result)
                (report.updated if result.replaces else report.added).append(result.info.path)
        rep.update(n)
    return loaded


def _load_one(index: IngestTarget, item: Changed, report: IngestReport, collection: str | None) -> Loaded | None:
    key = str(item.path)
    try:
        doc = shared_loader().load(item.path, item.data, index.load_limits)
        chunks = chunk_document(doc, index.token_counter(), index.chunk_tokens, index.chunk_overlap)
        if not chunks:
            raise LoadError("no text found in file")
    except LoadError as exc:
        report.failed.append(FailedFile(key, str(exc)))
        return None
    except Exception as exc:  # noqa: BLE001 - one bad file must not stop the others
        log.exception("Failed to load %s", key)
        report.failed.append(FailedFile(key, f"{type(exc).__name__}: {exc}"))
        return None
    label = collection or (item.old.collection if item.old is not None else SHARED)
    info = DocumentInfo(key, doc.title, doc.file_type, len(chunks), item.digest, item.stat.st_size,
                        item.stat.st_mtime_ns, now_iso(), index.chunk_tokens, index.chunk_overlap, label,
                        reader_version(doc.file_type))
    return Loaded(info, chunks, replaces=item.old is not None)


def prune_vanished(base: State, files: list[Path], roots: list[Path], report: IngestReport) -> set[str]:
    """Stored documents under `roots` whose files are gone; files that failed to load keep their chunks."""
    present = {str(f) for f in files}
    gone = [p for p in base.documents
            if p not in present and any(under(p, root) for root in roots) and not Path(p).exists()]
    report.removed.extend(gone)
    report.failed = [f for f in report.failed if f.path not in report.removed]
    return set(gone)


# --- stage: embed -----------------------------------------------------------------------------

def embed_chunks(index: IngestTarget, loaded: list[Loaded], report: IngestReport,
                 rep: "_Reporter") -> tuple[list[dict[str, Any]], np.ndarray]:
    """The new chunk rows (as stored in chunks.jsonl) and their vectors, in the same order."""
    rows: list[dict[str, Any]] = []
    texts: list[str] = []
    for item in loaded:
        info = item.info
        for ordinal, ch in enumerate(item.chunks):
            rows.append({
                "id": f"{info.sha256[:12]}:{ordinal}", "path": info.path, "ordinal": ordinal, "text": ch.text,
                "heading": ch.heading, "page": ch.page, "start_line": ch.start_line, "end_line": ch.end_line,
                **({"part": ch.part, "parts": ch.parts} if ch.parts else {}),
            })
            texts.append(embed_text(info.title, ch.heading, ch.text))
    report.chunks_added = len(rows)
    rep.stage("Embedding chunks", len(texts))
    if not texts:
        return rows, np.zeros((0, index.dimension), np.float32)
    return rows, index.embed(texts, progress=lambda done, total: rep.update(done))


# --- stage: the new state ---------------------------------------------------------------------

def new_state(index: IngestTarget, base: State, loaded: list[Loaded], touched: set[str],
              new_chunks: list[dict[str, Any]], new_vectors: np.ndarray, roots: list[Path]) -> State:
    """`base` without the `touched` documents, plus the loaded ones: chunks, vectors, BM25 and manifest."""
    keep_rows = np.flatnonzero([c["path"] not in touched for c in base.chunks]) if touched else None
    kept_chunks = base.chunks if keep_rows is None else [base.chunks[i] for i in keep_rows]
    chunks_all = kept_chunks + new_chunks
    documents = {p: d for p, d in base.documents.items() if p not in touched}
    documents.update({item.info.path: item.info for item in loaded})
    dimension = new_vectors.shape[1] if len(new_vectors) else index.dimension
    vectors, vindex = updated_vectors(base.vectors, base.vector_index, keep_rows, new_vectors.reshape(-1, dimension),
                                      dimension=index.dimension, kind=index.index_kind,
                                      threshold=index.approx_threshold, use_gpu=index.uses_gpu)
    titles = {p: d.title for p, d in documents.items()}
    keyword = _keyword_index(index.directory, base, keep_rows, chunks_all, len(new_chunks), titles)
    manifest = dict(base.manifest, embedder=index.embedder_name, dimension=int(dimension),
                    embedder_path=index.embedder_path,
                    chunking={"chunk_tokens": index.chunk_tokens, "chunk_overlap": index.chunk_overlap},
                    index={"kind": vindex.kind, "params": vindex.params},
                    roots=sorted(set(base.manifest.get("roots", [])) | {str(r) for r in roots}))
    return State("", manifest, documents, chunks_all, vectors, vindex, keyword)


def relabel(base: State, moves: dict[str, str]) -> State | None:
    """`base` with the documents in `moves` (path -> collection) relabelled; None when nothing changes.

    Chunks, vectors and BM25 are shared with `base`: a collection is a label on the document."""
    moves = {p: c for p, c in moves.items() if p in base.documents and base.documents[p].collection != c}
    if not moves:
        return None
    documents = {p: replace(d, collection=moves.get(p, d.collection)) for p, d in base.documents.items()}
    return State(base.generation, dict(base.manifest), documents, base.chunks, base.vectors, base.vector_index,
                 base.keyword)


def without_documents(index: IngestTarget, base: State, paths: set[str]) -> State | None:
    """`base` without the stored documents in `paths` (their chunks, vectors and BM25 rows); None if none are stored."""
    paths = paths & set(base.documents)
    if not paths:
        return None
    return new_state(index, base, [], paths, [], np.zeros((0, index.dimension), np.float32), [])


def _keyword_index(directory: Path, base: State, keep_rows, chunks_all: list[dict], n_new: int,
                   titles: dict[str, str]) -> KeywordIndex:
    """BM25 over all chunks, reusing the stored token lists of the chunks that were kept."""
    text = lambda c: embed_text(titles[c["path"]], c["heading"], c["text"])  # noqa: E731
    old = KeywordIndex.load_tokens(directory / base.generation / "bm25", len(base.chunks)) \
        if base.generation else None
    if old is None:
        return KeywordIndex.build([text(c) for c in chunks_all])
    kept = old if keep_rows is None else [old[i] for i in keep_rows]
    new = [search_tokens(text(c)) for c in chunks_all[len(chunks_all) - n_new:]]
    return KeywordIndex.from_tokens(kept + new)


class _Reporter:
    """Progress to a callback (message, done, total), to tqdm bars, or nowhere."""

    def __init__(self, progress: Progress):
        self.callback = progress if callable(progress) else None
        self.bars = progress is True
        self._bar = None

    def stage(self, message: str, total: int) -> None:
        self.close()
        self.message, self.total = message, total
        if self.bars and total:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc=message, unit="file" if message.startswith("Load") else "chunk",
                             leave=False)
        self.update(0)

    def update(self, done: int) -> None:
        if self.callback:
            self.callback(self.message, done, self.total)
        if self._bar is not None and done > self._bar.n:
            self._bar.update(done - self._bar.n)  # update() rate-limits redraws (mininterval)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
