"""Which model names the page and /v1 offer, and what `model=` a chosen name means to the facade.

Kept apart from the Gradio page so the HTTP API (and anything else that only speaks HTTP) can
offer the same choices without importing Gradio.

A request may only pick among the names offered here. The facade would load any path or hub id
it is given, so a name from the network that is not offered is refused before anything is
opened, with one message that does not depend on what the name points at (no file-existence
oracle). The CLI's `assistant ask --model PATH` is the operator's and does not come through here.
"""
from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

# Names OpenAI-style clients send for "whatever this server answers with".
SERVED_ALIASES = ("default", "domain-assistant")


class UnknownModel(ValueError):
    """A requested model that this server does not offer; the message never echoes the name."""


def not_offered_message(bot: Any) -> str:
    """The one refusal for every name not offered, whatever it names (a path, a hub id, a typo)."""
    names = ", ".join(model_choices(bot))
    return f"This server does not offer that model. Choose one it lists (see /v1/models): {names}."


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
    """The `model=` to pass to ask for an offered name; None means 'the one served now'.

    Raises UnknownModel for anything else, before the facade resolves (or opens) it.
    """
    if name is not None and not isinstance(name, str):
        raise UnknownModel(not_offered_message(bot))
    name = (name or "").strip()
    if not name or name in SERVED_ALIASES or name == current_model(bot):
        return None
    if name not in model_choices(bot):
        raise UnknownModel(not_offered_message(bot))
    if name == "base":  # the registry's word for the configured generator
        return bot.config.generator
    return name  # a registry name
