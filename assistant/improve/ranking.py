"""The cycle's ranker step: retrain the workspace's passage ranker, with rated answers as extra labels.

The ranker learns mostly from the documents themselves (`finetune.ranker_data`: headings, FAQ
questions, cloze sentences), so it can run before any answer is rated. An accepted answer adds
one labelled query: its question, with the passage among the question's top hits that shares the
most words with the answer (at least half of the answer's words) as the positive, and the other
hits as hard negatives. The step registers the new ranker with its held-out figures and does not
serve it: a ranker that won its held-out pairs still lowered retrieval on the dev set's real
questions (see `finetune.recipes.ranker`), so `assistant models use NAME` stays the user's call.
"""
from __future__ import annotations

import logging
from typing import Any

from assistant.improve.data import Accepted
from assistant.improve.state import CycleRun
from finetune.ranker_data import RankQuery, load_index, passage_text
from foundation.text import search_tokens

log = logging.getLogger(__name__)

MIN_ANSWER_OVERLAP = 0.5  # share of the answer's words the chosen passage must hold


def answer_labels(run: CycleRun, items: list[Accepted]) -> list[RankQuery]:
    """Accepted answers -> labelled queries over the index's chunk rows (unmatched answers are skipped)."""
    chunks, _, _ = load_index(run.workspace / "index")
    row_of = {c["id"]: r for r, c in enumerate(chunks)}
    out = []
    for item in items:
        words = set(search_tokens(item.answer))
        if item.declined or len(words) < 2:
            continue
        hits = [h for h in run.bot.index.search(item.question, k=10) if h.chunk_id in row_of]
        if not hits:
            continue
        best = max(hits, key=lambda h: len(words & set(search_tokens(h.text))))
        if len(words & set(search_tokens(best.text))) < MIN_ANSWER_OVERLAP * len(words):
            continue
        row = row_of[best.chunk_id]
        negatives = tuple(row_of[h.chunk_id] for h in hits if h.chunk_id != best.chunk_id and h.heading != best.heading)
        if negatives:
            out.append(RankQuery(item.question, "rated", best.path, row, passage_text(chunks[row]), negatives))
    return out


def train_ranker_step(run: CycleRun) -> dict[str, Any]:
    """Train and decide on a ranker; never raises (a failed ranker must not stop the generator's cycle)."""
    from finetune.recipes.ranker import RankerConfig, train_ranker  # torch: only when the step runs

    try:
        extra = answer_labels(run, [*run.data.train, *run.data.replay])
        run.tell(f"training the workspace ranker ({len(extra)} rated answers as labels)")
        result = train_ranker(RankerConfig(workspace=run.workspace, name=f"ranker-{run.number:03d}", extra=extra,
                                           serve=False, progress=run.cfg.progress, seed=run.cfg.seed))
    except Exception as exc:  # noqa: BLE001 - reported, and the cycle goes on with the served ranker
        log.exception("ranker step failed")
        return {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
    m = result.metrics
    run.tell("; ".join(result.reasons))
    return {"status": "registered", "name": result.name, "rated_labels": len(extra),
            "heldout": {"untrained": m["untrained"], "trained": m["trained"]}, "training": m["training"],
            "reasons": result.reasons}
