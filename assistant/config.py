"""Configuration of one assistant: defaults, then the workspace's config.toml, then the environment.

Every field can be set in `WORKSPACE/config.toml` (`generator = "Qwen/Qwen2.5-0.5B-Instruct"`)
or by an environment variable `ASSISTANT_<FIELD>` (`ASSISTANT_GENERATOR=...`); `DATABASE_URL`
sets `database_url`. Environment wins over the file so one workspace can be tried with
another model without editing it.
"""
from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from foundation.workspace import atomic_write_text

CONFIG_FILE = "config.toml"


@dataclass
class Config:
    # Generation
    generator: str = "smollm2"  # "smollm2" (bundled), a registry model name, a HF id or a local path
    backend: str = "local"  # local (transformers in-process) | openai (vLLM, TGI, any OpenAI-compatible server)
    openai_base_url: str = "http://127.0.0.1:8000/v1"
    openai_api_key: str = ""  # also read from OPENAI_API_KEY
    max_new_tokens: int = 256  # longer answers cost latency linearly
    temperature: float = 0.0  # 0 = greedy: reproducible answers
    no_repeat_ngram: int = 4  # local backend: block repeated 4-grams, which stops small models looping (not for code)
    context_window: int = 0  # 0 = the model's own; lower it to bound CPU latency
    device: str = "auto"  # auto | cpu | cuda | mps
    decoder: str = "auto"  # local backend: auto (the default model on a CPU: CTranslate2 at the fastest precision that matches float32 on this CPU, checked once per machine; ~2x generate) | transformers (float32, the reference) | ctranslate2 (the same check, any local folder) | ctranslate2-int8 / ctranslate2-float32 (forced, unchecked)
    # Retrieval
    embedder: str = "all-MiniLM-L6-v2"  # bundled; any sentence-transformers id or path
    embed_backend: str = "auto"  # auto (int8 ONNX on a CPU when onnxruntime is installed: ~1.5x faster embedding, cosine ~0.997 of float32) | torch | onnx-int8
    reranker: str = "auto"  # auto = the ranker trained on this workspace (`assistant finetune --recipe ranker`) once
    # `assistant models use NAME` serves it (none by default: see finetune/recipes/ranker.py; ~60 ms a question on
    # 2 busy CPU cores), else none | a cross-encoder id or path | empty = never rerank
    top_k: int = 4  # passages shown as sources
    context_passages: int = 1  # passages put in the prompt: the small default model does best with one
    chunk_tokens: int = 160  # embedder tokens per chunk; smaller = more precise passages
    chunk_overlap: int = 32
    max_file_bytes: int = 50 * 1024 * 1024  # larger files are reported and skipped
    max_file_seconds: float = 60.0  # per file, in the loader process; slower files are reported (0 = no limit, in-process)
    max_file_memory_mb: int = 1024  # memory the loader may add for one file; more reads bigger files, leaves less for chat
    max_unpacked_mb: int = 256  # a DOCX whose zip parts unpack to more is refused unopened (zip bombs); real ones are a few MB
    index_kind: str = "auto"  # auto (flat, then IVF past approx_threshold) | flat | ivf | hnsw
    approx_threshold: int = 50_000  # chunks before an approximate index pays off; exact below
    min_relevance: float = 0.25  # below this dense score nothing counts as relevant: decline
    # Answering (see assistant/tasks/qa.py and evidence.py; figures on benchmarks/devset)
    narrow_evidence: bool = True  # hand the model the best 1-3 sentences, not whole passages: small models answer better
    evidence_sources: int = 3  # passages whose sentences compete to be the evidence; more = slower, rarely better
    # score each sentence together with the window it would hand the model (meaning and question words of it and
    # its neighbours), so a question in other words than the documents' more often gets the window that holds the
    # answer; off = by the sentence's own words and meaning (and its next sentence's words), as before
    evidence_windows: bool = True
    # decline when no window scores this well for the question; higher = more declines. 0.55 -> 0.58 (2026-12-08,
    # replayed on every dev set's answers, then run): unanswerable declined paraphrase 0.933 -> 1.000, handbook
    # 0.625 -> 0.750, SQLite 0.462 -> 0.615, no right answer lost; 0.60 would also decline a right handbook answer
    min_evidence: float = 0.58
    min_evidence_cjk: float = 0.50  # the same for Chinese questions (scored on character bigrams: a lower scale)
    # quote the best window when the model's answer fails and it scores this well; else decline. Lower = fewer
    # declines, more wrong quotes. Dev set (git + Debian FAQ, with match_named_terms): 0.70 -> 0.55 (and
    # min_evidence 0.60 -> 0.55) took strict accuracy 0.43 -> 0.51 and false declines 0.22 -> 0.06, unanswerable
    # declined 0.95 -> 0.89. Raised with min_evidence to 0.58 (below it, it would never act).
    min_quote: float = 0.58
    answer_candidates: int = 2  # windows the model may try before the best window is quoted; each try costs a generation; 0 = quote only
    # the model is asked only when the second-best evidence window scores within this of the best: it adds a choice
    # between close windows, not the value (dev sets: its sentence on the best window never made an answer right
    # that the window's quote did not). A window this far ahead is quoted at once (~50 ms instead of 1-3 s).
    # Higher = the model more often; inf = on every question, as before.
    model_margin: float = 0.10
    # stop the model as soon as the sentence it writes holds a number or identifier its window does not (the
    # sentence would fail the support check anyway): the same answers, less time on failed candidates
    stop_at_foreign_term: bool = True
    quote_evidence: bool = True  # show the evidence window under the model's answer: the facts in the document's own words
    generate_cjk: bool = False  # let the model write Chinese answers (off: the default model cannot; quote instead)
    match_named_terms: bool = True  # decline when the evidence never mentions a thing the question names ("Bitbucket Cloud", "GNOME"), or gives no number for a "how many"/"which port" question: catches most unanswerable questions, may miss a paraphrase ("USA" for "United States")
    # decline from the workspace's vocabulary (assistant/tasks/answerability.py): a term the documents never
    # mention (an identifier as spelled, a word that is not common English) declines; capitals and hyphens
    # do not make common words names. Off: the window rule alone, as before issue 20.
    decline_by_vocabulary: bool = True
    # hand-written rules to switch off, by name, comma-separated ("number-bonus,page-name"): every rule of the
    # answer pipeline is listed, with what it protects against and its measured effect, in assistant/tasks/rules.py
    rules_off: str = ""
    summary_style: str = "checked"  # a summary with no form asked for: "checked" (the document's opening sentences + one key point per section, quoted and cited: faithful, instant) | "generated" (the model writes it all, map-reduce over long documents: for bigger models)
    # Log
    database_url: str = ""  # empty = SQLite file log.db in the workspace; or postgresql://...
    log_enabled: bool = True
    redact: bool = False  # scrub e-mails, phone numbers and secrets before writing
    retention_days: int = 0  # 0 = keep forever

    @classmethod
    def load(cls, workspace: Path, env: dict[str, str] | None = None) -> "Config":
        env = dict(os.environ if env is None else env)
        values: dict[str, Any] = {}
        file = workspace / CONFIG_FILE
        if file.exists():
            with file.open("rb") as fh:
                values.update(tomllib.load(fh))
        known = {f.name: f for f in fields(cls)}
        unknown = set(values) - set(known)
        if unknown:
            raise ValueError(f"{file}: unknown setting(s) {sorted(unknown)}; known: {sorted(known)}")
        for name, f in known.items():
            key = f"ASSISTANT_{name.upper()}"
            if key in env:
                values[name] = _coerce(env[key], type(getattr(cls(), name)), key)
        if "DATABASE_URL" in env and "ASSISTANT_DATABASE_URL" not in env:
            values["database_url"] = env["DATABASE_URL"]
        if not values.get("openai_api_key") and env.get("OPENAI_API_KEY"):
            values["openai_api_key"] = env["OPENAI_API_KEY"]
        return cls(**values)

    def save(self, workspace: Path) -> None:
        """Write the settings that differ from the defaults, atomically."""
        default = Config()
        lines = ["# Domain Assistant workspace settings (see assistant/config.py for every field)"]
        for f in fields(self):
            value = getattr(self, f.name)
            if value != getattr(default, f.name) and f.name != "openai_api_key":
                lines.append(f"{f.name} = {_toml_value(value)}")
        atomic_write_text(workspace / CONFIG_FILE, "\n".join(lines) + "\n")

    def __post_init__(self) -> None:
        # imported here: assistant.tasks loads every task, which a bare Config must not pull in at import
        from assistant.tasks.rules import disabled

        disabled(self.rules_off)  # an unknown rule name is an error now, not a rule silently left on

    def replace(self, **changes: Any) -> "Config":
        return dataclasses.replace(self, **changes)


def _coerce(raw: str, kind: type, key: str) -> Any:
    try:
        if kind is bool:
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        return kind(raw)
    except ValueError:
        raise ValueError(f"{key}={raw!r} is not a valid {kind.__name__}") from None


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
