"""Grounding: does the assistant answer what the documents hold (with a correct citation) and decline the rest?

The question set (`grounding_questions.jsonl`) is built from the bundled sample documents: about
half can be answered from one file (`path`), half cannot (`path: null`). We report:
- answered-with-correct-citation rate on the answerable half (not declined, and a cited source
  — or the first source when the model cited none — is the expected file);
- decline rate on the unanswerable half;
- the retrieval-only baseline: how often the expected file is the top hit at all.

    python benchmarks/bench_grounding.py
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import table, write_result  # noqa: E402


def main() -> None:
    from assistant import Assistant

    here = Path(__file__).resolve().parent
    docs = here.parent / "docs"
    questions = [json.loads(line) for line in (here / "grounding_questions.jsonl").read_text().splitlines() if line.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        bot = Assistant.open(Path(tmp) / "ws")
        bot.ingest([docs], progress=False)
        rows, answerable, unanswerable = [], [], []
        for item in questions:
            ans = bot.ask(item["question"], log=False)
            cited = ans.cited_sources or ans.sources[:1]
            expected = item["path"]
            if expected:
                ok = (not ans.declined) and any(Path(s.path).name == expected for s in cited)
                top = bool(ans.sources) and Path(ans.sources[0].path).name == expected
                answerable.append((ok, top))
                outcome = "answered+cited" if ok else ("declined" if ans.declined else "wrong citation")
            else:
                ok = ans.declined
                unanswerable.append(ok)
                outcome = "declined" if ok else "answered (should decline)"
            rows.append([item["question"][:55], expected or "-", outcome, ans.text[:60].replace("\n", " ")])
        print(table(["question", "expected", "outcome", "answer"], rows))
        a = sum(ok for ok, _ in answerable) / max(1, len(answerable))
        top = sum(t for _, t in answerable) / max(1, len(answerable))
        d = sum(unanswerable) / max(1, len(unanswerable))
        print(f"\nanswerable answered with a correct citation: {a:.0%} of {len(answerable)} "
              f"(retrieval puts the right file first: {top:.0%}); unanswerable declined: {d:.0%} of {len(unanswerable)}")
        path = write_result("grounding", {"answered_with_correct_citation": a, "retrieval_top1": top,
                                          "declined_unanswerable": d, "n_answerable": len(answerable),
                                          "n_unanswerable": len(unanswerable), "rows": rows})
        print(f"wrote {path}")
        bot.close()


if __name__ == "__main__":
    main()
