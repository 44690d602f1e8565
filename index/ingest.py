"""The ingest pipeline: find files, skip unchanged ones, load + chunk the rest, embed, build a new state.

Kept apart from `DocumentIndex` so each stage reads top to bottom. Nothing here writes to disk:
the caller commits the returned `State` as a new generation (see `store.write_generation`).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from index.chunking import chunk_document
from foundation.text import search_tokens
from index.keyword import KeywordIndex
from index.loaders import LoadError, LoadedDocument, load_document
from index.store import DocumentInfo, State, now_iso
from index.types import FailedFile, IngestReport

if TYPE_CHECKING:
    from index.document_index import DocumentIndex

log = logging.getLogger(__name__)


class _Reporter:
    """Progress to a callback (message, done, total), to tqdm bars, or nowhere."""

    def __init__(self, progress: bool | Callable[[str, int, int], None]):
        self.callback = progress if callable(progress) else None
        self.bars = progress is True
        self._bar = None

    def stage(self, message: str, total: int):
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


def expand(paths: list[Path], report: IngestReport) -> tuple[list[Path], list[Path]]:
    """(files to consider, roots they came from). Missing paths are reported, not raised."""
    from index.document_index import walk

    files: list[Path] = []
    roots: list[Path] = []
    for raw in paths:
        p = Path(raw).expanduser()
        p = p.resolve() if p.exists() else Path(os.path.abspath(p))
        roots.append(p)
        if p.is_dir():
            files.extend(walk(p))
        elif p.is_file():
            files.append(p)
        else:
            report.failed.append(FailedFile(str(p), "no such file or directory"))
    seen, unique = set(), []
    for f in files:
        if f not in seen:
            seen.add(f)
            unique.append(f)
    return unique, roots


def embed_text(title: str, heading: str, text: str) -> str:
    """What the embedder and BM25 see: the passage under its "Title > Heading" path."""
    return f"{title} > {heading}\n{text}" if heading else f"{title}\n{text}"


def run_ingest(index: "DocumentIndex", base: State, paths: list[Path], *, prune: bool,
               progress: bool | Callable[[str, int, int], None]) -> tuple[IngestReport, State | None]:
    from index.document_index import sha256_bytes

    report = IngestReport()
    rep = _Reporter(progress)
    files, roots = expand(paths, report)
    if not paths:
        return report, None
    loaded: list[tuple[LoadedDocument, DocumentInfo, list]] = []
    touched: set[str] = set()  # stored docs to drop: updated (re-added below) or pruned
    # A file chunked with other sizes is re-chunked even when unchanged, so granularities do not mix.
    chunking = {"chunk_tokens": index.chunk_tokens, "chunk_overlap": index.chunk_overlap}
    rep.stage("Loading files", len(files))
    counter = index._token_counter() if files else None
    for n, path in enumerate(files, start=1):
        key = str(path)
        old = base.documents.get(key)
        rechunk = old is not None and (old.chunk_tokens, old.chunk_overlap) != (index.chunk_tokens, index.chunk_overlap)
        try:
            st = path.stat()
            if st.st_size > index.max_file_bytes:
                raise LoadError(f"file too large ({st.st_size / 1e6:.1f} MB > limit "
                                f"{index.max_file_bytes / 1e6:.1f} MB; raise max_file_bytes to index it)")
            if old is not None and not rechunk and old.size == st.st_size and old.mtime_ns == st.st_mtime_ns:
                report.skipped.append(key)
                continue
            data = path.read_bytes()
            digest = sha256_bytes(data)
            if old is not None and not rechunk and old.sha256 == digest:
                report.skipped.append(key)
                continue
            doc = load_document(path, data)
            chunks = chunk_document(doc, counter, index.chunk_tokens, index.chunk_overlap)
            if not chunks:
                raise LoadError("no text found in file")
        except LoadError as exc:
            report.failed.append(FailedFile(key, str(exc)))
            continue
        except OSError as exc:
            report.failed.append(FailedFile(key, f"unreadable: {exc.strerror or exc}"))
            continue
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop the others
            log.exception("Failed to load %s", key)
            report.failed.append(FailedFile(key, f"{type(exc).__name__}: {exc}"))
            continue
        finally:
            rep.update(n)
        info = DocumentInfo(key, doc.title, doc.file_type, len(chunks), digest, st.st_size, st.st_mtime_ns, now_iso(),
                            index.chunk_tokens, index.chunk_overlap)
        loaded.append((doc, info, chunks))
        if old is not None:
            touched.add(key)
            report.updated.append(key)
        else:
            report.added.append(key)
    if prune:
        present = {str(f) for f in files}
        for stored in base.documents:
            if stored in present:  # includes files that failed to load: their old chunks stay
                continue
            if any(_under(stored, root) for root in roots) and not Path(stored).exists():
                touched.add(stored)
                report.removed.append(stored)
        report.failed = [f for f in report.failed if f.path not in report.removed]
    if not loaded and not touched:
        rep.close()
        return report, None

    new_chunks: list[dict[str, Any]] = []
    texts: list[str] = []
    for doc, info, chunks in loaded:
        for ordinal, ch in enumerate(chunks):
            new_chunks.append({
                "id": f"{info.sha256[:12]}:{ordinal}", "path": info.path, "ordinal": ordinal, "text": ch.text,
                "heading": ch.heading, "page": ch.page, "start_line": ch.start_line, "end_line": ch.end_line,
                **({"part": ch.part, "parts": ch.parts} if ch.parts else {}),
            })
            texts.append(embed_text(info.title, ch.heading, ch.text))
    report.chunks_added = len(new_chunks)
    rep.stage("Embedding chunks", len(texts))
    new_vectors = index.embed(texts, progress=lambda done, total: rep.update(done)) if texts else \
        np.zeros((0, index.dimension), np.float32)
    rep.close()

    keep_rows = None
    if touched:
        keep_rows = np.flatnonzero([c["path"] not in touched for c in base.chunks])
    kept_chunks = base.chunks if keep_rows is None else [base.chunks[i] for i in keep_rows]
    chunks_all = kept_chunks + new_chunks
    documents = {p: d for p, d in base.documents.items() if p not in touched}
    documents.update({info.path: info for _, info, _ in loaded})
    dimension = new_vectors.shape[1] if len(new_vectors) else index.dimension
    vectors, vindex = index._build_vectors(base, keep_rows, new_vectors.reshape(-1, dimension))
    titles = {p: d.title for p, d in documents.items()}
    keyword = _keyword_index(index, base, keep_rows, chunks_all, len(new_chunks), titles)
    manifest = dict(base.manifest, embedder=index.embedder_name, dimension=int(dimension),
                    embedder_path=index._embedder.model_path,
                    chunking=chunking,
                    index={"kind": vindex.kind, "params": vindex.params},
                    roots=sorted(set(base.manifest.get("roots", [])) | {str(r) for r in roots}))
    return report, State("", manifest, documents, chunks_all, vectors, vindex, keyword)


def _keyword_index(index: "DocumentIndex", base: State, keep_rows, chunks_all: list[dict], n_new: int,
                   titles: dict[str, str]) -> KeywordIndex:
    """BM25 over all chunks, reusing the stored token lists of the chunks that were kept."""
    text = lambda c: embed_text(titles[c["path"]], c["heading"], c["text"])  # noqa: E731
    old = KeywordIndex.load_tokens(index.directory / base.generation / "bm25", len(base.chunks)) \
        if base.generation else None
    if old is None:
        return KeywordIndex.build([text(c) for c in chunks_all])
    kept = old if keep_rows is None else [old[i] for i in keep_rows]
    new = [search_tokens(text(c)) for c in chunks_all[len(chunks_all) - n_new:]]
    return KeywordIndex.from_tokens(kept + new)


def _under(path: str, root: Path) -> bool:
    r = str(root)
    return path == r or path.startswith(r.rstrip(os.sep) + os.sep)
