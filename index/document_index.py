"""`DocumentIndex`: ingest files incrementally and search them by meaning, by keyword, or both.

This is the one class the assistant uses. It ties together loading (`loaders`), chunking
(`chunking`), embedding (`embedding`), the FAISS and BM25 stores (`vectors`, `keyword`) and the
crash-safe generations on disk (`store`). Searches read an immutable in-memory `State`, so a search
running in another thread while an ingest commits sees either the old or the new index, whole.
"""
from __future__ import annotations

import bisect
import difflib
import logging
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Collection, Iterator, Sequence

import numpy as np

from foundation.devices import pick_device
from foundation.model_paths import DEFAULT_EMBEDDER_ALIASES, resolve_embedder
from index import reranking
from index import collections as access
from index import search as searching
from index import vocabulary
from index.budget import LoadLimits
from index.chunking import TokenCounter, load_token_counter
from index.doc_ranking import bare_title
from index.embedding import Embedder, append_compatible, follow_backend
from index.keyword import KeywordIndex
from index.ingest import Progress, embed_text, relabel, run_ingest, without_documents
from index.store import DocumentInfo, State, current_generation, empty_state, load_latest, write_generation, writer_lock
from index.types import IngestReport, Source
from index.vectors import DEFAULT_APPROX_THRESHOLD, gpu_count

log = logging.getLogger(__name__)

DEFAULT_MAX_FILE_BYTES = 50 * 1024 * 1024


class EmbedderMismatchError(RuntimeError):
    """The index folder was built with another embedder; its vectors mean nothing to this one."""


class EmbeddingPathMismatchError(EmbedderMismatchError):
    """The index's vectors came from another backend of the same model (e.g. int8 vs float32): adding
    vectors from this one would mix two embedding paths in one index."""


LEGACY_PATH = {"backend": "torch", "precision": "float32"}  # indexes from before paths were recorded


def canonical_embedder(name: str) -> str:
    return "all-MiniLM-L6-v2" if name.lower() in DEFAULT_EMBEDDER_ALIASES else name


class DocumentIndex:
    """A folder of documents made searchable. Open with `DocumentIndex.open(directory)`."""

    def __init__(self, directory: Path, embedder: Embedder, state: State, *, chunk_tokens: int,
                 chunk_overlap: int, reranker: str, device: str, max_file_bytes: int,
                 approx_threshold: int, index_kind: str, load_limits: LoadLimits = LoadLimits()):
        self.directory = directory
        self._embedder = embedder
        self._state = state
        self.chunk_tokens = chunk_tokens
        self.chunk_overlap = chunk_overlap
        self.reranker_name = reranker
        self.device = device
        self.max_file_bytes = max_file_bytes
        self.approx_threshold = approx_threshold
        self.index_kind = index_kind
        self.load_limits = load_limits
        self._counter: TokenCounter | None = None
        self._reranker: tuple[str, object] | None = None  # (path, loaded model)
        self._ranker_resolved: tuple[int | None, str] | None = None  # (registry stamp, path)
        self._lock = threading.RLock()
        self._query_cache: dict[str, np.ndarray] = {}
        self._pointer = state.generation  # what CURRENT said when `state` was loaded

    # --- opening ----------------------------------------------------------------------------

    @classmethod
    def open(cls, directory: Path, embedder: str = "all-MiniLM-L6-v2", *, chunk_tokens: int = 160,
             chunk_overlap: int = 32, reranker: str = "", device: str = "auto",
             max_file_bytes: int = DEFAULT_MAX_FILE_BYTES, approx_threshold: int = DEFAULT_APPROX_THRESHOLD,
             index_kind: str = "auto", embed_backend: str = "auto",
             max_file_seconds: float = LoadLimits.max_file_seconds,
             max_file_memory_mb: int = LoadLimits.max_file_memory_mb,
             max_unpacked_mb: int = LoadLimits.max_unpacked_mb) -> "DocumentIndex":
        """Open the index in `directory`, creating an empty one if there is none.

        Raises EmbedderMismatchError when the folder holds vectors from a different embedder.
        `index_kind` is "auto" (flat below `approx_threshold` chunks, IVF above), "flat", "ivf"
        or "hnsw". The embedding model is only loaded on the first ingest, search or embed.
        `embed_backend` "auto" keeps the backend that built an existing index (see
        `index.embedding` for the rule), else picks int8 ONNX on a CPU; "torch" or "onnx-int8" force one.
        Each file is read within `max_file_seconds` (0: no limit, read in-process), `max_file_memory_mb`
        and, for DOCX, `max_unpacked_mb` (see `index.budget`); a file past one is reported as failed.
        """
        directory = Path(directory).expanduser().resolve()
        directory.mkdir(parents=True, exist_ok=True)
        name = canonical_embedder(embedder)
        use_gpu = device != "cpu" and _gpu_wanted(device)
        generation = current_generation(directory)
        if generation:
            state = load_latest(directory, generation, use_gpu)
            built_with = state.manifest.get("embedder", "")
            if state.chunks and canonical_embedder(built_with) != name:
                raise EmbedderMismatchError(
                    f"The index in {directory} was built with embedder {built_with!r} "
                    f"(dimension {state.manifest.get('dimension')}), but {embedder!r} was requested. "
                    f"Open it with embedder={built_with!r}, or ingest into a new folder to switch embedders."
                )
        else:
            state = empty_state({"embedder": name, "dimension": None})
        state.manifest["embedder"] = name
        forced = embed_backend != "auto"
        if embed_backend == "auto" and state.chunks:
            embed_backend = follow_backend(state.manifest.get("embedding", LEGACY_PATH)["backend"])
        model = Embedder(name, resolve_embedder(embedder), device, backend=embed_backend, forced=forced)
        index = cls(directory, model, state, chunk_tokens=chunk_tokens, chunk_overlap=chunk_overlap,
                    reranker=reranker, device=device, max_file_bytes=max_file_bytes,
                    approx_threshold=approx_threshold, index_kind=index_kind,
                    load_limits=LoadLimits(max_file_seconds, max_file_memory_mb, max_unpacked_mb))
        index._pointer = generation or ""
        return index

    # --- properties -------------------------------------------------------------------------

    @property
    def embedder_name(self) -> str:
        return self._embedder.name

    def embedder_status(self, load: bool = False) -> dict:
        """How queries are embedded here: the backend, its agreement with float32 on this CPU, any fallback.
        `load` loads the model first (seconds, and the one-off machine check) so the answer is final."""
        embedder = self._embedder
        if load:
            embedder.model  # noqa: B018 - loading is the point
        return {"model": embedder.name, "backend": embedder.backend, "loaded": embedder.loaded,
                "check": embedder.check, "fallback_reason": embedder.fallback_reason}

    @property
    def embedder_path(self) -> str:
        """Where the embedder's weights were found (recorded in the manifest)."""
        return self._embedder.model_path

    @property
    def dimension(self) -> int:
        dim = self._state.manifest.get("dimension")
        return int(dim) if dim else self._embedder.dimension

    @property
    def count(self) -> int:
        """Number of chunks."""
        return len(self._current().chunks)

    @property
    def manifest(self) -> dict:
        return dict(self._current().manifest)

    def _current(self) -> State:
        """The loaded state, reloaded first if another process has committed a newer generation."""
        generation = current_generation(self.directory)
        if generation and generation != self._pointer:
            with self._lock:
                if generation != self._pointer:
                    state = load_latest(self.directory, generation, self._use_gpu())
                    state.manifest["embedder"] = state.manifest.get("embedder") or self.embedder_name
                    self._state, self._pointer = state, generation
        return self._state

    def _use_gpu(self) -> bool:
        return self.device != "cpu" and _gpu_wanted(self.device)

    @property
    def uses_gpu(self) -> bool:
        """Whether FAISS indexes built for this index go to a GPU."""
        return self._use_gpu()

    # --- embedding --------------------------------------------------------------------------

    def embed(self, texts: list[str], *, progress: bool | Callable[[int, int], None] = False) -> np.ndarray:
        """Normalised float32 rows with this index's embedder."""
        vecs = self._embedder.encode(list(texts), progress=progress)
        dim = self._state.manifest.get("dimension")
        if dim and vecs.shape[1] != dim:
            raise EmbedderMismatchError(
                f"The index in {self.directory} holds {dim}-dimensional vectors but the embedder "
                f"{self.embedder_name!r} produces {vecs.shape[1]}; the model behind that name has changed."
            )
        return vecs

    def token_counter(self) -> TokenCounter:
        """The embedder's tokenizer as the chunker counts with it (loaded once, without the model)."""
        if self._counter is None:
            self._counter = load_token_counter(self._embedder.model_path, fallback=lambda: self._embedder.model)
        return self._counter

    # --- ingest -----------------------------------------------------------------------------

    def ingest(self, paths: Sequence[str | Path], *, prune: bool = False, progress: Progress = True,
               collection: str | None = None) -> IngestReport:
        """Add new files, replace changed ones, skip unchanged ones (by content hash).

        `collection` labels the files (new ones default to `shared`; None keeps a stored file's own);
        an unchanged file given another collection moves there without being embedded again.

        `paths` are files or folders (walked recursively, hidden and tool folders skipped).
        With `prune=True`, indexed files under these paths that no longer exist are removed.
        Files that cannot be read are listed in `report.failed` with the reason; their previous
        chunks, if any, are kept. Nothing is visible to searches until the new generation commits.
        """
        started = time.perf_counter()
        with writer_lock(self.directory):
            base = self._current()
            # The new generation's manifest starts from base's: a copy of base carries the path into it.
            base = replace(base, manifest={**base.manifest, "embedding": self._check_embedding_path(base)})
            report, state = run_ingest(self, base, [Path(p) for p in paths], prune=prune, progress=progress,
                                       collection=None if collection is None else access.check_name(collection))
            if state is not None:  # already committed to disk: make it the one searches read
                with self._lock:
                    self._state, self._pointer = state, state.generation
        report.seconds = time.perf_counter() - started
        return report

    def set_collection(self, paths: Sequence[str], collection: str) -> None:
        """Move stored documents to `collection` (a new generation; nothing is embedded again)."""
        name = access.check_name(collection)

        def change(base: State) -> State | None:
            state = relabel(base, dict.fromkeys(paths, name))
            if state is not None:  # the new generation keeps BM25's token lists, for the next ingest to reuse
                tokens = KeywordIndex.load_tokens(self.directory / base.generation / "bm25", len(base.chunks))
                state.keyword = KeywordIndex(base.keyword.retriever, base.keyword.size, tokens)
            return state

        self._commit(change)

    def remove_documents(self, paths: Sequence[str]) -> None:
        """Drop stored documents from the index (a new generation without their chunks)."""
        self._commit(lambda base: without_documents(self, base, set(paths)))

    def _commit(self, change: Callable[[State], State | None]) -> None:
        """Apply `change` to the current state under the writer lock and commit it as a generation."""
        with writer_lock(self.directory):
            state = change(self._current())
            if state is None:
                return
            write_generation(self.directory, state)
            with self._lock:
                self._state, self._pointer = state, state.generation

    def _check_embedding_path(self, base: State) -> dict:
        """This index's embedding path, refusing to add its vectors to an index built by another one."""
        path = self._embedder.path_record()
        built = {"model": path["model"], **LEGACY_PATH, **base.manifest.get("embedding", {})}
        if base.chunks and not append_compatible(built, path):
            raise EmbeddingPathMismatchError(
                f"The index in {self.directory} was built with {built['model']} on backend "
                f"{built['backend']!r} ({built.get('precision')}), but this ingest embeds with {path['backend']!r} "
                f"({path['precision']}); one index never mixes the two. Set embed_backend = "
                f"{built['backend']!r} (ASSISTANT_EMBED_BACKEND) to keep adding to it, or ingest into a new folder."
            )
        return path

    # --- search -----------------------------------------------------------------------------

    def search(self, query: str, k: int = 5, *, mode: str = "hybrid", path_prefix: str | None = None,
               file_types: Sequence[str] | None = None, collections: Collection[str] | None = None) -> list[Source]:
        """The k best passages for `query`: mode "dense" (meaning), "keyword" (BM25) or "hybrid" (RRF of both).

        Every hit carries `dense_score`, the cosine similarity of the query with it, so callers
        can decline when even the best passage is unrelated. `collections` (None: all) are the ones
        the caller may read: other rows are masked out before ranking, never filtered after it.
        """
        if mode not in ("dense", "keyword", "hybrid"):
            raise ValueError(f"mode must be 'dense', 'keyword' or 'hybrid', not {mode!r}")
        if k < 1:
            raise ValueError(f"k must be at least 1, not {k}")
        state = self._current()
        if not state.chunks or not query.strip():
            return []
        corpus = access.readable_mask(state, collections)
        mask = access.combine(searching.filter_mask(state, path_prefix, file_types), corpus)
        if mask is not None and not mask.any():
            return []
        qvec = self._query_vector(query)
        rows = searching.rank(state, query, qvec, k, mode, mask, self._rerank if self._ranker_path() else None,
                              corpus=corpus)
        return [searching.to_source(state, row, score, qvec, query, rank)
                for rank, (row, score) in enumerate(rows, start=1)]

    def mentions(self, term: str, collections: Collection[str] | None = None, limit: int = 3) -> int:
        """How many passages (at most `limit`) mention `term` as written, among those in `collections`
        (None: all): 0 means the readable documents never mention it (`index.vocabulary`)."""
        state = self._current()
        readable = access.readable_mask(state, collections)

        def text_of(row: int) -> str:  # what BM25 indexed for the row: title, heading and text
            c = state.chunks[row]
            return embed_text(state.documents[c["path"]].title, c["heading"], c["text"])

        return len(vocabulary.mention_rows(state.keyword, text_of, term, readable, limit))

    def _query_vector(self, query: str) -> np.ndarray:
        """The query's embedding, cached: the assistant often searches the same text more than once."""
        with self._lock:
            hit = self._query_cache.pop(query, None)
        vec = hit if hit is not None else self.embed([query])[0]
        with self._lock:
            self._query_cache[query] = vec
            while len(self._query_cache) > 256:
                self._query_cache.pop(next(iter(self._query_cache)))
        return vec

    def clear_query_cache(self) -> None:
        """Forget cached query vectors (evaluation clears it so each mode pays its own embedding)."""
        with self._lock:
            self._query_cache.clear()

    def _ranker_path(self) -> str:
        """The reranker to use now ("" = none): "auto" follows the workspace registry's served ranker,
        re-read when registry.json changes so `assistant models use` takes effect without a restart."""
        key = self._registry_stamp() if self.reranker_name.strip().lower() == reranking.AUTO else None
        if self._ranker_resolved is None or self._ranker_resolved[0] != key:
            self._ranker_resolved = (key, reranking.ranker_setting(self.reranker_name, self.directory))
        return self._ranker_resolved[1]

    def _registry_stamp(self) -> int:
        try:
            return (self.directory.parent / "models" / "registry.json").stat().st_mtime_ns
        except OSError:
            return 0

    def _rerank(self, query: str, texts: list[str]) -> list[float]:
        path = self._ranker_path()
        if self._reranker is None or self._reranker[0] != path:
            self._reranker = (path, self._load_reranker(path))
        model = self._reranker[1]
        if isinstance(model, reranking.WorkspaceRanker):
            return self._rerank_by_vectors(model, query, texts)
        scores = model.predict([(query, t) for t in texts], show_progress_bar=False)
        return [float(s) for s in np.asarray(scores, dtype=np.float32).reshape(len(texts), -1)[:, -1]]

    def _rerank_by_vectors(self, model: "reranking.WorkspaceRanker", query: str, texts: list[str]) -> list[float]:
        """A workspace ranker scores the passages' stored vectors; `rank` hands over their texts, so find the rows."""
        state = self._current()
        rows_of = state.derived.get("rerank_rows")
        if rows_of is None:
            # keyed by the very text `searching.rank` hands a reranker, built by the same function
            rows_of = state.derived["rerank_rows"] = {searching._passage_for_rerank(state, r): r
                                                      for r in range(len(state.chunks))}
        rows = [rows_of.get(t) for t in texts]
        if any(r is None for r in rows):  # a newer generation committed mid-search: keep the fused order
            return [float(len(texts) - i) for i in range(len(texts))]
        return model.scores(query, np.asarray(state.vectors[rows]))

    def _load_reranker(self, path: str):
        """A ranker trained on this workspace (its folder has ranker.json) or any sentence-transformers
        cross-encoder id or path."""
        device = pick_device(self.device)
        if reranking.read_meta(Path(path)).get("kind") == reranking.QUERY_ENCODER:
            return reranking.WorkspaceRanker(path, device=device)
        try:
            from sentence_transformers import CrossEncoder  # optional: only a configured cross-encoder needs it
        except ImportError:  # pragma: no cover
            raise ImportError("Reranking needs sentence-transformers: pip install sentence-transformers") from None
        return CrossEncoder(resolve_embedder(path), device=device)

    # --- documents --------------------------------------------------------------------------

    def documents(self, collections: Collection[str] | None = None) -> list[DocumentInfo]:
        """The indexed documents (those in `collections` only, when given)."""
        docs = self._current().documents.values()
        return sorted((d for d in docs if collections is None or d.collection in collections), key=lambda d: d.path)

    def iter_chunks(self, path_prefix: str | None = None, collections: Collection[str] | None = None) -> Iterator[Source]:
        """Every committed chunk, document by document in order, as a `Source` (score 0, no snippet query).

        The public way to read the index's text (fine-tuning data, the improve cycle): it sees exactly
        what the last ingest committed, and never loads the embedder. `path_prefix` keeps the
        documents under a folder or with that path prefix.
        """
        state = self._current()
        mask = access.combine(searching.filter_mask(state, path_prefix, None), access.readable_mask(state, collections))
        rows = [i for i in range(len(state.chunks)) if mask is None or mask[i]]
        rows.sort(key=lambda i: (state.chunks[i]["path"], state.chunks[i]["ordinal"]))
        for n, row in enumerate(rows, start=1):
            yield searching.to_source(state, row, 0.0, None, "", n)

    def document_chunks(self, name: str, collections: Collection[str] | None = None) -> list[Source]:
        """A document's chunks in order, found by exact path, path suffix, file name or title.

        With `collections`, a document outside them does not exist: it is neither found, nor named
        among the suggestions, nor counted in the KeyError's message."""
        state = self._current()
        path = find_document(state, name, collections)
        # the document's rows from the chunk -> document map (numpy), not a scan of every chunk's
        # path: the QA task reads a few pages per question, and an index may hold 100k chunks
        rows = np.flatnonzero(state.doc_of_chunk == bisect.bisect_left(state.doc_paths, path)).tolist()
        rows.sort(key=lambda i: state.chunks[i]["ordinal"])
        return [searching.to_source(state, row, 0.0, None, "", n) for n, row in enumerate(rows, start=1)]

    def __repr__(self) -> str:
        s = self._state
        return (f"DocumentIndex({str(self.directory)!r}, embedder={self.embedder_name!r}, "
                f"documents={len(s.documents)}, chunks={len(s.chunks)})")


def _gpu_wanted(device: str) -> bool:
    if device.startswith("cuda") or device == "auto":
        return gpu_count() > 0
    return False


def find_document(state: State, name: str, collections: Collection[str] | None = None) -> str:
    """Resolve a user's name for a document to its stored path; KeyError with suggestions if none.

    Only documents in `collections` (None: all) are candidates."""
    wanted = name.strip()
    docs = {p: d for p, d in state.documents.items() if collections is None or d.collection in collections}
    if not wanted:
        raise KeyError("empty document name")
    lowered = wanted.lower()
    try:
        resolved = str(Path(wanted).expanduser().resolve())
    except (OSError, RuntimeError):
        resolved = wanted
    for candidate in (wanted, resolved):
        if candidate in docs:
            return candidate
    suffix = "/" + lowered.lstrip("./")
    bare = bare_title(wanted).lower()
    tiers = (  # each scans every document, so a later one runs only when the earlier ones found none
        lambda: [p for p in docs if p.lower().endswith(suffix)],
        lambda: [p for p, d in docs.items() if d.title.lower() == lowered],
        lambda: [p for p in docs if Path(p).stem.lower() == lowered],
        # a manual page by its bare name, either side: "fstab" for fstab(5) or sort.1 (as `man fstab`
        # finds it), "issue(5)" for a page saved as issue.txt
        lambda: [p for p, d in docs.items() if bare in (bare_title(d.title).lower(), Path(p).stem.lower())],
    )
    for tier in tiers:
        matches = tier()
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise KeyError(f"{name!r} matches several documents: {sorted(matches)[:10]}; give more of the path")
    labels = {}
    for p, d in docs.items():
        labels[d.title.lower()] = p
        labels[Path(p).name.lower()] = p
    close = difflib.get_close_matches(lowered, list(labels), n=5, cutoff=0.5)
    hint = f" Did you mean: {', '.join(sorted({labels[c] for c in close}))}?" if close else ""
    raise KeyError(f"No document named {name!r} in the index ({len(docs)} documents).{hint}")


__all__ = ["DocumentIndex", "DocumentInfo", "EmbedderMismatchError", "EmbeddingPathMismatchError"]


def committed_chunks(directory: Path, collections: Collection[str] | None = None) -> list[dict] | None:
    """The chunks (path, ordinal, text, heading, page, lines) of the index in `directory`; None when there is none.

    For readers of the text alone (fine-tuning on what ingest read): no embedder is loaded and no
    folder is created, unlike `DocumentIndex.open`. `collections` keeps those collections' documents.
    """
    generation = current_generation(Path(directory))
    if generation is None:
        return None
    state = load_latest(Path(directory), generation)
    if collections is None:
        return list(state.chunks)
    return [c for c in state.chunks if state.documents[c["path"]].collection in collections]


def stored_collections(directory: Path) -> dict[str, str]:
    """path -> collection of every committed document (no embedder loaded); {} when there is no index."""
    generation = current_generation(Path(directory))
    if generation is None:
        return {}
    return {p: d.collection for p, d in load_latest(Path(directory), generation).documents.items()}
