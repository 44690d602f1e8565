"""The `Assistant` facade: one object that the CLI, the UI and other services all drive.

It owns the workspace (config, index, log, served model), conversation history and logging;
retrieval lives in `index`, prompting and checking in `assistant.tasks`, text generation in
`assistant.generation`. Models load lazily on first use so `--help`, `ingest` and `logs` stay fast.
"""
from __future__ import annotations

import copy
import logging
import threading
import time
import typing
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from assistant.collections import CollectionError, Collections
from assistant.config import Config
from assistant.context import WorkspaceContext
from assistant.generation import Generator, load_generator
from assistant.generation.base import cut_at_stop, releasable, unreleased
from assistant.tasks import run_task
from assistant.tasks.base import Event, Result, Status, TaskRequest, TextDelta
from assistant.tasks.budget import longest_fitting
from assistant.tasks.rewrite import standalone_query
from assistant.tasks.routing import AUTO, TASK_CHOICES, infer_task
from assistant.turns import TurnRecorder
from assistant.types import Answer, IngestReport, Source
from finetune.registry import Registry
from foundation.model_paths import registered_model_names, resolve_generator, served_model_name
from foundation.workspace import resolve_workspace
from index import DocumentIndex

log = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 4000  # longer input is trimmed (and said so), never crashed on
MAX_EXTRA_MODELS = 2  # generators kept besides the served one; each costs its weights in memory


class Assistant:
    """Answers, summaries and code from one workspace's documents.

    >>> bot = Assistant.open("workspace")
    >>> bot.ingest(["docs/"]).summary()
    'added 5, updated 0, skipped 0, failed 0, removed 0 (61 chunks in 3.2s)'
    >>> ans = bot.ask("How do I install it?")
    >>> ans.text, ans.sources[0].path
    """

    def __init__(self, workspace: Path, config: Config):
        self.workspace = workspace
        self.config = config
        self._index = None
        self._log = None
        self._log_opened = False
        # resolved model (folder, hub id or remote name) -> (the name it was asked by, its backend)
        self._generators: OrderedDict[str, tuple[str, Generator]] = OrderedDict()
        self.max_extra_models = MAX_EXTRA_MODELS  # the least recently used extra is unloaded first
        self._lock = threading.RLock()
        self._memory_history: dict[str, list[dict[str, str]]] = {}  # when logging is off (see TurnRecorder)
        self.collections = Collections(workspace, documents=self._documents_per_collection)

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, workspace: str | Path | None = None, *, config: Config | None = None,
             **overrides: Any) -> "Assistant":
        """Open (or create) the workspace; `overrides` replace config fields for this process only."""
        ws = resolve_workspace(workspace)
        ws.mkdir(parents=True, exist_ok=True)
        cfg = config or Config.load(ws)
        if not (ws / "config.toml").exists():
            cfg.save(ws)
        if overrides:
            cfg = cfg.replace(**overrides)
        return cls(ws, cfg)

    def with_settings(self, **changes: Any) -> "Assistant":
        """This assistant under other answer settings (`Config` fields), sharing its index, loaded
        models, log and collections: what an evaluation uses to score a setting the served assistant
        does not have, without changing what concurrent callers of this one get. Never close it."""
        self.index  # both opened here, so that the view shares them instead of opening its own
        self.log
        view = copy.copy(self)
        view.config = self.config.replace(**changes)
        return view

    @property
    def index(self):
        with self._lock:
            if self._index is None:
                self._index = DocumentIndex.open(
                    self.workspace / "index", self.config.embedder, chunk_tokens=self.config.chunk_tokens,
                    chunk_overlap=self.config.chunk_overlap, reranker=self.config.reranker,
                    device=self.config.device, max_file_bytes=self.config.max_file_bytes,
                    index_kind=self.config.index_kind, approx_threshold=self.config.approx_threshold,
                    embed_backend=self.config.embed_backend, max_file_seconds=self.config.max_file_seconds,
                    max_file_memory_mb=self.config.max_file_memory_mb, max_unpacked_mb=self.config.max_unpacked_mb,
                )
            return self._index

    @property
    def log(self):
        """The conversation log, or None when logging is turned off for this workspace."""
        with self._lock:
            if not self._log_opened:
                self._log_opened = True
                if self.config.log_enabled:
                    from assistant.log import ConversationLog, log_url  # SQLModel takes ~1 s to import: only when logging

                    self._log = ConversationLog.open(log_url(self.config, self.workspace),
                                                     redact=self.config.redact)
                    if self.config.retention_days:
                        self._log.apply_retention(self.config.retention_days)
            return self._log

    # ------------------------------------------------------------------ models
    @property
    def model_name(self) -> str:
        """The model that answers: the registry's current fine-tune, else the configured generator."""
        if self.config.backend == "local":
            return served_model_name(self.workspace) or self.config.generator
        return self.config.generator

    def generator(self, model: str | None = None) -> Generator:
        """The backend for `model` (a registry name, 'base', an HF id or path), loaded once and kept.

        Kept by what the name resolves to, so `P`, `P/` and `P/../x/..` share one copy; besides the
        served model at most `max_extra_models` stay loaded (least recently used unloaded first).
        """
        name = model or self.model_name
        if name == "base":  # the configured generator, whatever the registry serves
            name = self.config.generator
        with self._lock:
            key = self._model_key(name)
            if key not in self._generators:
                t0 = time.perf_counter()
                self._generators[key] = (name, load_generator(self.config, self.workspace, name))
                log.info("loaded generator %s in %.1fs", name, time.perf_counter() - t0)
            self._generators.move_to_end(key)
            generator = self._generators[key][1]
            self._evict_extras()
            return generator

    def _model_key(self, name: str) -> str:
        """What `name` loads: the resolved folder, else the hub id (or the remote server's model name)."""
        if self.config.backend != "local":
            return name
        target = resolve_generator(name, self.workspace)
        path = Path(target)
        return str(path.resolve()) if path.exists() else target

    def _evict_extras(self) -> None:
        """Unload the least recently used generators beyond `max_extra_models` (never the served one)."""
        try:
            served = self._model_key(self.model_name)
        except Exception:  # the served model cannot be resolved: every loaded one counts as extra
            served = None
        extras = [key for key in self._generators if key != served]
        for key in extras[:max(0, len(extras) - self.max_extra_models)]:
            log.info("unloading generator %s (least recently used)", self._generators.pop(key)[0])

    def warm_up(self) -> None:
        """Load what the first question would otherwise wait for (the served generator, the
        embedder, the log's database and schema check): servers call this before taking requests."""
        self.generator()
        self.index.embed(["warm-up"])
        _ = self.log

    @property
    def loaded_models(self) -> list[str]:
        """The generators held in memory (by the names they were first asked for), oldest use first."""
        with self._lock:
            return [name for name, _ in self._generators.values()]

    def loaded_generator(self) -> Generator | None:
        """The served model's backend if it is loaded already (None otherwise: nothing is loaded here)."""
        with self._lock:
            try:
                found = self._generators.get(self._model_key(self.model_name))
            except Exception:  # the served model cannot be resolved: it is not loaded either
                return None
            return found[1] if found else None

    def unload(self, model: str) -> None:
        """Forget a loaded model (its memory is freed once no answer still uses it).

        Matched by the name it was loaded under too: a discarded candidate no longer resolves.
        """
        with self._lock:
            try:
                key = self._model_key(model)
            except Exception:  # a path that is gone: only its name can match
                key = model
            for k in [k for k, (name, _) in self._generators.items() if k == key or name == model]:
                del self._generators[k]

    def models(self) -> list[str]:
        """'base' (the configured generator) and every fine-tuned model in the registry."""
        return ["base", *registered_model_names(self.workspace)]

    def use_model(self, name: str) -> None:
        """Serve `name` from now on ('base' = the configured generator); the registry records it."""
        Registry(self.workspace).use(name)

    # ------------------------------------------------------------------ documents
    def ingest(self, paths: Sequence[str | Path], *, prune: bool = False,
               progress: bool | Callable[[str, int, int], None] = True, collection: str | None = None,
               user: str | None = None) -> IngestReport:
        """Add or update documents; `collection` puts them there (created, with no readers, if new).

        With a `user`, the collection must be one they may write to (default: their own)."""
        if user is not None:
            collection = collection or self.collections.ensure_own(user)
            if not self.collections.writable(user, collection):
                raise PermissionError(f"{user} may not add documents to the collection {collection!r}")
        if collection is not None and not self.collections.exists(collection):
            self.collections.create(collection)
        return self.index.ingest(list(paths), prune=prune, progress=progress, collection=collection)

    def readable(self, user: str | None, groups: Iterable[str] | None = None,
                 within: Iterable[str] | None = None) -> frozenset[str] | None:
        """The collections `user` may read (None: all, for the operator); groups default to their logins'.
        `within` narrows them further (it never widens what the user may read)."""
        readable = self.collections.readable(user, groups)
        if within is None:
            return readable
        return frozenset(within) if readable is None else readable & frozenset(within)

    def search(self, query: str, k: int = 5, *, mode: str = "hybrid", path_prefix: str | None = None,
               file_types: Sequence[str] | None = None, user: str | None = None,
               collections: Iterable[str] | None = None) -> list[Source]:
        """Passages for `query`, from the collections `user` may read (all of them when user is None),
        and among those only `collections` when given."""
        return self.index.search(query, k, mode=mode, path_prefix=path_prefix, file_types=file_types,
                                 collections=self.readable(user, within=collections))

    def documents(self, user: str | None = None):
        """The indexed documents `user` may read (all of them when user is None)."""
        return self.index.documents(self.readable(user))

    def delete_collection(self, name: str, *, remove_documents: bool = False) -> int:
        """Delete a collection; one that still holds documents needs `remove_documents` (they leave the
        index: a deleted collection's documents never fall back to `shared`). Returns how many went."""
        self.collections.get(name)  # unknown: CollectionError before anything changes
        paths = [d.path for d in self.index.documents([name])]
        if paths and not remove_documents:
            raise CollectionError(f"collection {name!r} holds {len(paths)} document(s); delete them from the index "
                                  "with --remove-documents, or move them first (assistant ingest PATH --collection OTHER)")
        if paths:
            self.index.remove_documents(paths)
        self.collections.delete(name)
        return len(paths)

    def _documents_per_collection(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for d in self.index.documents():
            counts[d.collection] = counts.get(d.collection, 0) + 1
        return counts

    # ------------------------------------------------------------------ conversations
    def conversations(self, user: str | None = None, limit: int = 50):
        return self.log.list_conversations(user=user, limit=limit) if self.log else []

    def conversation(self, conversation_id: str):
        if not self.log:
            raise KeyError("logging is off for this workspace: no stored conversations")
        return self.log.get_conversation(conversation_id)

    def conversation_of(self, message_id: str) -> str | None:
        """Which conversation a logged message belongs to (None when unknown or logging is off)."""
        return self.log.conversation_of(message_id) if self.log else None

    def history(self, conversation_id: str):
        return self.log.history(conversation_id) if self.log else []

    def feedback(self, message_id: str, rating: int, comment: str | None = None,
                 correction: str | None = None, user: str | None = None) -> str:
        """Rate an answer; a `user` may rate only answers in their own conversations."""
        if not self.log:
            raise RuntimeError("logging is off for this workspace: feedback cannot be stored")
        if user is not None and (cid := self.log.conversation_of(message_id)) is not None:
            self._check_owner(cid, user)
        return self.log.add_feedback(message_id, rating=rating, comment=comment, correction=correction, user=user)

    # ------------------------------------------------------------------ asking
    def ask(self, question: str, *, task: str = "qa", conversation_id: str | None = None, **kwargs: Any) -> Answer:
        """Answer one question (or summarise, or write code) and log it; see `stream_events` for kwargs."""
        answer = None
        for event in self.stream_events(question, task=task, conversation_id=conversation_id, **kwargs):
            if isinstance(event, Result):
                answer = event.answer
        assert answer is not None
        return answer

    def stream(self, question: str, *, on_status: Callable[[str], None] | None = None,
               **kwargs: Any) -> "AnswerStream":
        """Iterate for text deltas; `.answer` holds the full `Answer` once the stream is exhausted.
        `on_status` hears each progress line ("summarising part 3/12, about 40 s left") as it comes."""
        return AnswerStream(self.stream_events(question, **kwargs), on_status=on_status)

    def stream_events(self, question: str, *, task: str = "qa", conversation_id: str | None = None,
                      user: str | None = None, k: int | None = None, temperature: float | None = None,
                      model: str | None = None, tests: str = "", log: bool = True,
                      path_prefix: str | None = None, file_types: Sequence[str] | None = None,
                      history: list[dict[str, str]] | None = None, max_tokens: int | None = None,
                      stop: Sequence[str] | None = None, collections: Iterable[str] | None = None) -> Iterator[Event]:
        """Run a task and yield `TextDelta`, `Status` and finally `Result(answer)`.

        `history` (earlier {"role", "content"} turns) serves callers that keep the conversation
        themselves, like OpenAI-style clients; with a `conversation_id` the log's history is used.
        `max_tokens` caps all tokens generated for this answer; `stop` adds stop sequences to every
        generation call (both as in OpenAI's API). Passages come from the collections `user` may read,
        and among those from `collections` only when given (the learning loop asks within `shared`).
        """
        start = time.perf_counter()
        question, notes = _checked_question(question)
        task = _resolved_task(task, question)
        readable = self.readable(user, within=collections)
        if conversation_id and user is not None and self.log is not None:
            self._check_owner(conversation_id, user)
        recorder = TurnRecorder(self.log if log else None, self._memory_history)
        history, earlier = recorder.history_within(conversation_id, history, readable)
        ctx = WorkspaceContext(self.index, self.config, self.generator(model), task, max_tokens=max_tokens, stop=stop,
                               collections=readable)
        query = standalone_query(question, history)
        request = TaskRequest(text=question, query=query, history=history, k=k or self.config.top_k,
                              temperature=temperature, tests=tests, path_prefix=path_prefix,
                              file_types=file_types)
        turn = recorder.begin(conversation_id, question, task=task, model=ctx.generator.name, user=user,
                              options={"k": request.k, "temperature": temperature, "query": query,
                                       "tests": bool(tests)})
        try:
            answer, first_token_at = yield from _relay(run_task(task, ctx, request), stop, max_tokens, ctx.count_tokens)
        except BaseException as exc:
            recorder.fail(turn, exc)
            raise
        answer.task, answer.question, answer.standalone_query = task, question, query
        answer.conversation_id, answer.message_id, answer.model = turn.conversation_id, turn.message_id, ctx.generator.name
        answer.collections = sorted({s.collection for s in answer.sources} | earlier)
        if notes:
            answer.extra.setdefault("notes", []).extend(notes)
        answer.timings = replace(ctx.timings, ttft_ms=(first_token_at - start) * 1000 if first_token_at else 0.0,
                                 total_ms=(time.perf_counter() - start) * 1000,
                                 tokens_answer=ctx.count_tokens(answer.text) if answer.text else 0)
        recorder.finish(turn, question, answer)
        yield Result(answer)

    def _check_owner(self, conversation_id: str, user: str) -> None:
        """A user continues, reads or rates only their own conversations; another's reads as unknown."""
        try:
            owner = self.log.get_conversation(conversation_id).user
        except KeyError:
            owner = user  # unknown ids are reported by the history lookup, as before
        if owner is not None and owner != user:
            raise KeyError(f"no conversation {conversation_id!r} in this workspace")

    def close(self) -> None:
        if self._log is not None:
            self._log.close()


def _checked_question(question: str) -> tuple[str, list[str]]:
    """The question stripped, and trimmed to MAX_QUESTION_CHARS (with a note saying so); empty is an error."""
    question = (question or "").strip()
    if not question:
        raise ValueError("The question is empty.")
    if len(question) <= MAX_QUESTION_CHARS:
        return question, []
    return question[:MAX_QUESTION_CHARS], [f"The question was trimmed to its first {MAX_QUESTION_CHARS} characters."]


def _resolved_task(task: str, question: str) -> str:
    """One of TASK_NAMES: "auto" picks one from the question's wording."""
    if task not in TASK_CHOICES:
        raise ValueError(f"Unknown task {task!r}; choose one of {', '.join(TASK_CHOICES)}.")
    return infer_task(question) if task == AUTO else task


def _relay(events: Iterator[Event], stop: Sequence[str] | None = None, max_tokens: int | None = None,
           count: Callable[[str], int] | None = None) -> typing.Generator[Event, None, tuple[Answer, float]]:
    """Pass a task's deltas and status lines on; return its answer and when the first text arrived.

    `stop` sequences end the answer wherever its text comes from: the model's calls stop on them
    already, but quoted evidence, notes and test verdicts are written by the task itself. So does
    `max_tokens` (counted by `count`): the model's calls are capped, a quoted answer is cut here
    (`answer.extra["cut"] = "max_tokens"`, which an OpenAI-style API reports as finish "length").
    """
    answer, first_token_at = None, 0.0
    text, sent, stopped = "", 0, False
    given, cut = "", False
    for event in events:
        if isinstance(event, Result):
            answer = event.answer
            continue
        if isinstance(event, TextDelta):
            if stopped or cut:
                continue
            if stop:
                text += event.text
                piece, sent, stopped = releasable(text, sent, stop)
                if not piece:
                    continue
                event = TextDelta(piece)
            if max_tokens is not None and count is not None:
                piece = _within_tokens(given, event.text, max_tokens, count)
                cut = piece != event.text
                if not piece:
                    continue
                given += piece
                event = TextDelta(piece)
            if not first_token_at:
                first_token_at = time.perf_counter()
        yield event
    assert answer is not None, "the task ended without a result"
    if stop and not cut:
        rest = unreleased(text, sent, stop)
        if max_tokens is not None and count is not None:
            rest = _within_tokens(given, rest, max_tokens, count)
        if rest:
            first_token_at = first_token_at or time.perf_counter()
            given += rest
            yield TextDelta(rest)
        answer.text, _ = cut_at_stop(answer.text, stop)
    if cut:
        answer.text = given
        answer.extra["cut"] = "max_tokens"
    return answer, first_token_at


def _within_tokens(given: str, piece: str, max_tokens: int, count: Callable[[str], int]) -> str:
    """The longest head of `piece` that keeps `given + piece` within `max_tokens` tokens."""
    if not piece or count(given + piece) <= max_tokens:
        return piece
    return piece[:longest_fitting(len(piece), lambda n: count(given + piece[:n]) <= max_tokens)]


class AnswerStream:
    """`for delta in bot.stream(q): print(delta, end="")`, then `stream.answer`."""

    def __init__(self, events: Iterator[Event], on_status: Callable[[str], None] | None = None):
        self._events = events
        self._on_status = on_status
        self.answer: Answer | None = None
        self.status: list[str] = []

    def __iter__(self) -> Iterator[str]:
        for event in self._events:
            if isinstance(event, TextDelta):
                yield event.text
            elif isinstance(event, Status):
                self.status.append(event.text)
                if self._on_status is not None:
                    self._on_status(event.text)
            elif isinstance(event, Result):
                self.answer = event.answer
