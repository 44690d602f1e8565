"""Which model names the page and /v1 offer, and what `model=` a chosen name means to the facade.

Kept apart from the Gradio page so the HTTP API (and anything else that only speaks HTTP) can
offer the same choices without importing Gradio.
"""
from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def model_choices(bot: Any) -> list[str]:
    """Names offered in the model selector and /v1/models: 'base' plus the registry's fine-tunes."""
    try:
        names = list(bot.models())
    except Exception as exc:  # no registry yet (or unreadable): offer what is served
        log.info("no model list: %s", exc)
        names = []
    return names or [current_model(bot)]


def current_model(bot: Any) -> str:
    """The selector entry for the model that answers now ('base' unless a fine-tune is served)."""
    name = str(getattr(bot, "model_name", "") or "")
    try:
        names = list(bot.models())
    except Exception:  # same fallback as model_choices: the served name stands alone
        names = []
    return name if name in names else ("base" if "base" in names or not name else name)


def model_arg(bot: Any, name: str | None) -> str | None:
    """The `model=` to pass to ask for a selector entry; None means 'the one served now'."""
    if not name or name == current_model(bot):
        return None
    if name == "base":  # the registry's word for the configured generator
        return bot.config.generator
    return name
