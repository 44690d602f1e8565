"""The conversation log: every question, answer, cited source and rating, in SQLite or PostgreSQL.

The facade calls `begin_turn` when a question arrives: the question and an empty answer marked
`incomplete` (so a crash leaves it recorded rather than missing) in one transaction; when the
answer is done, `finish_answer_later` queues the write that fills it in (`deferred.py`), so the
answer does not wait for it, and every read waits for the queue. `start_conversation`,
`record_question`, `begin_answer` and `finish_answer` do the same steps one call at a time.
"""
from __future__ import annotations

import json
import re
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, Collection, Iterator, Mapping, Sequence

from sqlalchemy import and_, case, delete, exists, func, insert, or_, text, update
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, col, select

from foundation.request_context import current_request_id
from index.types import Source
from assistant.log import reports
from assistant.log.db import Database
from assistant.log.deferred import DeferredWrites
from assistant.log.ids import new_id
from assistant.log.migrations import migrate
from assistant.log.models import (
    STATUSES, ConversationRow, FeedbackRow, MessageRow, OptOutRow, SourceRow, utcnow,
)
from assistant.log.records import (
    ConversationDetail, ConversationSummary, LoggedFeedback, LoggedMessage, LoggedSource, aware,
)
from assistant.log.redact import SecretMemory, redact as scrub, redact_known, redact_value, secret_runs

TITLE_CHARS = 120
# Feedback is typed by a person: a comment is a few sentences, a correction at most an answer
# (8192 tokens, about 32,000 characters). Longer is refused, not cut, so nothing is lost silently.
MAX_COMMENT_CHARS = 4_000
MAX_CORRECTION_CHARS = 32_000
_C, _M, _S, _O = ConversationRow.__table__, MessageRow.__table__, SourceRow.__table__, OptOutRow.__table__


def _title(question: str) -> str:
    return " ".join(question.split())[:TITLE_CHARS]


def _check_length(what: str, text: str | None, limit: int) -> None:
    """Refuse oversized feedback with a message the UI and the HTTP API can show as it is."""
    if text is not None and len(text) > limit:
        raise ValueError(f"The {what} is {len(text):,} characters; the limit is {limit:,}. Please shorten it.")


class ConversationLog:
    """Typed access to the log database. Open with `ConversationLog.open(url)`; thread-safe."""

    def __init__(self, db: Database, *, redact: bool = False) -> None:
        self.db = db
        self.redact = redact
        self._secrets = SecretMemory()  # what redaction found earlier in each conversation
        self._deferred = DeferredWrites("conversation-log-writer")

    @classmethod
    def open(cls, url: str, *, redact: bool = False) -> "ConversationLog":
        """Connect and bring the schema up to date (see `migrations.py`)."""
        db = Database(url)
        try:
            with db.write() as session:
                migrate(session.connection(), db.dialect)
        except OperationalError as exc:
            db.close()
            where = make_url(db.url).render_as_string(hide_password=True)
            raise RuntimeError(f"cannot open the conversation log at {where}: {exc.orig}") from exc
        return cls(db, redact=redact)

    @property
    def url(self) -> str:
        return self.db.url

    def close(self) -> None:
        self._deferred.close()
        self.db.close()

    def settle(self) -> None:
        """Wait until every `finish_answer_later` so far is written (reads do this themselves)."""
        self._deferred.wait()

    # Everything but the answer path goes through these two: they first apply the queued
    # `finish_answer_later` writes, so no reader or rater sees an answer half written.
    @contextmanager
    def _read(self) -> Iterator[Session]:
        self.settle()
        with self.db.read() as s:
            yield s

    @contextmanager
    def _write(self) -> Iterator[Session]:
        self.settle()
        with self.db.write() as s:
            yield s

    def __enter__(self) -> "ConversationLog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _clean(self, value: str | None, known: frozenset[str] = frozenset()) -> str | None:
        return redact_known(value, known) if self.redact else value

    def _clean_new(self, conversation_id: str | None, text: str) -> tuple[str, set[str]]:
        """A new question or title redacted, also of secrets its conversation held earlier (or
        it holds elsewhere in context), and the secrets found in it, for `_remember`."""
        if not self.redact:
            return text or "", set()
        runs = secret_runs(text)
        earlier = self._secrets.known(conversation_id=conversation_id) if conversation_id else frozenset()
        return self._clean(text, earlier | runs) or "", runs

    def _remember(self, conversation_id: str, runs: set[str], *message_ids: str) -> None:
        """Keep a conversation's secrets in memory, so answers and feedback that repeat them
        out of context ("never mention “hunter22”") lose them too."""
        if self.redact:
            self._secrets.learn(conversation_id, runs, *message_ids)

    # -- writing -------------------------------------------------------------------------

    # The writes on every answer's path use SQLAlchemy Core on the typed tables: no
    # unit-of-work bookkeeping, a handful of statements per short transaction.

    def start_conversation(self, *, user: str | None = None, title: str = "") -> str:
        title, runs = self._clean_new(None, title)
        with self.db.transaction() as conn:
            cid = self._insert_conversation(conn, user, title)
        self._remember(cid, runs)
        return cid

    def _insert_conversation(self, conn: Connection, user: str | None, title: str) -> str:
        cid, now = new_id(), utcnow()
        opted_out = bool(user) and _opted_out(conn, user)
        conn.execute(insert(_C).values(id=cid, user=user or None, title=title,
                                       created_at=now, updated_at=now, opted_out=opted_out))
        return cid

    def conversation_exists(self, conversation_id: str) -> bool:
        with self._read() as s:
            return s.get(ConversationRow, conversation_id) is not None

    def conversation_of(self, message_id: str) -> str | None:
        """The conversation a message belongs to (None for an unknown id): for ownership checks."""
        with self._read() as s:
            row = s.get(MessageRow, message_id)
            return row.conversation_id if row is not None else None

    def begin_turn(self, conversation_id: str | None, question: str, *, task: str, model: str,
                   options: dict, user: str | None = None) -> tuple[str, str, str]:
        """Record a question and its empty `incomplete` answer (and the conversation, when
        `conversation_id` is None) in one transaction: the only write before generation starts,
        so a crash leaves the question kept and the answer marked incomplete.
        Returns (conversation_id, question_id, answer_id)."""
        content, runs = self._clean_new(conversation_id, question)
        with self.db.transaction() as conn:
            if conversation_id is None:
                conversation_id = self._insert_conversation(conn, user, _title(content))
                previous = None
            else:
                previous = self._touch_conversation(conn, conversation_id, content, user)
            qid, aid = new_id(), new_id()
            _insert_rows(conn, _M, [self._question_row(qid, conversation_id, content, task, previous),
                                    self._answer_row(aid, conversation_id, qid, task, model, options)])
        self._remember(conversation_id, runs, qid, aid)
        return conversation_id, qid, aid

    def record_question(self, conversation_id: str, content: str, *, task: str, user: str | None = None) -> str:
        """Store the user's message; the conversation's title becomes its first question."""
        mid, (content, runs) = new_id(), self._clean_new(conversation_id, content)
        with self.db.transaction() as conn:
            previous = self._touch_conversation(conn, conversation_id, content, user)
            conn.execute(insert(_M).values(self._question_row(mid, conversation_id, content, task, previous)))
        self._remember(conversation_id, runs, mid)
        return mid

    def begin_answer(self, conversation_id: str, question_id: str, *, task: str, model: str, options: dict) -> str:
        """Write the answer row, empty and `incomplete`, before generation starts."""
        mid = new_id()
        with self.db.transaction() as conn:
            owner = conn.execute(select(_M.c.conversation_id).where(_M.c.id == question_id)).scalar()
            if owner != conversation_id:
                raise KeyError(f"no question {question_id!r} in conversation {conversation_id!r}")
            conn.execute(insert(_M).values(self._answer_row(mid, conversation_id, question_id, task, model, options)))
        self._remember(conversation_id, set(), mid)
        return mid

    def _touch_conversation(self, conn: Connection, conversation_id: str, content: str,
                            user: str | None) -> str | None:
        """Mark a new question in an existing conversation (KeyError when there is none); returns
        the id of its latest message, the new question's parent (same round trip)."""
        # One UPDATE touches the conversation (and tells us it exists); SET expressions all
        # see the old row, so the title and user are only filled in when still empty.
        changes: dict[str, Any] = {"updated_at": utcnow(),
                                   "title": case((_C.c.title == "", _title(content)), else_=_C.c.title)}
        if user:
            changes["user"] = func.coalesce(_C.c.user, user)
            changes["opted_out"] = or_(_C.c.opted_out, and_(_C.c.user.is_(None), exists().where(_O.c.user == user)))
        latest = (select(_M.c.id).where(_M.c.conversation_id == conversation_id)
                  .order_by(_M.c.id.desc()).limit(1).scalar_subquery())
        touched = conn.execute(update(_C).where(_C.c.id == conversation_id).values(**changes)
                               .returning(_C.c.id, latest)).first()
        if touched is None:
            raise KeyError(f"no conversation {conversation_id!r} in the log")
        return touched[1]

    @staticmethod
    def _question_row(mid: str, conversation_id: str, content: str, task: str,
                      parent: str | None) -> dict[str, Any]:
        return dict(id=mid, conversation_id=conversation_id, role="user", content=content, task=task,
                    model=None, options="{}", tokens_in=0, tokens_out=0, ttft_ms=0.0, duration_ms=0.0,
                    parent_id=parent, status="complete", declined=False, request_id=current_request_id(),
                    created_at=utcnow())

    def _answer_row(self, mid: str, conversation_id: str, question_id: str, task: str, model: str,
                    options: dict) -> dict[str, Any]:
        opts = json.dumps(redact_value(options) if self.redact else options, default=str, sort_keys=True)
        return dict(id=mid, conversation_id=conversation_id, role="assistant", content="", task=task,
                    model=model, options=opts, tokens_in=0, tokens_out=0, ttft_ms=0.0, duration_ms=0.0,
                    parent_id=question_id, status="incomplete", declined=False, request_id=current_request_id(),
                    created_at=utcnow())

    def finish_answer(
        self, message_id: str, *, content: str, sources: Sequence[Source],
        supported: Sequence[bool] | None = None, tokens_in: int = 0, tokens_out: int = 0,
        ttft_ms: float = 0, duration_ms: float = 0, declined: bool = False, status: str = "complete",
        collections: Sequence[str] | None = None,
    ) -> None:
        """Fill in the answer, its timings and the sources it was given ([1]..[n] in order).

        `collections` are the document collections it drew on (default: its sources' own)."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, not {status!r}")
        if supported is not None and len(supported) != len(sources):
            raise ValueError(f"supported has {len(supported)} flags for {len(sources)} sources")
        known = self._secrets.known(message_id=message_id)
        rows = [dict(id=new_id(), message_id=message_id, rank=i, path=src.path, title=src.title or "",
                     locator=src.locator or "", score=float(src.score or 0.0),
                     supported=None if supported is None else bool(supported[i - 1]),
                     snippet=self._clean(src.snippet, known) or "")
                for i, src in enumerate(sources, start=1)]
        with self.db.transaction() as conn:
            earlier = select(func.count()).where(_S.c.message_id == message_id).scalar_subquery()
            finished = conn.execute(
                update(_M).where(_M.c.id == message_id, _M.c.role == "assistant")
                .values(content=self._clean(content, known) or "", tokens_in=int(tokens_in), tokens_out=int(tokens_out),
                        ttft_ms=float(ttft_ms), duration_ms=float(duration_ms), declined=bool(declined),
                        status=status, collections=_collections_text(collections, sources))
                .returning(_M.c.conversation_id, earlier)  # and its sources so far, same round trip
            ).first()
            if finished is None:
                raise KeyError(f"no answer {message_id!r} in the log (call begin_answer first)")
            if finished[1]:  # finishing twice replaces
                conn.execute(delete(_S).where(_S.c.message_id == message_id))
            if rows:
                _insert_rows(conn, _S, rows)
            # The conversation's updated_at moved when the question arrived (begin_turn).

    def finish_answer_later(self, message_id: str, **fields: Any) -> None:
        """`finish_answer` off the answer's critical path (see `deferred.py`); errors are logged."""
        self._deferred.submit(self.finish_answer, message_id, **fields)

    def add_feedback(self, message_id: str, *, rating: int, comment: str | None = None,
                     correction: str | None = None, user: str | None = None) -> str:
        """Rate a message; the same user rating it again replaces their earlier feedback."""
        if isinstance(rating, bool) or rating not in (-1, 0, 1):
            raise ValueError(f"rating must be -1, 0 or 1, not {rating!r}")
        _check_length("comment", comment, MAX_COMMENT_CHARS)
        _check_length("correction", correction, MAX_CORRECTION_CHARS)
        known = self._secrets.known(message_id=message_id)
        comment, correction = self._clean(comment, known), self._clean(correction, known)
        for attempt in range(3):  # a concurrent first rating by the same user: retry as an update
            try:
                with self._write() as s:
                    if s.get(MessageRow, message_id) is None:
                        raise KeyError(f"no message {message_id!r} in the log")
                    who = col(FeedbackRow.user).is_(None) if user is None else FeedbackRow.user == user
                    row = s.exec(select(FeedbackRow).where(FeedbackRow.message_id == message_id, who)).first()
                    if row is None:
                        row = FeedbackRow(id=new_id(), message_id=message_id, rating=rating,
                                          comment=comment, correction=correction, user=user)
                        s.add(row)
                    else:
                        row.rating, row.comment, row.correction = rating, comment, correction
                        row.updated_at = utcnow()
                    return row.id
            except IntegrityError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def set_opt_out(self, *, user: str, opted_out: bool = True) -> None:
        """Keep (or stop keeping) a user's conversations, past and future, out of exports."""
        with self._write() as s:
            row = s.get(OptOutRow, user)
            if opted_out and row is None:
                s.add(OptOutRow(user=user))
            elif not opted_out and row is not None:
                s.delete(row)
            s.exec(update(ConversationRow).where(col(ConversationRow.user) == user).values(opted_out=opted_out))

    def apply_retention(self, days: int) -> int:
        """Delete conversations idle for more than `days` days; returns how many were deleted."""
        if days < 1:
            raise ValueError(f"retention must be at least 1 day, not {days!r} (0 means keep forever: don't call)")
        cutoff = utcnow() - timedelta(days=days)
        old = select(ConversationRow.id).where(ConversationRow.updated_at < cutoff)
        msgs = select(MessageRow.id).where(col(MessageRow.conversation_id).in_(old))
        with self._write() as s:
            n = s.exec(select(func.count()).select_from(old.subquery())).one()
            if not n:
                return 0
            s.exec(delete(FeedbackRow).where(col(FeedbackRow.message_id).in_(msgs)))
            s.exec(delete(SourceRow).where(col(SourceRow.message_id).in_(msgs)))
            if self.db.dialect == "sqlite":
                s.connection().execute(text(
                    "DELETE FROM messages_fts WHERE message_id IN (SELECT m.id FROM messages m "
                    "JOIN conversations c ON c.id = m.conversation_id WHERE c.updated_at < :cutoff)"),
                    {"cutoff": cutoff.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")})
            s.exec(delete(MessageRow).where(col(MessageRow.conversation_id).in_(old)))
            s.exec(delete(ConversationRow).where(col(ConversationRow.updated_at) < cutoff))
        return int(n)

    # -- reading -------------------------------------------------------------------------

    def history(self, conversation_id: str) -> list[LoggedMessage]:
        """The conversation's messages, oldest first."""
        with self._read() as s:
            _conversation(s, conversation_id)
            return [LoggedMessage.from_row(r) for r in _messages(s, conversation_id)]

    def get_conversation(self, conversation_id: str) -> ConversationDetail:
        """The conversation with every message, its sources and its feedback."""
        with self._read() as s:
            conv = _conversation(s, conversation_id)
            messages = [LoggedMessage.from_row(r) for r in _messages(s, conversation_id)]
            by_id = {m.id: m for m in messages}
            ids = list(by_id)
            if ids:
                for src in s.exec(select(SourceRow).where(col(SourceRow.message_id).in_(ids))
                                  .order_by(SourceRow.message_id, SourceRow.rank)):
                    by_id[src.message_id].sources.append(LoggedSource.from_row(src))
                for fb in s.exec(select(FeedbackRow).where(col(FeedbackRow.message_id).in_(ids))
                                 .order_by(FeedbackRow.id)):
                    by_id[fb.message_id].feedback.append(LoggedFeedback.from_row(fb))
            return ConversationDetail.from_row(conv, messages)

    def list_conversations(self, *, user: str | None = None, limit: int = 50) -> list[ConversationSummary]:
        """Most recently active first."""
        counts = (select(MessageRow.conversation_id, func.count().label("n"))
                  .group_by(MessageRow.conversation_id).subquery())
        query = (select(ConversationRow, func.coalesce(counts.c.n, 0))
                 .join(counts, counts.c.conversation_id == ConversationRow.id, isouter=True)
                 .order_by(col(ConversationRow.updated_at).desc(), col(ConversationRow.id).desc())
                 .limit(limit))
        if user is not None:
            query = query.where(ConversationRow.user == user)
        with self._read() as s:
            return [ConversationSummary(c.id, c.title, c.user, aware(c.created_at), int(n), aware(c.updated_at))
                    for c, n in s.exec(query)]

    def search(self, text: str, *, limit: int = 20) -> list[LoggedMessage]:
        """Messages matching `text`: full-text first, substring match when that finds nothing."""
        if not text.strip():
            return []
        with self._read() as s:
            ids = _full_text_ids(s, self.db.dialect, text, limit)
            if not ids:
                pattern = "%" + re.sub(r"([\\%_])", r"\\\1", text.strip()) + "%"
                rows = s.exec(select(MessageRow).where(col(MessageRow.content).ilike(pattern, escape="\\"))
                              .order_by(col(MessageRow.id).desc()).limit(limit)).all()
                return [LoggedMessage.from_row(r) for r in rows]
            rows = {r.id: r for r in s.exec(select(MessageRow).where(col(MessageRow.id).in_(ids)))}
            return [LoggedMessage.from_row(rows[i]) for i in ids if i in rows]

    def export(self, *, rated_only: bool = False, since: datetime | None = None,
               include_opted_out: bool = False, audience: Collection[str] | None = None,
               collections_of: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """Answered questions as chat-format training records (see `reports.export_records`);
        `audience` keeps the conversations that drew on those collections alone.

        With redaction on, the records are scrubbed again on the way out: rows written before
        `redact = true` was set, or before a pattern was added, must not reach training data."""
        with self._read() as s:
            records = reports.export_records(s, rated_only=rated_only, since=since,
                                             include_opted_out=include_opted_out, audience=audience,
                                             collections_of=collections_of)
        return [_scrubbed_record(r) for r in records] if self.redact else records

    def stats(self) -> dict[str, Any]:
        """Usage and quality figures (see `reports.stats`)."""
        with self._read() as s:
            return reports.stats(s)


def _scrubbed_record(record: dict[str, Any]) -> dict[str, Any]:
    """An export record with its texts redacted (ids, dates and flags are left as they are)."""
    texts = {key: scrub(record[key]) for key in ("correction", "original") if record.get(key)}
    messages = [{**m, "content": scrub(m["content"])} for m in record["messages"]]
    return {**record, **texts, "messages": messages}


def _insert_rows(conn: Connection, table: Any, rows: list[dict[str, Any]]) -> None:
    """Insert rows as one multi-row INSERT: asking for RETURNING makes SQLAlchemy batch them
    ("insertmanyvalues", a cached statement) where a plain executemany costs PostgreSQL a
    pipelined statement per row, about three times slower for an answer's five sources."""
    conn.execute(insert(table).returning(table.c.id), rows).all()


def _collections_text(collections: Sequence[str] | None, sources: Sequence[Source]) -> str:
    names = set(collections) if collections is not None else {getattr(s, "collection", "") for s in sources}
    return ",".join(sorted(n for n in names if n))


def _opted_out(conn: Connection, user: str) -> bool:
    return conn.execute(select(OptOutRow.user).where(OptOutRow.user == user)).first() is not None


def _conversation(s: Session, conversation_id: str) -> ConversationRow:
    conv = s.get(ConversationRow, conversation_id)
    if conv is None:
        raise KeyError(f"no conversation {conversation_id!r} in the log")
    return conv


def _messages(s: Session, conversation_id: str) -> list[MessageRow]:
    return list(s.exec(select(MessageRow).where(MessageRow.conversation_id == conversation_id)
                       .order_by(MessageRow.created_at, MessageRow.id)))


def _full_text_ids(s: Session, dialect: str, query: str, limit: int) -> list[str]:
    """Message ids ranked by relevance; [] when the query has no searchable words."""
    words = re.findall(r"\w+", query)
    if not words:
        return []
    conn = s.connection()
    if dialect == "sqlite":
        match = " ".join('"' + w.replace('"', '""') + '"' for w in words)  # quoted: no FTS syntax
        sql = ("SELECT f.message_id FROM messages_fts f JOIN messages m ON m.id = f.message_id "
               "WHERE messages_fts MATCH :q ORDER BY f.rank LIMIT :n")
        return [r[0] for r in conn.execute(text(sql), {"q": match, "n": limit})]
    sql = ("SELECT id FROM messages WHERE to_tsvector('simple', content) @@ plainto_tsquery('simple', :q) "
           "ORDER BY ts_rank(to_tsvector('simple', content), plainto_tsquery('simple', :q)) DESC, id DESC LIMIT :n")
    return [r[0] for r in conn.execute(text(sql), {"q": " ".join(words), "n": limit})]
