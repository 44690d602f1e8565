"""Generation in-process with transformers: the offline default, CPU or GPU."""
from __future__ import annotations

import os
import threading
import time
from typing import Iterator, Sequence

from foundation.devices import pick_device, usable_cpus
from foundation.model_paths import load_causal_lm
from assistant.generation.base import GenerationStats, Messages, plain_chat_prompt, releasable, unreleased


class AnswerNoRepeatNGram:
    """Ban any n-gram that the answer itself already contains (the prompt is free to be copied).

    Small models fall into loops ("psy1+psy2+psy3..."); banning repeats inside the answer stops
    that while still letting the model quote the passage word for word.
    """

    def __init__(self, n: int, prompt_len: int):
        self.n = n
        self.prompt_len = prompt_len

    def __call__(self, input_ids, scores):
        for row in range(input_ids.shape[0]):
            answer = input_ids[row, self.prompt_len:].tolist()
            if len(answer) < self.n:
                continue
            prefix = answer[len(answer) - self.n + 1:]
            banned = [answer[i + self.n - 1] for i in range(len(answer) - self.n + 1)
                      if answer[i:i + self.n - 1] == prefix]
            if banned:
                scores[row, banned] = float("-inf")
        return scores


class LocalGenerator:
    """A Hugging Face causal LM with its chat template, streamed token by token.

    Greedy by default so the same question gives the same answer. On a GPU the weights are
    bf16 when the card supports it; on the CPU fp32 (bf16 matmuls are slow on most CPUs).
    """

    def __init__(self, path: str, *, name: str = "", device: str = "auto", context_window: int = 0):
        import torch

        self.device = pick_device(device)
        dtype = torch.float32
        if self.device == "cuda" and torch.cuda.is_bf16_supported():
            dtype = torch.bfloat16
        if self.device == "cpu" and not os.environ.get("OMP_NUM_THREADS"):
            torch.set_num_threads(usable_cpus())
        self.path = path
        self.name = name or path
        self.tokenizer, self.model = load_causal_lm(path, device=self.device, dtype=dtype)
        own = int(getattr(self.model.config, "max_position_embeddings", 2048) or 2048)
        self._context_window = min(own, context_window) if context_window else min(own, 8192)
        # One generate() at a time per model: parallel calls on 2 CPU cores only slow each other down,
        # and the queue in the UI decides who waits.
        self._lock = threading.Lock()

    @property
    def context_window(self) -> int:
        return self._context_window

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def prompt_ids(self, messages: Messages):
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
            )
        return self.tokenizer(plain_chat_prompt(messages), return_tensors="pt")

    def stream(self, messages: Messages, *, max_new_tokens: int, temperature: float = 0.0,
               stop: Sequence[str] | None = None, stats: GenerationStats | None = None,
               no_repeat_ngram: int = 0) -> Iterator[str]:
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        halt = threading.Event()

        class _Halt(StoppingCriteria):  # lets the reader stop generate() early at a stop sequence
            def __call__(self, input_ids, scores, **kw):
                return halt.is_set()

        stats = stats if stats is not None else GenerationStats()
        inputs = self.prompt_ids(messages).to(self.device)
        n_in = int(inputs["input_ids"].shape[1])
        budget = max(1, min(max_new_tokens, self._context_window - n_in))
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600)
        kwargs = dict(**inputs, max_new_tokens=budget, streamer=streamer,
                      stopping_criteria=StoppingCriteriaList([_Halt()]),
                      pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id)
        if no_repeat_ngram:
            # Not transformers' no_repeat_ngram_size: that one also bans n-grams of the prompt,
            # so the model could not copy a phrase from the passage it is answering from.
            from transformers import LogitsProcessorList

            kwargs["logits_processor"] = LogitsProcessorList([AnswerNoRepeatNGram(int(no_repeat_ngram), n_in)])
        if temperature and temperature > 0:
            kwargs.update(do_sample=True, temperature=float(temperature), top_p=0.95)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        errors: list[BaseException] = []

        def work() -> None:
            try:
                self.model.generate(**kwargs)
            except BaseException as exc:  # surfaced in the caller's thread below
                errors.append(exc)
                streamer.end()

        start = time.perf_counter()
        text, sent = "", 0
        with self._lock:
            worker = threading.Thread(target=work, daemon=True)
            worker.start()
            try:
                for piece in streamer:
                    if not piece:
                        continue
                    if not stats.ttft_ms:
                        stats.ttft_ms = (time.perf_counter() - start) * 1000
                    text += piece
                    ready, sent, stopped = releasable(text, sent, stop)
                    if ready:
                        yield ready
                    if stopped:
                        break
            finally:
                # Also when the caller stops reading early (GeneratorExit): stop generate() and
                # wait for it, so no orphan generation keeps the CPU busy outside the lock.
                halt.set()
                worker.join()
                stats.tokens_in = n_in
                stats.tokens_out = self.count_tokens(text) if text else 0
                stats.duration_ms = (time.perf_counter() - start) * 1000
        if errors:
            raise errors[0]
        rest = unreleased(text, sent, stop)
        if rest:
            yield rest
