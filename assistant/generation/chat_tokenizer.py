"""A model folder's tokenizer and chat template without transformers: what a cold CTranslate2 answer needs.

Importing transformers costs about a second of a cold `assistant ask` (measured in
benchmarks/bench_cold_ask.py), and the int8 decoder needs only four things from it: token ids for a
prompt, text for token ids, the chat template rendered, and the end-of-answer tokens. The `tokenizers`
library (which transformers' fast tokenizers wrap) and jinja2 give the same results directly;
`load` returns None for a folder that needs more (no `tokenizer.json`, a template with
transformers-only tags), and the caller then uses transformers' AutoTokenizer as before.

The template is rendered the way transformers renders it (`render_jinja_template`): a sandboxed
jinja2 environment with trim_blocks and lstrip_blocks, `raise_exception`, `tojson` and
`strftime_now`, the special tokens as variables, and the rendered text tokenised without adding
special tokens (the template writes them). tests/test_decoder_ctranslate.py compares the ids.
"""
from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

from assistant.generation.base import plain_chat_prompt

SPECIAL_TOKEN_KEYS = ("bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token", "mask_token")


class ChatTokenizer:
    """`tokenizers.Tokenizer` + the folder's chat template + its end tokens."""

    def __init__(self, tokenizer: Any, template: Any | None, special: dict[str, str], end_ids: list[int]):
        self._tok = tokenizer
        self._template = template
        self._special = special
        self.end_ids = end_ids

    @classmethod
    def load(cls, folder: str | Path) -> "ChatTokenizer | None":
        """The folder's tokenizer, or None when only transformers can handle it."""
        folder = Path(folder)
        if not (folder / "tokenizer.json").is_file():
            return None
        try:
            from tokenizers import Tokenizer

            config = _read_json(folder / "tokenizer_config.json")
            special = {k: _token_text(config.get(k)) for k in SPECIAL_TOKEN_KEYS if _token_text(config.get(k))}
            source = _template_source(folder, config)
            template = _compile(source) if source else None
            tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
            tokenizer.no_truncation()
            tokenizer.no_padding()
            return cls(tokenizer, template, special, _end_ids(folder, tokenizer, special))
        except Exception:  # noqa: BLE001 - anything unusual: transformers' own loader handles the folder
            return None

    def encode(self, text: str, *, add_special_tokens: bool = False) -> list[int]:
        return list(self._tok.encode(text, add_special_tokens=add_special_tokens).ids)

    def decode(self, ids: Sequence[int], *, skip_special_tokens: bool = True) -> str:
        return self._tok.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def convert_ids_to_tokens(self, ids: Sequence[int]) -> list[str]:
        return [self._tok.id_to_token(int(i)) for i in ids]

    def chat_ids(self, messages: Sequence[dict[str, str]]) -> list[int]:
        """The prompt for `messages` with the generation prompt added, as the model was trained to read it."""
        if self._template is None:
            return self.encode(plain_chat_prompt(messages), add_special_tokens=True)
        text = self._template.render(messages=list(messages), add_generation_prompt=True, tools=None,
                                     documents=None, **self._special)
        return self.encode(text, add_special_tokens=False)


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _token_text(value: Any) -> str:
    if isinstance(value, dict):  # older configs store AddedToken dicts
        value = value.get("content")
    return value if isinstance(value, str) else ""


def _template_source(folder: Path, config: dict) -> str:
    jinja_file = folder / "chat_template.jinja"
    if jinja_file.is_file():
        return jinja_file.read_text(encoding="utf-8")
    template = config.get("chat_template")
    if isinstance(template, list):  # named templates: the default one
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default")
    if template is not None and not isinstance(template, str):
        raise ValueError("unsupported chat_template")
    return template or ""


def _compile(source: str):
    """Compiled as transformers compiles it; a template using transformers' own tags fails here."""
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x: Any, ensure_ascii: bool = False, indent: int | None = None, separators=None,
               sort_keys: bool = False) -> str:
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env.from_string(source)


def _end_ids(folder: Path, tokenizer: Any, special: dict[str, str]) -> list[int]:
    """generation_config's eos ids plus the tokenizer's eos token: where transformers' generate stops."""
    eos = _read_json(folder / "generation_config.json").get("eos_token_id")
    if eos is None:  # GenerationConfig.from_pretrained falls back to the model's config the same way
        eos = _read_json(folder / "config.json").get("eos_token_id")
    ids = [eos] if isinstance(eos, int) else [i for i in (eos or []) if isinstance(i, int)]
    if special.get("eos_token"):
        token_id = tokenizer.token_to_id(special["eos_token"])
        if token_id is not None:
            ids.append(int(token_id))
    return sorted(set(ids))
