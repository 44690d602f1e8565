"""Which local decoder may answer on this machine: each fast path measured against float32, here, once.

A fast decoder is only as good as the kernels the CPU gives it (see `foundation.machine`): the
bundled model in CTranslate2 int8 states "platform 9 at 22:40" as "platform 22 at 22:45" on an AVX2
server and drops the platform on an AVX-512 VNNI one, while float32 states it on both. So the
first load of a model on a machine decodes a few fixed prompts with the reference (transformers,
float32) and scores each fast path against it, fastest first; the first that agrees is used, and
the verdict is cached under the machine's fingerprint (CPU model, instruction sets, library
versions, kernel-choosing environment). A cache copied to another machine is checked again there.

The measure, teacher-forced along the reference's own greedy answer (so one early difference
does not hide the rest):
  * **confident flips**: positions where the fast path's top token differs from the reference's
    although the reference preferred its token by at least `TIE` logits. Greedy decoding follows
    the top token, so a path with no flip writes the reference's text on these prompts, except at
    a genuine tie; `TIE` (0.05) is 50x the difference two float32 paths show (CTranslate2 float32
    against torch: < 0.005 here).
  * **largest logit difference** over those positions: flips on a handful of prompts sample the
    damage; the distance says how close the next prompt's ties may come. Measured on the bundled
    model: CTranslate2 float32 < 0.01; int8 with VNNI 2.8-4.8 (and 1-3 flips per prompt at margins
    up to 0.86, the "platform 9" one at 0.09); int8 on the AVX2 path 7.8-13.7 (flips at margins up
    to 3.8). `MAX_LOGIT_DIFF` (1.0) sits between float32 noise and the best int8 seen.
A path agrees when it has no confident flip and stays within `MAX_LOGIT_DIFF`.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from foundation.machine import describe, fingerprint, fingerprint_key
from foundation.workspace import atomic_write_json, cache_dir

log = logging.getLogger(__name__)

CHECK_VERSION = 1
NEW_TOKENS = 24  # reference tokens per prompt: long enough to state the fact, short enough to check in seconds
TIE = 0.05
MAX_LOGIT_DIFF = 1.0
FAST_PATHS = ("ctranslate2-int8", "ctranslate2-float32")  # fastest first
LIBRARIES = ("ctranslate2", "torch", "transformers", "numpy")
# Short prompts of our own, each stating one value once (a number, a name, a command, a time),
# plus a list and a repetition prompt, whose greedy answers int8 kernels were seen to change.
PROMPTS = (
    "Passage: The default port of the server is 5432. Clients connect to it over TCP.\n\nWhat is the default port?",
    "Passage: The night train leaves from platform 9 at 22:40 and arrives at 07:15.\n\n"
    "When does the night train leave and from which platform?",
    "Passage: Each backup volume holds 250 GB of data.\n\nHow much data does each backup volume hold?",
    "Passage: To check a repository for corruption, run the command git fsck.\n\n"
    "Which command checks a repository for corruption?",
    "Passage: The cache keeps at most 64 entries and evicts the oldest first.\n\nHow many entries does the cache keep?",
    "What is the capital of France? Answer in one sentence.",
    "List three colours, one per line.",
    "Write the word 'cat' twenty times separated by spaces.",
)


@dataclass
class PathCheck:
    """How one decoder path compared with float32 on the fixed prompts."""

    decoder: str
    agrees: bool
    positions: int = 0
    confident_flips: int = 0
    flip_margins: list[float] = field(default_factory=list)  # reference margins of the flipped positions
    max_logit_diff: float = 0.0
    error: str = ""

    def summary(self) -> str:
        if self.error:
            return f"{self.decoder}: could not run ({self.error})"
        verdict = "agrees" if self.agrees else "disagrees"
        return (f"{self.decoder} {verdict} with float32: {self.positions - self.confident_flips}/{self.positions} "
                f"tokens, {self.confident_flips} confident flips, largest logit difference {self.max_logit_diff:.2f}")


@dataclass
class Verdict:
    """The decoder chosen for one model on one machine, and why."""

    decoder: str
    reason: str
    machine: dict
    checks: list[PathCheck] = field(default_factory=list)
    seconds: float = 0.0
    checked_at: float = 0.0
    version: int = CHECK_VERSION

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "Verdict":
        checks = [PathCheck(**c) for c in data.get("checks", [])]
        return cls(**{**data, "checks": checks})


@dataclass
class Reference:
    """The float32 model's greedy answer to one prompt, with its logits at each answer position."""

    prompt_ids: list[int]
    answer_ids: list[int]
    logits: np.ndarray  # (len(answer_ids), vocab)


def compare(reference: Sequence[Reference], candidate_logits: Sequence[np.ndarray], decoder: str) -> PathCheck:
    """Score a path's teacher-forced logits (one (len(answer), vocab) array per prompt) against the reference."""
    positions, margins, worst = 0, [], 0.0
    for ref, cand in zip(reference, candidate_logits, strict=True):
        for row, want, got_row in zip(ref.logits, ref.answer_ids, cand):
            positions += 1
            got = int(np.argmax(got_row))
            worst = max(worst, float(np.max(np.abs(row - got_row))))
            margin = float(row[want] - row[got])
            if got != want and margin >= TIE:
                margins.append(round(margin, 3))
    agrees = not margins and worst <= MAX_LOGIT_DIFF
    return PathCheck(decoder, agrees, positions, len(margins), margins, round(worst, 4))


def verdict_file(model_path: str, machine: dict) -> Path:
    """Where the verdict for this model's weights on this machine is cached."""
    root = Path(model_path)
    stamp = [str(root.resolve()), str(CHECK_VERSION)]
    for f in sorted(root.glob("*.safetensors")):
        st = f.stat()
        stamp.append(f"{f.name}:{st.st_size}:{st.st_mtime_ns}")
    model = hashlib.sha256("\n".join(stamp).encode()).hexdigest()[:12]
    return cache_dir() / "selfcheck" / f"decoder-{root.name}-{model}-{fingerprint_key(machine)}.json"


def cached_verdict(model_path: str) -> Verdict | None:
    """The verdict measured on this machine for this model, if any (reads a file; runs nothing)."""
    file = verdict_file(model_path, fingerprint(LIBRARIES))
    try:
        return Verdict.from_json(json.loads(file.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


def decoder_verdict(model_path: str, paths: Sequence[str] = FAST_PATHS) -> Verdict:
    """The cached verdict, or a new one measured now (seconds; once per model and machine)."""
    machine = fingerprint(LIBRARIES)
    found = cached_verdict(model_path)
    if found is not None:
        return found
    log.warning("Checking once which decoder matches float32 on this CPU (%s); takes ~30 s", describe(machine))
    verdict = run_check(model_path, paths, machine)
    atomic_write_json(verdict_file(model_path, machine), verdict.to_json())
    return verdict


def run_check(model_path: str, paths: Sequence[str], machine: dict,
              logits_of: Callable[[str, list[list[int]]], list[np.ndarray]] | None = None) -> Verdict:
    """Score `paths` in order against float32 and choose the first that agrees (else transformers)."""
    start = time.perf_counter()
    reference = float32_reference(model_path)
    logits_of = logits_of or (lambda decoder, seqs: ctranslate2_logits(model_path, decoder, seqs))
    checks: list[PathCheck] = []
    for decoder in paths:
        try:
            sequences = [r.prompt_ids + r.answer_ids[:-1] for r in reference]
            raw = logits_of(decoder, sequences)
            cand = [lg[len(r.prompt_ids) - 1:len(r.prompt_ids) - 1 + len(r.answer_ids)] for lg, r in zip(raw, reference)]
            check = compare(reference, cand, decoder)
        except Exception as exc:  # noqa: BLE001 - a path that cannot run here is one that does not agree
            check = PathCheck(decoder, False, error=f"{type(exc).__name__}: {exc}"[:300])
        checks.append(check)
        log.info("self-check: %s", check.summary())
        if check.agrees:
            break
    chosen = next((c.decoder for c in checks if c.agrees), "transformers")
    reason = "; ".join(c.summary() for c in checks)
    reason = (f"{chosen}, the fastest path that matches float32 on this CPU ({reason})" if chosen != "transformers"
              else f"transformers float32: no fast path matches float32 on this CPU ({reason})")
    seconds = time.perf_counter() - start
    return Verdict(chosen, reason, machine, checks, round(seconds, 1), time.time())


def float32_reference(model_path: str, prompts: Sequence[str] = PROMPTS, new_tokens: int = NEW_TOKENS) -> list[Reference]:
    """transformers in float32 on the CPU: each prompt's greedy answer and the logits that chose it."""
    import torch
    from transformers import AutoModelForCausalLM

    from assistant.generation.ctranslate import chat_tokenizer  # imports ctranslate2: only when a check runs

    tokenizer = chat_tokenizer(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).eval()
    threads = torch.get_num_threads()
    # One thread: a short check on a busy machine is 7x slower with two spinning threads (measured
    # 2.2 s against 14.9 s for 24 tokens while a test suite ran); the logits differ by rounding only.
    torch.set_num_threads(1)
    try:
        return _greedy_answers(model, tokenizer, prompts, new_tokens)
    finally:
        torch.set_num_threads(threads)


def _greedy_answers(model, tokenizer, prompts: Sequence[str], new_tokens: int) -> list[Reference]:
    import torch

    out = []
    with torch.no_grad():
        for prompt in prompts:
            ids = tokenizer.chat_ids([{"role": "user", "content": prompt}])
            result = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                    max_new_tokens=new_tokens, do_sample=False, output_logits=True,
                                    return_dict_in_generate=True, eos_token_id=list(tokenizer.end_ids),
                                    pad_token_id=tokenizer.end_ids[0], repetition_penalty=None, no_repeat_ngram_size=None)
            rows = np.stack([step[0].float().numpy() for step in result.logits])
            answer = [int(t) for t in result.sequences[0, len(ids):]]
            out.append(Reference(list(ids), answer, rows[:len(answer)]))
    return out


def ctranslate2_logits(model_path: str, decoder: str, sequences: list[list[int]]) -> list[np.ndarray]:
    """CTranslate2's logits at every position of each token sequence, for the precision `decoder` names."""
    import ctranslate2

    from assistant.generation.ctranslate import chat_tokenizer, ensure_converted, precision_of  # ctranslate2: only here

    precision = precision_of(decoder)
    folder = ensure_converted(model_path, precision)
    generator = ctranslate2.Generator(str(folder), device="cpu", compute_type=precision)
    tokenizer = chat_tokenizer(model_path)
    out = []
    for seq in sequences:
        logits = generator.forward_batch([tokenizer.convert_ids_to_tokens(seq)])
        out.append(np.array(logits, dtype=np.float32)[0])
    return out


def status_line(verdict: Verdict | None) -> str:
    """What `assistant doctor` and the start-up log say about the decoder."""
    if verdict is None:
        return "not checked on this machine yet (the first answer runs the check)"
    return f"{verdict.decoder} — {verdict.reason} [checked in {verdict.seconds:.0f} s on {describe(verdict.machine)}]"
