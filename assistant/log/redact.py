"""Scrub personal data and secrets from text before it reaches the log.

Runs when the log is opened with `redact=True` (workspace setting `redact = true`). Matches
are replaced with a typed placeholder (`[EMAIL]`, `[PHONE]`, `[SECRET]`) so a reader can still
tell what kind of thing was there. Patterns err on the side of scrubbing: a false positive
costs a few characters of a log line, a false negative leaks a credential.
"""
from __future__ import annotations

import re
from typing import Any

# Order matters: secrets first (a key may contain digit runs that look like phone numbers),
# then e-mails, then phone numbers.
_SECRET_PATTERNS = [
    r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_\-]{16,}",  # OpenAI / Anthropic style keys
    r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",  # AWS access key ids
    r"\bgh[pousr]_[A-Za-z0-9]{30,}\b",  # GitHub tokens
    r"\bgithub_pat_[A-Za-z0-9_]{40,}\b",
    r"\bxox[abprs]-[A-Za-z0-9\-]{10,}",  # Slack tokens
    r"\bglpat-[A-Za-z0-9_\-]{20,}",  # GitLab tokens
    r"\bAIza[0-9A-Za-z_\-]{35}\b",  # Google API keys
    r"\beyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}",  # JWTs
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
    r"(?<![A-Za-z0-9])[0-9a-fA-F]{32,}(?![A-Za-z0-9])",  # long hex tokens (md5/sha/api keys)
]
# A long base64/base64url run: judged by `_token` (mixed case and digits, not a slug or path).
_BASE64 = re.compile(r"(?<![A-Za-z0-9+_\-])[A-Za-z0-9+_\-]{32,}={0,2}")
# "password: hunter2", "api_key=abc123": keep the name, drop the value.
_ASSIGNMENT = re.compile(
    r"(?i)\b(password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|client[_-]?secret)"
    r"(\s*[:=]\s*)(\"[^\"]+\"|'[^']+'|\S+)"
)
_EMAIL = re.compile(r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}\b")
# International or national numbers with separators: +44 20 7946 0958, (555) 123-4567,
# 555-123-4567, 030 1234567. At least 7 digits so years and versions survive.
_PHONE = re.compile(r"(?<![\w.])(?:\+\d{1,3}[\s.\-]?)?(?:\(\d{1,4}\)[\s.\-]?)?\d{2,4}(?:[\s.\-]\d{2,8}){1,4}(?![\w])")
_SECRETS = re.compile("|".join(f"(?:{p})" for p in _SECRET_PATTERNS))


def _token(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = sum(ch.isdigit() for ch in text)
    upper = sum(ch.isupper() for ch in text)
    lower = sum(ch.islower() for ch in text)
    slug = text.count("-") + text.count("_") > 2  # long-hyphenated-words-2024 are prose
    return "[SECRET]" if digits >= 2 and upper and lower and not slug else text


def _phone(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = sum(ch.isdigit() for ch in text)
    has_sep = any(ch in " .-()+" for ch in text)
    # ISO dates (2026-11-28) and dotted versions (1.2.3) are not phone numbers.
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text) or (
        re.fullmatch(r"\d+(?:\.\d+)+", text) and not re.fullmatch(r"\d{3}\.\d{3}\.\d{4}", text)
    ):
        return text
    return "[PHONE]" if digits >= 7 and has_sep else text


def redact(text: str | None) -> str | None:
    """Return `text` with e-mails, phone numbers and secrets replaced by placeholders."""
    if not text:
        return text
    text = _SECRETS.sub("[SECRET]", text)
    text = _ASSIGNMENT.sub(lambda m: m.group(1) + m.group(2) + "[SECRET]", text)
    text = _BASE64.sub(_token, text)
    text = _EMAIL.sub("[EMAIL]", text)
    text = _PHONE.sub(_phone, text)
    return text


def redact_value(value: Any) -> Any:
    """Redact every string inside a JSON-like value (options dicts may carry keys)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(v) for v in value]
    return value
