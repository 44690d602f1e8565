"""The bounds on what a caller may ask for (k, temperature, max_tokens, stop, rating), checked once.

The /v1 API and Gradio's named endpoints both go through these functions, so a value that one
refuses the other refuses with the same words. Unbounded inputs were a denial of service: k = 10⁹
returned every chunk, temperature = 1e308 sampled gibberish for 24 s.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

K_MAX = 50  # passages per answer or search: beyond this the prompt cannot hold them anyway
TEMPERATURE_MAX = 2.0  # OpenAI's range; past it sampling is noise
MAX_TOKENS_MAX = 8192  # far above the default model's window; the window trims further
STOP_MAX = 4  # OpenAI's limit on stop sequences
STOP_CHARS_MAX = 200
SEARCH_MODES = ("hybrid", "dense", "keyword")


class InvalidParam(ValueError):
    """A request value out of range or of the wrong kind; `param` names the field."""

    def __init__(self, param: str, message: str):
        super().__init__(message)
        self.param = param


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _number(value: Any, param: str, what: str) -> float:
    """A finite number from an int, a float or a numeric string (bools are not numbers here)."""
    if isinstance(value, bool):
        raise InvalidParam(param, f"{param} must be {what} (got {_shown(value)})")
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise InvalidParam(param, f"{param} must be {what} (got {_shown(value)})") from None
    if not math.isfinite(number):
        raise InvalidParam(param, f"{param} must be {what} (got {_shown(value)})")
    return number


def _whole(value: Any, param: str, low: int, high: int) -> int:
    what = f"a whole number from {low} to {high}"
    number = _number(value, param, what)
    if number != int(number) or not low <= number <= high:
        raise InvalidParam(param, f"{param} must be {what} (got {_shown(value)})")
    return int(number)


def check_k(value: Any, param: str = "k") -> int:
    """Passages to retrieve: 1..K_MAX."""
    return _whole(value, param, 1, K_MAX)


def check_max_tokens(value: Any, param: str = "max_tokens") -> int:
    """Tokens the answer may generate: 1..MAX_TOKENS_MAX."""
    return _whole(value, param, 1, MAX_TOKENS_MAX)


def check_temperature(value: Any, param: str = "temperature") -> float:
    """Sampling temperature: 0 (greedy) to TEMPERATURE_MAX."""
    number = _number(value, param, f"a number from 0 to {TEMPERATURE_MAX:g}")
    if not 0 <= number <= TEMPERATURE_MAX:
        raise InvalidParam(param, f"{param} must be a number from 0 to {TEMPERATURE_MAX:g} (got {_shown(value)})")
    return number


def check_top_p(value: Any, param: str = "top_p") -> float:
    """Nucleus sampling mass: above 0, at most 1."""
    number = _number(value, param, "a number above 0 and at most 1")
    if not 0 < number <= 1:
        raise InvalidParam(param, f"{param} must be a number above 0 and at most 1 (got {_shown(value)})")
    return number


def check_stop(value: str | Sequence[str] | None, param: str = "stop") -> list[str]:
    """Stop sequences: one string or a list of at most STOP_MAX non-empty strings."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(s, str) for s in items):
        raise InvalidParam(param, f"{param} must be a string or a list of strings (got {_shown(value)})")
    if len(items) > STOP_MAX:
        raise InvalidParam(param, f"{param} may hold at most {STOP_MAX} sequences (got {len(items)})")
    if any(not s or len(s) > STOP_CHARS_MAX for s in items):
        raise InvalidParam(param, f"each {param} sequence must have 1 to {STOP_CHARS_MAX} characters")
    return list(items)


def check_rating(value: Any, param: str = "rating") -> int:
    """A rating: -1 (thumbs down), 0 (none) or 1 (thumbs up)."""
    try:
        number = _number(value, param, "-1, 0 or 1")
    except InvalidParam:
        raise InvalidParam(param, f"{param} must be -1, 0 or 1 (got {_shown(value)})") from None
    if number not in (-1, 0, 1):
        raise InvalidParam(param, f"{param} must be -1, 0 or 1 (got {_shown(value)})")
    return int(number)


def check_search_mode(value: Any, param: str = "mode") -> str:
    if value not in SEARCH_MODES:
        raise InvalidParam(param, f"{param} must be one of {', '.join(SEARCH_MODES)} (got {_shown(value)})")
    return value
