"""Generation backends behind one interface (`Generator`), chosen by configuration."""
from __future__ import annotations

from pathlib import Path

from assistant.config import Config
from assistant.generation.base import GenerationStats, Generator, Messages
from foundation.model_paths import resolve_generator

__all__ = ["GenerationStats", "Generator", "Messages", "load_generator"]


def load_generator(config: Config, workspace: Path | None = None, model: str | None = None) -> Generator:
    """The backend the configuration names, with the model resolved offline-first."""
    name = model or config.generator
    if config.backend == "openai":
        from assistant.generation.openai_compat import OpenAICompatibleGenerator  # the openai client: only for this backend

        return OpenAICompatibleGenerator(config.openai_base_url, name, api_key=config.openai_api_key,
                                         context_window=config.context_window)
    if config.backend != "local":
        raise ValueError(f"Unknown backend {config.backend!r}: use 'local' or 'openai'.")
    from assistant.generation.local import LocalGenerator  # torch + transformers (seconds): only when generating here

    path = resolve_generator(name, workspace)
    return LocalGenerator(path, name=name, device=config.device, context_window=config.context_window)
