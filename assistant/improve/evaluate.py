"""Scoring one model the way users meet it: held-out questions through the assistant, plus a sanity set.

Held-out questions go through `Assistant.ask(q, model=..., log=False)`: retrieval, the prompt,
the model and the grounding checks, exactly as served. Scores:
- token F1 / exact match (SQuAD normalisation) of the answer's words against the accepted answer
  (citation marks, the quoted evidence and the "may not be supported" note are stripped first;
  an answer quoted from the documents instead of the model's scores 0: the model's words failed);
- citation accuracy: the answer cites a passage of the document that holds the accepted answer;
- decline accuracy: questions users agreed should be declined are still declined;
- sanity: a small fixed set of general questions, answered closed-book, so a candidate that
  learnt the domain by forgetting how to answer anything else is caught.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from assistant.improve.data import Accepted, clean_answer
from foundation.jsonl import read_jsonl
from index.collections import SHARED

SANITY_FILE = Path(__file__).resolve().parent.parent / "sanity_set.jsonl"
SANITY_MAX_NEW_TOKENS = 40


def load_sanity_set(path: Path | None = None) -> list[dict[str, str]]:
    """The packaged general questions with reference answers (`{"question", "answer"}` per line)."""
    path = Path(path or SANITY_FILE)
    items = []
    for n, obj in read_jsonl(path):
        if not obj.get("question") or not obj.get("answer"):
            raise ValueError(f"{path}:{n}: a sanity item needs 'question' and 'answer'")
        items.append(obj)
    if not items:
        raise ValueError(f"{path}: the sanity set is empty")
    return items


def _scores(pred: str, ref: str) -> tuple[float, float]:
    from finetune.evaluate import exact_match, token_f1  # it imports torch (seconds): only when scoring

    return token_f1(pred, ref), exact_match(pred, ref)


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def expected_path(bot, item: Accepted) -> str | None:
    """The document that holds the accepted answer: the best hit when searching for its text."""
    if item.declined:
        return None
    hits = bot.search(item.answer, k=1, collections={SHARED})
    return hits[0].path if hits else None


def evaluate_heldout(bot, model: str, items: list[Accepted], expected: dict[str, str | None], *,
                     progress: bool = True) -> dict[str, Any]:
    """F1 / EM / citation accuracy on answerable items, decline accuracy on rightly-declined ones.

    The model is asked on every question (`Config.model_margin` off): this scores the model, and
    by default a window clearly ahead of the others is quoted without it. The served assistant's
    own settings are left as they are (`Assistant.with_settings`): it may be answering users meanwhile."""
    return _heldout_scores(bot.with_settings(model_margin=float("inf")), model, items, expected, progress=progress)


def _heldout_scores(bot, model: str, items: list[Accepted], expected: dict[str, str | None], *,
                    progress: bool) -> dict[str, Any]:
    f1s, ems, cites, declines, unsupported, samples = [], [], [], [], [], []
    for item in tqdm(items, desc=f"held-out ({_short(model)})", disable=not progress, leave=False):
        # within shared: the served model answers everyone, and the report's samples are shown to everyone
        ans = bot.ask(item.question, model=model, log=False, collections={SHARED})
        if item.declined:
            declines.append(1.0 if ans.declined else 0.0)
            samples.append({"question": item.question, "reference": "(decline)", "prediction": ans.text[:200]})
            continue
        # An answer quoted from the documents because the model's own was not supported scores the
        # model, not the quote: nothing the model wrote reached the user.
        extracted = bool(ans.extra.get("extracted"))
        pred = "" if extracted else clean_answer(ans.text)
        f1, em = _scores(pred, item.answer)
        f1s.append(f1)
        ems.append(em)
        unsupported.append(1.0 if extracted or ans.extra.get("unsupported") or ans.declined else 0.0)
        want = expected.get(item.message_id)
        if want:
            cited = [s.path for s in ans.cited_sources]
            cites.append(1.0 if want in cited else 0.0)
        samples.append({"question": item.question, "reference": item.answer, "prediction": pred, "f1": round(f1, 4)})
    return {"f1": _mean(f1s), "exact_match": _mean(ems), "citation_accuracy": _mean(cites),
            "decline_accuracy": _mean(declines), "unsupported_rate": _mean(unsupported),
            "n": len(f1s), "n_declined": len(declines), "samples": samples}


def evaluate_sanity(bot, model: str, items: list[dict[str, str]], *, progress: bool = True) -> dict[str, Any]:
    """Closed-book answers to general questions (no retrieval): does the model still answer?"""
    gen = bot.generator(model)
    f1s, ems, samples = [], [], []
    for item in tqdm(items, desc=f"sanity ({_short(model)})", disable=not progress, leave=False):
        messages = [{"role": "user", "content": item["question"]}]
        pred = "".join(gen.stream(messages, max_new_tokens=SANITY_MAX_NEW_TOKENS, temperature=0.0,
                                  stop=["\n\n"])).strip()
        f1, em = _scores(pred, item["answer"])
        f1s.append(f1)
        ems.append(em)
        samples.append({"question": item["question"], "reference": item["answer"], "prediction": pred,
                        "f1": round(f1, 4)})
    return {"f1": _mean(f1s), "exact_match": _mean(ems), "n": len(f1s), "samples": samples}


def evaluate_model(bot, model: str, heldout: list[Accepted], expected: dict[str, str | None],
                   sanity: list[dict[str, str]], *, progress: bool = True) -> dict[str, Any]:
    return {"model": model,
            "heldout": evaluate_heldout(bot, model, heldout, expected, progress=progress),
            "sanity": evaluate_sanity(bot, model, sanity, progress=progress)}


def _short(model: str) -> str:
    return Path(model).name if "/" in model else model
