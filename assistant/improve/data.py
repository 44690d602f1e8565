"""From the conversation log's rated answers to one cycle's training, held-out and preference data.

Rules (each one is a safety rail, so each is counted in the cycle report):
- accepted answer = a correction (it replaces the rejected answer) or an answer rated +1;
  a thumbs-down without a correction teaches nothing usable and is only counted;
- one record per answer: the log keeps one feedback row per user and message and the export
  keeps the latest, so many users rating the same answer count once;
- duplicates (same normalised question and answer) are dropped, and for the same normalised
  question the latest accepted answer wins;
- the held-out set is decided by a hash of the normalised question, so a question (and every
  copy of it) is held out in every cycle or in none: cycles stay comparable and nothing held
  out is ever trained on;
- preference pairs: chosen = the correction, rejected = the answer it replaced.
Opted-out users never reach this module: `ConversationLog.export` leaves them out.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from assistant.tasks.qa import DECLINE, UNSUPPORTED_NOTE
from finetune.data import in_validation

_SPACE = re.compile(r"\s+")
_PUNCT = re.compile(r"[^\w\s]", re.UNICODE)


def normalize_question(text: str) -> str:
    """Lower-case, NFKC, punctuation dropped, whitespace collapsed: 'How  do I X?' == 'how do i x'."""
    text = unicodedata.normalize("NFKC", text or "").lower()
    return _SPACE.sub(" ", _PUNCT.sub(" ", text)).strip()


_CITATION = re.compile(r"\s*\[\d+(?:\s*,\s*\d+)*\]")


def clean_answer(text: str) -> str:
    """The answer's words only: no citation marks, no 'may not be supported' note, no source list.

    The QA task appends these itself, so training targets and scored answers leave them out.
    """
    text = (text or "").split(UNSUPPORTED_NOTE.split(";")[0])[0]  # the note's head: robust to wording after it
    text = re.sub(r"(?m)^> .*$", "", text)  # the evidence quoted under an answer is the document's, not the model's
    if text.startswith(DECLINE):
        text = DECLINE
    return " ".join(_CITATION.sub("", text).split())


def is_held_out(question: str, fraction: float) -> bool:
    """True when this question belongs to the fixed evaluation set (never trained on).

    The same hash split as fine-tuning's validation set (`finetune.data.in_validation`), over the
    normalised question so every copy of a question falls on the same side.
    """
    return in_validation(normalize_question(question), fraction)


@dataclass
class Accepted:
    """A logged question with the answer users accepted (rated +1, or their correction)."""

    message_id: str
    question: str
    answer: str
    kind: str  # "positive" | "correction"
    declined: bool = False  # the logged answer declined, and users agreed (rating +1)
    rejected: str | None = None  # the model's answer a correction replaced
    created_at: str = ""
    user: str | None = None

    @property
    def key(self) -> str:
        return normalize_question(self.question)

    def to_json(self) -> dict[str, Any]:
        return {"message_id": self.message_id, "question": self.question, "answer": self.answer,
                "kind": self.kind, "declined": self.declined, "created_at": self.created_at}


@dataclass
class CycleData:
    train: list[Accepted]  # new (not yet learnt by the served model), not held out
    replay: list[Accepted]  # learnt in earlier cycles, replayed so they are not forgotten
    heldout: list[Accepted]  # every held-out record known so far (stable across cycles)
    pairs: list[dict[str, str]]  # {"prompt", "chosen", "rejected"}
    counts: dict[str, int] = field(default_factory=dict)


def accepted_from_records(records: list[dict[str, Any]]) -> tuple[list[Accepted], dict[str, int]]:
    """Rated export records -> accepted answers (oldest first), with counts of what was skipped."""
    counts = {"exported": len(records), "positive": 0, "corrections": 0, "negative_without_correction": 0,
              "unrated": 0, "not_qa": 0}
    out: list[Accepted] = []
    for rec in records:
        msgs = rec.get("messages") or []
        if len(msgs) < 2 or rec.get("task", "qa") not in ("qa", "auto", None):
            counts["not_qa"] += 1
            continue
        question, content = msgs[0].get("content", ""), msgs[-1].get("content", "")
        correction = (rec.get("correction") or "").strip()
        if correction:
            counts["corrections"] += 1
            out.append(Accepted(rec["message_id"], question, clean_answer(correction), "correction",
                                rejected=clean_answer(rec.get("original") or ""), created_at=rec.get("created_at", ""),
                                user=rec.get("user")))
        elif rec.get("rating") == 1 and content.strip():
            counts["positive"] += 1
            out.append(Accepted(rec["message_id"], question, clean_answer(content), "positive",
                                declined=bool(rec.get("declined")), created_at=rec.get("created_at", ""),
                                user=rec.get("user")))
        elif rec.get("rating") == -1:
            counts["negative_without_correction"] += 1
        else:
            counts["unrated"] += 1
    return out, counts


def dedupe(items: list[Accepted]) -> tuple[list[Accepted], int]:
    """One accepted answer per normalised question, the latest winning; returns (kept, dropped)."""
    latest: dict[str, Accepted] = {}
    for item in items:  # oldest first, so later ones replace earlier ones
        latest.pop(item.key, None)
        latest[item.key] = item
    return list(latest.values()), len(items) - len(latest)


def build_cycle_data(records: list[dict[str, Any]], *, learnt: set[str], heldout_fraction: float,
                     known_heldout: dict[str, dict[str, Any]] | None = None, replay: int = 32) -> CycleData:
    """Split the export into new training examples, replay, the held-out set and preference pairs.

    `learnt` holds the message ids the served model was already trained on (promoted cycles);
    `known_heldout` is the held-out set recorded by earlier cycles (kept even if the log forgets it).
    """
    accepted, counts = accepted_from_records(records)
    unique, dropped = dedupe(accepted)
    counts["duplicates_removed"] = dropped
    heldout = {h["message_id"]: Accepted(**{k: h[k] for k in ("message_id", "question", "answer", "kind",
                                                               "declined", "created_at")})
               for h in (known_heldout or {}).values()}
    train, old = [], []
    for item in unique:
        if is_held_out(item.question, heldout_fraction):
            heldout.setdefault(item.message_id, item)
        elif item.message_id in learnt:
            old.append(item)
        elif item.declined:
            counts["declined_not_trained"] = counts.get("declined_not_trained", 0) + 1
        else:
            train.append(item)
    # A held-out question asked again later must not slip into training under a new message id.
    held_keys = {h.key for h in heldout.values()}
    leaked = [t for t in train if t.key in held_keys]
    train = [t for t in train if t.key not in held_keys]
    counts["heldout_overlap_removed"] = len(leaked)
    pairs = [{"prompt": t.question, "chosen": t.answer, "rejected": t.rejected}
             for t in train if t.kind == "correction" and t.rejected and t.rejected.strip() != t.answer.strip()]
    counts.update(train_new=len(train), replay=min(len(old), replay), heldout=len(heldout),
                  heldout_declined=sum(h.declined for h in heldout.values()), preference_pairs=len(pairs))
    return CycleData(train, old[-replay:] if replay else [], sorted(heldout.values(), key=lambda h: h.message_id),
                     pairs, counts)
