"""Progress you can see: steps done, loss, speed and time left, as a bar or (without one) a log line.

The time left comes from this session's mean step time, so it is right after a resume too (a
resumed run's bar starts at the checkpoint's step, not at zero).
"""
from __future__ import annotations

import logging

from tqdm.auto import tqdm

from finetune.config import StepInfo

log = logging.getLogger("finetune")


def eta_seconds(steps_done: int, total_steps: int, session_steps: int, session_seconds: float) -> float | None:
    """Seconds to the last step at this session's mean pace; None before the first step."""
    if session_steps <= 0:
        return None
    return max(0, total_steps - steps_done) * session_seconds / session_steps


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


class Progress:
    """A tqdm bar on the main rank when `bar`; otherwise about twenty log lines over the run."""

    def __init__(self, total_steps: int, done: int, *, main: bool, bar: bool):
        self.main = main
        self.bar = tqdm(total=total_steps, initial=done, desc="fine-tuning", disable=not (main and bar), dynamic_ncols=True)
        self.log_every = 0 if (bar or not main) else max(1, total_steps // 20)

    def update(self, info: StepInfo) -> None:
        post = {"loss": f"{info.loss:.3f}", "lr": f"{info.lr:.1e}", "tok/s": f"{info.tokens_per_s:.0f}"}
        if info.mfu is not None:
            post["mfu"] = f"{info.mfu:.1%}"
        self.bar.set_postfix(post)
        self.bar.update(1)
        if self.log_every and (info.step % self.log_every == 0 or info.step == info.total_steps):
            log.info("step %d/%d: loss %.4f, %.0f tokens/s, %s left", info.step, info.total_steps, info.loss,
                     info.tokens_per_s, format_duration(info.eta_s))

    def write(self, line: str) -> None:
        if self.main:
            self.bar.write(line)

    def close(self) -> None:
        self.bar.close()
