"""Generation backends behind one interface (`Generator`), chosen by configuration."""
from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from assistant.config import Config
from assistant.generation.base import GenerationStats, Generator, Messages
from foundation.devices import pick_device
from foundation.model_paths import SMOLLM2_CACHE_NAME, resolve_generator
from foundation.workspace import cache_dir

__all__ = ["GenerationStats", "Generator", "Messages", "load_generator"]

log = logging.getLogger(__name__)
DECODERS = ("auto", "transformers", "ctranslate2")


def bundled_generator_path() -> Path:
    """Where the default model's converted folder lives (compared by path: resolving it would convert it)."""
    return cache_dir() / "models" / SMOLLM2_CACHE_NAME


def load_generator(config: Config, workspace: Path | None = None, model: str | None = None) -> Generator:
    """The backend the configuration names, with the model resolved offline-first."""
    name = model or config.generator
    if config.backend == "openai":
        from assistant.generation.openai_compat import OpenAICompatibleGenerator  # the openai client: only for this backend

        return OpenAICompatibleGenerator(config.openai_base_url, name, api_key=config.openai_api_key,
                                         context_window=config.context_window)
    if config.backend != "local":
        raise ValueError(f"Unknown backend {config.backend!r}: use 'local' or 'openai'.")
    path = resolve_generator(name, workspace)
    if _use_ctranslate2(config, path):
        from assistant.generation.ctranslate import CTranslate2Generator  # ctranslate2 (optional): only when decoding here

        try:
            return CTranslate2Generator(path, name=name, context_window=config.context_window)
        except Exception as exc:  # noqa: BLE001 - any conversion failure: the transformers path still works
            log.warning("CTranslate2 cannot decode %s (%s); using transformers", name, exc)
    from assistant.generation.local import LocalGenerator  # torch + transformers (seconds): only when generating here

    return LocalGenerator(path, name=name, device=config.device, context_window=config.context_window)


def _use_ctranslate2(config: Config, path: str) -> bool:
    """"auto": the bundled default model on a CPU when ctranslate2 is installed; "ctranslate2": any local folder."""
    if config.decoder not in DECODERS:
        raise ValueError(f"decoder must be one of {', '.join(DECODERS)}, not {config.decoder!r}")
    if config.decoder == "transformers" or not Path(path).is_dir():
        return False
    if importlib.util.find_spec("ctranslate2") is None:
        if config.decoder == "ctranslate2":
            raise ImportError("decoder = \"ctranslate2\" needs CTranslate2: `pip install ctranslate2`")
        return False
    if config.decoder == "ctranslate2":
        return True
    return pick_device(config.device) == "cpu" and Path(path) == bundled_generator_path()
