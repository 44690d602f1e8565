"""Generation with CTranslate2 on the CPU: the same model as `LocalGenerator`, decoded ~2x faster.

A Hugging Face Llama-style folder is converted once (`TransformersConverter(...).convert(out,
quantization=...)`) into a sibling folder in the shared model cache, in int8 or float32, then decoded
greedily token by token with `Generator.generate_tokens`. The chat template, stop sequences and
stats are the same as the transformers path. float32 writes float32's text; int8 changes it by an
amount that depends on the CPU's kernels, so `assistant.generation.selfcheck` decides per machine
which precision is used (on the bundled model float32 decodes within ~7 % of int8's speed).

Repeat guard: transformers' path bans any n-gram the answer already contains
(`AnswerNoRepeatNGram`). CTranslate2 has no per-step logits hook in Python, so here the guard is
`no_repeat_ngram_size`, which CTranslate2 applies to the generated tokens after the prompt.
"""
from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from pathlib import Path
from typing import Iterator, Sequence

from assistant.generation.base import GenerationStats, Messages, plain_chat_prompt, releasable, unreleased
from assistant.generation.chat_tokenizer import ChatTokenizer
from foundation.devices import usable_cpus
from foundation.workspace import atomic_folder, cache_dir

log = logging.getLogger(__name__)

PRECISIONS = ("int8", "float32")


def precision_of(decoder: str) -> str:
    """'ctranslate2-int8' -> 'int8' (what the decoder setting names to CTranslate2's compute type)."""
    precision = decoder.rsplit("-", 1)[-1]
    if precision not in PRECISIONS:
        raise ValueError(f"no CTranslate2 precision in {decoder!r}: use ctranslate2-int8 or ctranslate2-float32")
    return precision


def recipe(precision: str) -> str:
    return f"{precision}-v1"


def converted_folder(path: str, precision: str = "int8") -> Path:
    """Where the `precision` conversion of the model at `path` is cached, keyed by its weights."""
    root = Path(path)
    stamp = [str(root.resolve()), recipe(precision)]
    for f in sorted(root.glob("*.safetensors")):
        st = f.stat()
        stamp.append(f"{f.name}:{st.st_size}:{st.st_mtime_ns}")
    digest = hashlib.sha256("\n".join(stamp).encode()).hexdigest()[:12]
    return cache_dir() / "models" / f"{root.name}-ct2-{recipe(precision)}-{digest}"


def ensure_converted(path: str, precision: str = "int8") -> Path:
    """The cached CTranslate2 folder for a local HF model folder, converting it once (atomically)."""
    import ctranslate2

    target = converted_folder(path, precision)
    if (target / "model.bin").exists():
        return target
    if not Path(path).is_dir():
        raise ValueError(f"{path!r} is not a local model folder; only local folders are converted")
    log.warning("Converting %s to CTranslate2 %s once into %s (later loads reuse it)", path, precision, target)
    with atomic_folder(target) as tmp:
        ctranslate2.converters.TransformersConverter(path).convert(str(tmp), quantization=precision, force=True)
    return target


def chat_tokenizer(path: str):
    """tokenizers + jinja2 when the folder allows (a cold answer then never imports transformers,
    ~1 s); transformers' AutoTokenizer for anything else."""
    return ChatTokenizer.load(path) or _TransformersChat(path)


class CTranslate2Generator:
    """A converted causal LM with its chat template, streamed token by token (greedy unless sampled)."""

    def __init__(self, path: str, *, name: str = "", context_window: int = 0, threads: int = 0,
                 precision: str = "int8"):
        import ctranslate2

        self.path = path
        self.name = name or path
        self.precision = precision
        self.folder = ensure_converted(path, precision)
        self.tokenizer = chat_tokenizer(path)
        self.generator = ctranslate2.Generator(str(self.folder), device="cpu", compute_type=precision,
                                               intra_threads=threads or usable_cpus())
        own = _max_positions(Path(path))
        self._context_window = min(own, context_window) if context_window else min(own, 8192)
        self._end_tokens = sorted(set(self.tokenizer.convert_ids_to_tokens(self.tokenizer.end_ids)))
        self._lock = threading.Lock()  # one decode at a time: parallel ones only slow each other on few cores

    @property
    def context_window(self) -> int:
        return self._context_window

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def prompt_ids(self, messages: Messages) -> list[int]:
        return self.tokenizer.chat_ids(messages)

    def stream(self, messages: Messages, *, max_new_tokens: int, temperature: float = 0.0,
               stop: Sequence[str] | None = None, stats: GenerationStats | None = None,
               no_repeat_ngram: int = 0) -> Iterator[str]:
        stats = stats if stats is not None else GenerationStats()
        ids = self.prompt_ids(messages)
        n_in = len(ids)
        budget = max(1, min(max_new_tokens, self._context_window - n_in))
        options = dict(max_length=budget, end_token=self._end_tokens, no_repeat_ngram_size=int(no_repeat_ngram or 0))
        if temperature and temperature > 0:
            options.update(sampling_topk=0, sampling_topp=0.95, sampling_temperature=float(temperature))
        else:
            options.update(sampling_topk=1)
        start = time.perf_counter()
        out_ids: list[int] = []
        text, sent = "", 0
        with self._lock:
            steps = self.generator.generate_tokens(self.tokenizer.convert_ids_to_tokens(ids), **options)
            try:
                for step in steps:
                    out_ids.append(step.token_id)
                    decoded = self.tokenizer.decode(out_ids, skip_special_tokens=True)
                    if decoded.endswith("\ufffd"):
                        continue  # half of a multi-byte character: wait for the rest
                    text = decoded
                    if text and not stats.ttft_ms:
                        stats.ttft_ms = (time.perf_counter() - start) * 1000
                    ready, sent, stopped = releasable(text, sent, stop)
                    if ready:
                        yield ready
                    if stopped:
                        break
            finally:
                steps.close()  # stops the decoding when the reader stops early
                stats.tokens_in = n_in
                stats.tokens_out = len(out_ids)
                stats.duration_ms = (time.perf_counter() - start) * 1000
        rest = unreleased(text, sent, stop)
        if rest:
            yield rest


def _max_positions(folder: Path) -> int:
    """The model's own context length from config.json (nested for multimodal configs), else 2048."""
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return 2048
    value = config.get("max_position_embeddings") or (config.get("text_config") or {}).get("max_position_embeddings")
    return int(value) if isinstance(value, int) and value > 0 else 2048


class _TransformersChat:
    """transformers' AutoTokenizer behind `ChatTokenizer`'s methods, for folders that need it."""

    def __init__(self, path: str):
        from transformers import AutoTokenizer, GenerationConfig  # only for folders ChatTokenizer cannot read

        self._tok = AutoTokenizer.from_pretrained(path)
        ids: list[int] = []
        try:
            eos = GenerationConfig.from_pretrained(path).eos_token_id
            ids = [eos] if isinstance(eos, int) else list(eos or [])
        except OSError:
            pass
        if self._tok.eos_token_id is not None:
            ids.append(int(self._tok.eos_token_id))
        self.end_ids = sorted(set(ids))

    def encode(self, text: str, *, add_special_tokens: bool = False) -> list[int]:
        return list(self._tok(text, add_special_tokens=add_special_tokens)["input_ids"])

    def decode(self, ids, *, skip_special_tokens: bool = True) -> str:
        return self._tok.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def convert_ids_to_tokens(self, ids) -> list[str]:
        return list(self._tok.convert_ids_to_tokens(list(ids)))

    def chat_ids(self, messages: Messages) -> list[int]:
        if getattr(self._tok, "chat_template", None):
            out = self._tok.apply_chat_template(messages, add_generation_prompt=True, return_dict=True)
            return list(out["input_ids"])
        return list(self._tok(plain_chat_prompt(messages))["input_ids"])
