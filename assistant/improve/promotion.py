"""The promotion rule: a candidate replaces the served model only if it wins on held-out answers
without losing on the sanity set, citations or declines (thresholds in `ImproveConfig`)."""
from __future__ import annotations

from typing import Any

from assistant.improve.config import ImproveConfig


def rules(cfg: ImproveConfig) -> dict[str, Any]:
    """The rule's thresholds as the report records them."""
    return {"min_gain": cfg.min_gain, "sanity_tolerance": cfg.sanity_tolerance,
            "citation_tolerance": cfg.citation_tolerance, "decline_tolerance": cfg.decline_tolerance,
            "min_examples": cfg.min_examples, "heldout_fraction": cfg.heldout_fraction}


def decide(current: dict[str, Any], candidate: dict[str, Any], cfg: ImproveConfig) -> tuple[bool, list[str]]:
    """The promotion rule; returns (promote, reasons) with every check spelled out."""
    def get(ev: dict[str, Any], part: str, key: str) -> float | None:
        return (ev.get(part) or {}).get(key)

    ok, reasons = True, []
    cur_f1, cand_f1 = get(current, "heldout", "f1"), get(candidate, "heldout", "f1")
    if cur_f1 is None or cand_f1 is None:
        return False, ["no held-out questions with accepted answers yet: nothing to compare on"]
    gain = cand_f1 - cur_f1
    passed = gain >= cfg.min_gain - 1e-9
    ok &= passed
    reasons.append(f"held-out F1 {cur_f1:.3f} -> {cand_f1:.3f} ({gain:+.3f}; needs >= {cfg.min_gain:+.3f})"
                   + ("" if passed else ": not enough"))
    checks = [("sanity F1", get(current, "sanity", "f1"), get(candidate, "sanity", "f1"), cfg.sanity_tolerance),
              ("citation accuracy", get(current, "heldout", "citation_accuracy"),
               get(candidate, "heldout", "citation_accuracy"), cfg.citation_tolerance),
              ("decline accuracy", get(current, "heldout", "decline_accuracy"),
               get(candidate, "heldout", "decline_accuracy"), cfg.decline_tolerance)]
    for label, a, b, tol in checks:
        if a is None or b is None:
            continue
        passed = b >= a - tol - 1e-9
        ok &= passed
        reasons.append(f"{label} {a:.3f} -> {b:.3f} ({b - a:+.3f}; may fall by {tol:.2f})"
                       + ("" if passed else ": regression"))
    return ok, reasons
