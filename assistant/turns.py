"""One turn of a conversation, recorded: earlier turns read, the question written before the answer
is generated, then the answer (or why it stopped) written after.

With the log on, the question and an empty `incomplete` answer are written in one transaction
before generation (a crash leaves them marked), and the finished answer is written off the
answer's critical path (`finish_answer_later`). With the log off, turns are kept in memory so
follow-ups in the same process still see their conversation.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Collection

from assistant.types import Answer

if TYPE_CHECKING:
    from assistant.log import ConversationLog

HISTORY_TURNS = 6  # earlier messages handed to tasks; they trim further to the token budget

History = list[dict[str, str]]


@dataclass
class Turn:
    conversation_id: str
    message_id: str | None  # the answer's row in the log; None when the log is off


class TurnRecorder:
    """Reads and writes one conversation's turns in the log, or in `memory` when the log is off."""

    def __init__(self, log: ConversationLog | None, memory: dict[str, History]):
        self.log = log
        self.memory = memory

    def history(self, conversation_id: str | None, supplied: History | None = None) -> History:
        """The latest earlier turns: the log's (or memory's) for a conversation id, else `supplied`
        (callers that keep the conversation themselves, like OpenAI-style clients)."""
        if conversation_id or not supplied:
            turns = self._stored_history(conversation_id) if conversation_id else []
        else:
            turns = [{"role": m["role"], "content": m["content"]} for m in supplied
                     if m.get("role") in ("user", "assistant") and m.get("content")]
        return turns[-HISTORY_TURNS:]

    def history_within(self, conversation_id: str | None, supplied: History | None,
                       readable: Collection[str] | None) -> tuple[History, set[str]]:
        """`history`, less the earlier answers that drew on a collection outside `readable` (access
        revoked since: the answer's text quotes it), and the collections the kept answers drew on."""
        if not conversation_id or self.log is None:
            return self.history(conversation_id, supplied), set()
        kept, drawn = [], set()
        for m in self._stored_messages(conversation_id):
            used = set(getattr(m, "collections", []) or [])
            if m.role == "assistant" and readable is not None and not used <= set(readable):
                continue
            drawn |= used
            kept.append({"role": m.role, "content": m.content})
        return kept[-HISTORY_TURNS:], drawn

    def _stored_history(self, conversation_id: str) -> History:
        if self.log is None:
            return list(self.memory.get(conversation_id, []))
        return [{"role": m.role, "content": m.content} for m in self._stored_messages(conversation_id)]

    def _stored_messages(self, conversation_id: str) -> list:
        if not self.log.conversation_exists(conversation_id):
            raise KeyError(f"no conversation {conversation_id!r} in this workspace")
        return [m for m in self.log.history(conversation_id)
                if m.role in ("user", "assistant") and m.content and getattr(m, "status", "complete") == "complete"]

    def begin(self, conversation_id: str | None, question: str, *, task: str, model: str,
              user: str | None, options: dict[str, Any]) -> Turn:
        """Write the question and an empty `incomplete` answer (a new conversation when there is no id)."""
        if self.log is None:
            return Turn(conversation_id or uuid.uuid4().hex, None)
        cid, _question_id, answer_id = self.log.begin_turn(conversation_id or None, question, task=task,
                                                           model=model, user=user, options=options)
        return Turn(cid, answer_id)

    def fail(self, turn: Turn, exc: BaseException) -> None:
        """The answer stopped: `incomplete` when the reader walked away, `error` when something broke."""
        if self.log is None:
            return
        status = "incomplete" if isinstance(exc, GeneratorExit) else "error"
        self.log.finish_answer(turn.message_id, content=f"[{status}: {type(exc).__name__}: {exc}]",
                               sources=[], status=status)

    def finish(self, turn: Turn, question: str, answer: Answer) -> None:
        """Store the answer with its sources (and which ones a supported sentence cites) and timings."""
        if self.log is None:
            self.memory.setdefault(turn.conversation_id, []).extend(
                [{"role": "user", "content": question}, {"role": "assistant", "content": answer.text}])
            return
        from assistant.log.records import timing_columns  # the log package loads SQLModel: only once a log is open

        self.log.finish_answer_later(
            turn.message_id, content=answer.text, sources=answer.sources,
            supported=[_source_supported(answer, i + 1) for i in range(len(answer.sources))],
            declined=answer.declined, collections=answer.collections, **timing_columns(answer.timings))


def _source_supported(answer: Answer, number: int) -> bool:
    """A source counts as a supported citation when a supported sentence cites it."""
    return any(number in s.citations and s.supported for s in answer.sentences)
