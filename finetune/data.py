"""Training data: documents, Q&A / chat files and the conversation log, validated and tokenised.

Three sources become one list of `Example`s (input_ids + labels, -100 where no loss is taken):

- documents (continued pre-training): every token is a target, documents are joined with the
  end-of-sequence token and packed into blocks of `max_length` so no compute goes to padding;
- Q&A / chat JSONL (SFT): rendered with the model's chat template, loss on the assistant's
  tokens only, so the model learns to answer rather than to echo questions;
- the conversation log's export: positively rated answers and corrections become chats.

Bad records raise `DataError` naming the file and line: one typo should not cost a silent
half-sized training set. The train/validation split hashes each record's content, so it is the
same on every run and every rank, and adding a record never moves the others.
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finetune.documents import Document, load_documents, load_index_chunks
from finetune.errors import DataError
from finetune.split import in_validation, split
from foundation import jsonl as foundation_jsonl

# Re-exported: callers and tests import these from here, where the data set is built.
__all__ = ["Chat", "DataError", "Dataset", "Document", "Example", "build_dataset", "in_validation", "load_documents",
           "load_index_chunks", "load_log", "load_qa", "pack_documents", "split", "tokenize_chat"]

log = logging.getLogger(__name__)

ROLES = {"system", "user", "assistant"}
IGNORE = -100  # label that PyTorch's cross-entropy skips


@dataclass
class Example:
    """One training sequence. `labels[i]` is the target for position i (-100 = no loss)."""

    input_ids: list[int]
    labels: list[int]
    source: str = ""  # "docs" | "qa" | "log": lets reports count per source

    @property
    def n_targets(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE)


@dataclass
class Chat:
    """A validated conversation: alternating messages, at least one from the assistant."""

    messages: list[dict[str, str]]
    origin: str  # "path:line", for error messages and the split hash
    source: str = "qa"


@dataclass
class Dataset:
    """Tokenised train/validation examples plus what went into them."""

    train: list[Example]
    val: list[Example]
    val_chats: list[Chat] = field(default_factory=list)  # held-out Q&A for exact match / F1
    stats: dict[str, Any] = field(default_factory=dict)
    fingerprint: str = ""


# --- reading and validating ------------------------------------------------------------------


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each non-blank line; a bad line raises `DataError`."""
    try:
        yield from foundation_jsonl.read_jsonl(path)
    except foundation_jsonl.JsonlError as exc:
        raise DataError(str(exc)) from None


def _check_messages(messages: Any, where: str) -> list[dict[str, str]]:
    if not isinstance(messages, list) or not messages:
        raise DataError(f"{where}: 'messages' must be a non-empty list")
    clean = []
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise DataError(f"{where}: messages[{i}] must be an object with 'role' and 'content'")
        role, content = msg.get("role"), msg.get("content")
        if role not in ROLES:
            raise DataError(f"{where}: messages[{i}].role must be one of {sorted(ROLES)}, got {role!r}")
        if not isinstance(content, str):
            raise DataError(f"{where}: messages[{i}].content must be a string")
        clean.append({"role": role, "content": content})
    if not any(m["role"] == "assistant" and m["content"].strip() for m in clean):
        raise DataError(f"{where}: no non-empty assistant message to learn from")
    return clean


def qa_record_to_chat(obj: dict[str, Any], where: str, source: str = "qa") -> Chat:
    """`{"question","answer"[,"context"]}` or `{"messages":[...]}` -> `Chat`."""
    if "messages" in obj:
        return Chat(_check_messages(obj["messages"], where), where, source)
    q, a = obj.get("question"), obj.get("answer")
    if not isinstance(q, str) or not q.strip():
        raise DataError(f"{where}: expected 'question' (non-empty string) and 'answer', or 'messages'")
    if not isinstance(a, str) or not a.strip():
        raise DataError(f"{where}: 'answer' must be a non-empty string")
    ctx = obj.get("context")
    if ctx is not None and not isinstance(ctx, str):
        raise DataError(f"{where}: 'context' must be a string when given")
    user = f"Context:\n{ctx}\n\nQuestion: {q}" if ctx else q
    return Chat([{"role": "user", "content": user}, {"role": "assistant", "content": a}], where, source)


def load_qa(path: Path) -> list[Chat]:
    """Read a Q&A or chat JSONL file, validating every line."""
    chats = [qa_record_to_chat(obj, f"{path}:{n}") for n, obj in read_jsonl(path)]
    if not chats:
        raise DataError(f"{path}: no records")
    return chats


def log_records_to_chats(records: Iterable[tuple[str, dict[str, Any]]]) -> tuple[list[Chat], dict[str, int]]:
    """Keep positively rated answers and corrections; skip the rest, counting why.

    A correction's `messages` already carry the corrected text, so a thumbs-down answer that
    someone fixed is good data; a thumbs-down without a fix teaches nothing we can use.
    """
    kept: list[Chat] = []
    counts = {"kept_positive": 0, "kept_correction": 0, "skipped_negative": 0, "skipped_unrated": 0}
    for where, obj in records:
        rating = obj.get("rating", 0)
        if rating not in (1, -1, 0, None):
            raise DataError(f"{where}: 'rating' must be 1, -1, 0 or null, got {rating!r}")
        correction = obj.get("correction")
        if correction is not None and not isinstance(correction, str):
            raise DataError(f"{where}: 'correction' must be a string or null")
        messages = _check_messages(obj.get("messages"), where)
        if correction and correction.strip():
            counts["kept_correction"] += 1
        elif rating == 1:
            counts["kept_positive"] += 1
        elif rating == -1:
            counts["skipped_negative"] += 1
            continue
        else:
            counts["skipped_unrated"] += 1
            continue
        kept.append(Chat(messages, where, "log"))
    return kept, counts


def load_log(path: Path) -> tuple[list[Chat], dict[str, int]]:
    """Read the conversation log's JSONL export (`assistant logs export`)."""
    return log_records_to_chats((f"{path}:{n}", obj) for n, obj in read_jsonl(path))


# --- split and fingerprint -------------------------------------------------------------------


def _chat_key(chat: Chat) -> str:
    return json.dumps(chat.messages, sort_keys=True, ensure_ascii=False)


def fingerprint(parts: Iterable[str]) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()[:16]


# --- tokenising ------------------------------------------------------------------------------


def render_chat(tokenizer, messages: list[dict[str, str]], add_generation_prompt: bool = False) -> str:
    """The model's chat template, or a plain "User:/Assistant:" layout for base models without one."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
    eos = tokenizer.eos_token or ""
    out = "".join(
        f"{m['role'].capitalize()}: {m['content']}{eos if m['role'] == 'assistant' else ''}\n" for m in messages
    )
    return out + ("Assistant: " if add_generation_prompt else "")


def assistant_spans(tokenizer, messages: list[dict[str, str]]) -> tuple[str, list[tuple[int, int]]]:
    """Render a chat and return the character spans of each assistant reply (with its end token).

    Each reply's span is what rendering up to and including it adds to rendering the prompt before
    it, so it works for any template whose renderings of prefixes are prefixes of the whole.
    """
    full = render_chat(tokenizer, messages)
    spans = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        before = render_chat(tokenizer, messages[:i], add_generation_prompt=True)
        upto = render_chat(tokenizer, messages[: i + 1])
        if not (upto.startswith(before) and full.startswith(upto)):
            raise DataError("the tokenizer's chat template does not render prefixes consistently; cannot mask prompts")
        end = len(upto.rstrip())
        spans.append((len(before), end))
    return full, spans


def tokenize_chat(tokenizer, chat: Chat, max_length: int) -> Example | None:
    """Chat -> Example with labels only on assistant tokens; None if truncation leaves no target."""
    text, spans = assistant_spans(tokenizer, chat.messages)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    labels = [
        tok if any(s <= start < e for s, e in spans) and end > start else IGNORE
        for tok, (start, end) in zip(ids, offsets)
    ]
    ids, labels = ids[:max_length], labels[:max_length]
    if all(x == IGNORE for x in labels[1:]):  # position 0 is never a target after the shift
        return None
    return Example(ids, labels, chat.source)


def pack_documents(tokenizer, docs: list[Document], max_length: int, min_tail: int = 16) -> list[Example]:
    """Concatenate documents (joined by EOS) and cut into `max_length` blocks: no padding wasted."""
    eos = tokenizer.eos_token_id
    stream: list[int] = []
    for d in docs:
        stream.extend(tokenizer(d.text, add_special_tokens=False)["input_ids"])
        if eos is not None:
            stream.append(eos)
    blocks = []
    for i in range(0, len(stream), max_length):
        block = stream[i : i + max_length]
        if len(block) >= min_tail or not blocks:
            blocks.append(Example(block, list(block), "docs"))
    return blocks


def build_dataset(
    tokenizer,
    *,
    docs: Iterable[Path] = (),
    qa: Iterable[Path] = (),
    logs: Iterable[Path] = (),
    log_records: Iterable[dict[str, Any]] | None = None,
    documents: Iterable[Document] = (),
    max_length: int = 512,
    val_fraction: float = 0.1,
) -> Dataset:
    """Read, validate, split (by record) and tokenise every source into one `Dataset`."""
    docs, qa, logs = [Path(p) for p in docs], [Path(p) for p in qa], [Path(p) for p in logs]
    extra_docs = list(documents)
    if not (docs or qa or logs or extra_docs or log_records is not None):
        raise DataError("no training data: give documents (--docs/--from-index), Q&A files (--qa) or a log export (--logs/--from-log)")
    stats: dict[str, Any] = {}
    chats: list[Chat] = []
    for path in qa:
        loaded = load_qa(path)
        chats.extend(loaded)
        stats["qa_records"] = stats.get("qa_records", 0) + len(loaded)
    log_counts: dict[str, int] = {}
    for path in logs:
        kept, counts = load_log(path)
        chats.extend(kept)
        log_counts = {k: log_counts.get(k, 0) + v for k, v in counts.items()}
    if log_records is not None:
        kept, counts = log_records_to_chats((f"log[{i}]", r) for i, r in enumerate(log_records))
        chats.extend(kept)
        log_counts = {k: log_counts.get(k, 0) + v for k, v in counts.items()}
    if log_counts:
        stats["log"] = log_counts
    documents = (load_documents(docs) if docs else []) + extra_docs
    stats["documents"] = len(documents)

    train_chats, val_chats = split(chats, _chat_key, val_fraction)
    train_docs, val_docs = split(documents, lambda d: d.text, val_fraction)
    train: list[Example] = pack_documents(tokenizer, train_docs, max_length) if train_docs else []
    val: list[Example] = pack_documents(tokenizer, val_docs, max_length) if val_docs else []
    dropped = 0
    for group, out in ((train_chats, train), (val_chats, val)):
        for chat in group:
            ex = tokenize_chat(tokenizer, chat, max_length)
            if ex is None:
                dropped += 1
            else:
                out.append(ex)
    if dropped:
        log.warning("%d chats dropped: their assistant reply starts after max_length=%d tokens", dropped, max_length)
    if not train:
        raise DataError("no training examples left after validation split and truncation; add data or raise --max-length")
    stats.update(
        train_examples=len(train), val_examples=len(val), dropped_too_long=dropped,
        train_target_tokens=sum(e.n_targets for e in train),
    )
    fp = fingerprint(
        [str(max_length), str(val_fraction), getattr(tokenizer, "name_or_path", "")]
        + [_chat_key(c) for c in chats]
        + [hashlib.sha1(d.text.encode()).hexdigest() for d in documents]
    )
    return Dataset(train, val, [c for c in val_chats if c.messages[-1]["role"] == "assistant"], stats, fp)
