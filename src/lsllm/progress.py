"""Progress on the terminal: one bar per phase, shown to a person and never to a log file.

A bar is drawn when stderr is a terminal, or when ``LSLLM_PROGRESS=1`` (tests, `script`);
``LSLLM_PROGRESS=0`` (what `--quiet` sets) turns every bar off. Training shows one bar with the
loss, the learning rate and the last validation score in its postfix (`TrainingBar`) instead
of the Trainer's printed dicts; evaluation and prediction show their own short-lived bars.
Everything a bar shows also goes to the run's logs (logs/, TensorBoard), so nothing is lost.
"""

from __future__ import annotations

import os
import sys
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
