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
FORCED = ("ctranslate2-int8", "ctranslate2-float32")
DECODERS = ("auto", "transformers", "ctranslate2", *FORCED)


def bundled_generator_path() -> Path:
    """Where the default model's converted folder lives (compared by path: resolving it would convert it)."""
    return cache_dir() / "models" / SMOLLM2_CACHE_NAME


def load_generator(config: Config, workspace: Path | None = None, model: str | None = None) -> Generator:
    """The backend the configuration names, with the model resolved offline-first.

    A local model gets the decoder `local_decoder` picks; the choice and its reason ride along as
    the generator's `decoder_info` (shown by `assistant doctor` and `/health`).
    """
    name = model or config.generator
    if config.backend == "openai":
        from assistant.generation.openai_compat import OpenAICompatibleGenerator  # the openai client: only for this backend

        return OpenAICompatibleGenerator(config.openai_base_url, name, api_key=config.openai_api_key,
                                         context_window=config.context_window)
    if config.backend != "local":
        raise ValueError(f"Unknown backend {config.backend!r}: use 'local' or 'openai'.")
    path = resolve_generator(name, workspace)
    decoder, reason = local_decoder(config, path)
    generator: Generator | None = None
    if decoder.startswith("ctranslate2"):
        from assistant.generation.ctranslate import CTranslate2Generator, precision_of  # ctranslate2 (optional)

        try:
            generator = CTranslate2Generator(path, name=name, context_window=config.context_window,
                                             precision=precision_of(decoder))
        except Exception as exc:  # noqa: BLE001 - any conversion failure: the transformers path still works
            log.warning("CTranslate2 cannot decode %s (%s); using transformers", name, exc)
            decoder, reason = "transformers", f"CTranslate2 failed to load ({exc})"
    if generator is None:
        from assistant.generation.local import LocalGenerator  # torch + transformers (seconds): only when generating here

        generator = LocalGenerator(path, name=name, device=config.device, context_window=config.context_window)
    generator.decoder_info = {"decoder": decoder, "reason": reason}
    log.info("decoder for %s: %s (%s)", name, decoder, reason)
    return generator


def local_decoder(config: Config, path: str) -> tuple[str, str]:
    """Which decoder runs a local model, and why.

    "auto": the bundled default model on a CPU runs on CTranslate2 at the fastest precision that
    matches float32 on this machine (the self-check, cached per CPU), else transformers;
    "ctranslate2": the same for any local folder; "ctranslate2-int8" / "ctranslate2-float32" force
    that path unchecked; "transformers": float32 (or the GPU's precision), the reference.
    """
    if config.decoder not in DECODERS:
        raise ValueError(f"decoder must be one of {', '.join(DECODERS)}, not {config.decoder!r}")
    if config.decoder == "transformers":
        return "transformers", "decoder = transformers (configured)"
    if not Path(path).is_dir():
        return "transformers", "not a local folder (CTranslate2 converts local folders only)"
    if importlib.util.find_spec("ctranslate2") is None:
        if config.decoder != "auto":
            raise ImportError(f"decoder = \"{config.decoder}\" needs CTranslate2: `pip install ctranslate2`")
        return "transformers", "ctranslate2 is not installed"
    if config.decoder in FORCED:
        return config.decoder, f"decoder = {config.decoder} (configured; not checked against float32)"
    if config.decoder == "auto":
        if pick_device(config.device) != "cpu":
            return "transformers", f"on {pick_device(config.device)}"
        if Path(path) != bundled_generator_path():
            return "transformers", "auto uses CTranslate2 for the bundled model only (set decoder = ctranslate2)"
    from assistant.generation.selfcheck import decoder_verdict  # the check loads torch once per machine

    verdict = decoder_verdict(path)
    return verdict.decoder, verdict.reason
