"""Read-side reports over the log: training exports and usage statistics."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Collection, Mapping

from sqlalchemy import case, func
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from assistant.log.models import ConversationRow, FeedbackRow, MessageRow, SourceRow, utcnow
from assistant.log.records import aware

LOW_RATING = 0  # an answer rated below this had no good source


def _utc(value: datetime) -> datetime:
    """Naive datetimes are taken to be UTC already."""
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def export_records(s: Session, *, rated_only: bool = False, since: datetime | None = None,
                   include_opted_out: bool = False, audience: Collection[str] | None = None,
                   collections_of: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """One chat-format record per complete answer, oldest first.

    `{"messages": [{"role": "user", ...}, {"role": "assistant", ...}], "rating", "correction",
    "conversation_id", "message_id", "user", "created_at", "task", "declined"}`. When a user
    supplied a correction it REPLACES the assistant's content (that is what should be learnt)
    and the model's text moves to `"original"`. With several users' feedback the latest wins.
    `rated_only` keeps answers with a non-zero rating or a correction.

    Each record carries `"collections"`: every document collection its CONVERSATION drew on (an
    earlier answer is in the prompt of a later one). With `audience`, only conversations drawing on
    those collections alone are kept: a model trained on them can repeat them to whoever it serves.
    `collections_of` (path -> collection, from the index) labels answers logged before collections
    were recorded, and catches documents moved out of an audience's collections since.
    """
    question = aliased(MessageRow)
    query = (
        select(MessageRow, question.content, ConversationRow.user)
        .join(question, question.id == MessageRow.parent_id)
        .join(ConversationRow, ConversationRow.id == MessageRow.conversation_id)
        .where(MessageRow.role == "assistant", MessageRow.status == "complete")
        .order_by(MessageRow.created_at, MessageRow.id)
    )
    if since is not None:
        query = query.where(MessageRow.created_at >= _utc(since))
    if not include_opted_out:
        query = query.where(col(ConversationRow.opted_out).is_(False))
    rows = s.exec(query).all()
    feedback = _latest_feedback(s, [r[0].id for r in rows])
    drawn = conversation_collections(s, {r[0].conversation_id for r in rows}, collections_of or {})
    out = []
    for answer, question_text, user in rows:
        used = drawn.get(answer.conversation_id, set())
        if audience is not None and not used <= set(audience):
            continue
        fb = feedback.get(answer.id)
        rating = fb.rating if fb else None
        correction = fb.correction if fb and fb.correction else None
        if rated_only and not (rating or correction):
            continue
        record: dict[str, Any] = {
            "messages": [{"role": "user", "content": question_text},
                         {"role": "assistant", "content": correction or answer.content}],
            "rating": rating, "correction": correction,
            "conversation_id": answer.conversation_id, "message_id": answer.id, "user": user,
            "created_at": aware(answer.created_at).isoformat(), "task": answer.task,
            "declined": bool(answer.declined), "model": answer.model, "collections": sorted(used),
        }
        if correction:
            record["original"] = answer.content
        out.append(record)
    return out


def conversation_collections(s: Session, conversation_ids: Collection[str],
                             collections_of: Mapping[str, str]) -> dict[str, set[str]]:
    """conversation id -> the collections its answers drew on: as recorded, plus the current collection
    of every source path (a path no longer indexed counts as `shared` only when nothing else is known:
    it was logged before collections existed, when every document was shared)."""
    out: dict[str, set[str]] = {}
    ids = list(conversation_ids)
    for start in range(0, len(ids), 500):  # stay under SQL parameter limits
        chunk = ids[start:start + 500]
        for cid, recorded in s.exec(select(MessageRow.conversation_id, MessageRow.collections)
                                    .where(col(MessageRow.conversation_id).in_(chunk), MessageRow.role == "assistant")):
            out.setdefault(cid, set()).update(c for c in (recorded or "").split(",") if c)
        for cid, path in s.exec(select(MessageRow.conversation_id, SourceRow.path)
                                .join(SourceRow, SourceRow.message_id == MessageRow.id)
                                .where(col(MessageRow.conversation_id).in_(chunk))):
            out.setdefault(cid, set()).add(collections_of.get(path, "shared"))
    return out


def _latest_feedback(s: Session, message_ids: list[str]) -> dict[str, FeedbackRow]:
    latest: dict[str, FeedbackRow] = {}
    for start in range(0, len(message_ids), 500):  # stay under SQL parameter limits
        chunk = message_ids[start:start + 500]
        for fb in s.exec(select(FeedbackRow).where(col(FeedbackRow.message_id).in_(chunk))
                         .order_by(FeedbackRow.updated_at, FeedbackRow.id)):
            latest[fb.message_id] = fb  # ascending: the last one seen is the latest
    return latest


def stats(s: Session, *, days: int = 30, top: int = 10) -> dict[str, Any]:
    """Questions per day (last `days` days), share declined, ratings, and the questions most
    often asked without a good source (the answer declined, or rated below zero)."""
    count = lambda q: int(s.exec(q).one())  # noqa: E731
    n_conv = count(select(func.count()).select_from(ConversationRow))
    n_questions = count(select(func.count()).where(MessageRow.role == "user"))
    by_status = dict(s.exec(select(MessageRow.status, func.count()).where(MessageRow.role == "assistant")
                            .group_by(MessageRow.status)).all())
    n_declined = count(select(func.count()).where(MessageRow.role == "assistant", MessageRow.status == "complete",
                                                  col(MessageRow.declined).is_(True)))
    n_ratings, avg_rating = s.exec(select(func.count(), func.avg(FeedbackRow.rating))).one()
    thumbs = dict(s.exec(select(FeedbackRow.rating, func.count()).group_by(FeedbackRow.rating)).all())

    day = func.date(MessageRow.created_at)
    cutoff = utcnow() - timedelta(days=days)
    per_day = s.exec(select(day, func.count()).where(MessageRow.role == "user", MessageRow.created_at >= cutoff)
                     .group_by(day).order_by(day)).all()

    question = aliased(MessageRow)
    low = select(FeedbackRow.message_id).where(FeedbackRow.rating < LOW_RATING)
    normalized = func.lower(func.trim(question.content))
    declined_n = func.sum(case((col(MessageRow.declined).is_(True), 1), else_=0))
    low_n = func.sum(case((col(MessageRow.id).in_(low), 1), else_=0))
    unanswered = s.exec(
        select(normalized, func.count(), declined_n, low_n, func.max(question.content))
        .join(question, question.id == MessageRow.parent_id)
        .where(MessageRow.role == "assistant", MessageRow.status == "complete",
               (col(MessageRow.declined).is_(True)) | col(MessageRow.id).in_(low))
        .group_by(normalized).order_by(func.count().desc(), normalized).limit(top)
    ).all()
    n_complete = int(by_status.get("complete", 0))
    return {
        "conversations": n_conv,
        "questions": n_questions,
        "answers": n_complete,
        "incomplete": int(by_status.get("incomplete", 0)),
        "errors": int(by_status.get("error", 0)),
        "declined": n_declined,
        "declined_share": n_declined / n_complete if n_complete else 0.0,
        "ratings": int(n_ratings),
        "average_rating": float(avg_rating) if avg_rating is not None else None,
        "thumbs_up": int(thumbs.get(1, 0)), "thumbs_down": int(thumbs.get(-1, 0)),
        "questions_per_day": [{"day": str(d), "questions": int(n)} for d, n in per_day],
        "unanswered": [{"question": example, "count": int(n), "declined": int(d or 0), "low_rated": int(lr or 0)}
                       for _, n, d, lr, example in unanswered],
    }
