"""Progress on the terminal: one bar per phase, shown to a person and never to a log file.

A bar is drawn when stderr is a terminal, or when ``LSLLM_PROGRESS=1`` (tests, `script`);
``LSLLM_PROGRESS=0`` (what `--quiet` sets) turns every bar off. Training shows one bar with the
loss, the learning rate and the last validation score in its postfix (`TrainingBar`) instead
of the Trainer's printed dicts; evaluation and prediction show their own short-lived bars.
Everything a bar shows also goes to the run's logs (logs/, TensorBoard), so nothing is lost.

A long job through a known number of items (`Meter`: `lsllm predict --input`) has a bar with its
rate and time left, and where stderr is not a terminal (a log file, a batch system) and bars are
not forced either way, one line a minute instead, so the log says how far it got and how long is left.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from transformers import TrainerCallback


def enabled() -> bool:
    setting = os.environ.get("LSLLM_PROGRESS")
    if setting in ("0", "1"):
        return setting == "1"
    return sys.stderr.isatty()


def bar(desc: str, leave: bool = False) -> Callable[[Iterable], Iterable] | None:
    """A function wrapping an iterable in a progress bar named ``desc``, or None when bars are off."""
    if not enabled():
        return None
    from tqdm.auto import tqdm

    return lambda items: tqdm(items, desc=desc, leave=leave)


LOG_EVERY = 60.0  # seconds between a Meter's lines in a log


class Meter:
    """Progress through `total` items: a bar with rate and time left on a terminal, a line a minute in a log.

    Which one follows `enabled` and ``LSLLM_PROGRESS``: a bar where bars are drawn; nothing with
    ``LSLLM_PROGRESS=0`` (--quiet); otherwise (stderr is not a terminal) a line every `every`
    seconds, "predicting: 120,000 of 1,000,000 inputs (12.0 %), 2,104 inputs/s, 6 min 58 s left",
    and one at the end. `initial` items were done before (a resumed job): the rate counts only
    the ones done now.
    """

    def __init__(self, desc: str, total: int, initial: int = 0, unit: str = "input", every: float | None = None) -> None:
        setting = os.environ.get("LSLLM_PROGRESS")
        self.mode = "off" if setting == "0" else "bar" if enabled() else "log"
        self.desc, self.total, self.initial, self.done, self.unit = desc, total, initial, initial, unit
        self.every = LOG_EVERY if every is None else every
        self.started = self.last = time.monotonic()
        self.bar: Any = None
        if self.mode == "bar":
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=desc, unit=f" {unit}s", unit_scale=True, dynamic_ncols=True)

    def update(self, n: int) -> None:
        if n <= 0:
            return
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.mode == "log" and time.monotonic() - self.last >= self.every:
            self.last = time.monotonic()
            self._line()

    def _line(self, final: bool = False) -> None:
        elapsed = time.monotonic() - self.started
        rate = (self.done - self.initial) / elapsed if elapsed > 0 else 0.0
        units = f"{self.unit}s"
        if final:
            text = f"{self.desc}: {self.done - self.initial:,} {units} in {_duration(elapsed)} ({rate:,.0f} {units}/s)"
        else:
            left = f", {_duration((self.total - self.done) / rate)} left" if rate > 0 else ""
            share = f" ({100 * self.done / self.total:.1f} %)" if self.total else ""
            text = f"{self.desc}: {self.done:,} of {self.total:,} {units}{share}, {rate:,.0f} {units}/s{left}"
        sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif self.mode == "log" and self.done > self.initial:
            self._line(final=True)
            self.mode = "off"


def _duration(seconds: float) -> str:
    """12 s, 6 min 58 s, 2 h 5 min."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


class TrainingBar(TrainerCallback):
    """The training phase as one bar: steps, then loss, learning rate and the last validation score."""

    def __init__(self) -> None:
        self.bar: Any = None
        self.postfix: dict[str, str] = {}

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero and enabled():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc="training", unit="step")

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.bar is None or not logs:
            return
        if "loss" in logs:
            self.postfix["loss"] = f"{float(logs['loss']):.4f}"
        if "learning_rate" in logs:
            self.postfix["lr"] = f"{float(logs['learning_rate']):.2e}"
        self.bar.set_postfix(self.postfix, refresh=True)

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if self.bar is None or not metrics or not args.metric_for_best_model:
            return
        key = f"eval_{args.metric_for_best_model}"
        if isinstance(metrics.get(key), (int, float)):
            self.postfix[f"val {args.metric_for_best_model}"] = f"{metrics[key]:.4f}"
            self.bar.set_postfix(self.postfix, refresh=True)

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
