"""One run lifecycle for LS and SFT runs: our settings → the Trainer, then train with exact resume.

Both methods train on the HF Trainer (SFT through TRL's `SFTTrainer`, a Trainer subclass), so
the mapping from `TrainConfig` to `TrainingArguments`, the callbacks and the resume logic exist
once, here. Each method states only its real difference:

- LS selects a checkpoint on validation (``select="accuracy"`` / ``"f1"``): evaluation and saving
  every ``eval_steps`` (default once per epoch), the best one loaded at the end.
- SFT selects nothing (answers are scored by generation after training): no evaluation during
  training, a checkpoint at the same cadence for `--resume`, and TRL's own arguments
  (completion-only loss, padding-free batches) passed through ``method_args``.

The walk of a run, for either method: `runs.open_run` → data → model → `trainer_arguments` +
`trainer_callbacks` → `fit` → `runs.save_model` → results → `runs.record_finished`.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import torch
from torch.utils.tensorboard import SummaryWriter
from transformers import EarlyStoppingCallback, Trainer, TrainerCallback, TrainerState, TrainingArguments
from transformers.integrations import TensorBoardCallback

from lsllm import runs
from lsllm.config import TrainConfig
from lsllm.errors import ConfigError

log = logging.getLogger(__name__)


def planned_steps(t: TrainConfig, n_train: int) -> tuple[int, int]:
    """(optimizer steps per epoch, total steps) for ``n_train`` examples on one process."""
    per_epoch = max(1, math.ceil(n_train / (t.batch_size * t.grad_accum)))
    total = t.max_steps if t.max_steps > 0 else max(1, math.ceil(per_epoch * t.epochs))
    return per_epoch, total


def trainer_arguments(cfg: Any, run: runs.RunDir, n_train: int, select: str | None = None,
                      args_cls: type = TrainingArguments, **method_args: Any) -> TrainingArguments:
    """The Trainer's arguments for a run of ``n_train`` training examples.

    Args:
        cfg: a RunConfig or SFTRunConfig (only ``cfg.train`` is read).
        select: the validation metric that picks the best checkpoint, or None (no evaluation).
        args_cls: TrainingArguments or a subclass (TRL's SFTConfig).
        method_args: the method's own extra arguments for ``args_cls``.
    """
    t = cfg.train
    per_epoch, total = planned_steps(t, n_train)
    every = t.eval_steps or per_epoch  # evaluation and checkpoint cadence
    selection: dict[str, Any] = (
        {"eval_strategy": "steps", "eval_steps": every, "load_best_model_at_end": True,
         "metric_for_best_model": select, "greater_is_better": True}
        if select else {"eval_strategy": "no"}
    )
    return args_cls(
        output_dir=str(run.checkpoints),
        per_device_train_batch_size=t.batch_size,
        gradient_accumulation_steps=t.grad_accum,
        learning_rate=t.lr,
        weight_decay=t.weight_decay,
        lr_scheduler_type=t.scheduler,
        warmup_steps=t.warmup_ratio,  # below 1: a fraction of the total steps (transformers' rule)
        num_train_epochs=t.epochs,
        max_steps=t.max_steps,
        save_strategy="steps",
        save_steps=every,
        save_total_limit=2,  # the latest and, when selecting, the best
        save_only_model=False,  # optimizer, scheduler and RNG states: resume is exact
        # Enough points for a loss curve, never more than every 50 steps; the first step too.
        logging_steps=max(1, min(50, total // 50)),
        logging_first_step=True,
        report_to="none",
        seed=t.seed,
        data_seed=t.seed,
        dataloader_num_workers=0,
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=False,
        **selection,
        **method_args,
    )


class LogToLogger(TrainerCallback):
    """Training logs go to `logging` (library code does not print; the CLI shows a progress bar)."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            log.info("step %d/%d: %s", state.global_step, state.max_steps,
                     ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in logs.items()))


def trainer_callbacks(cfg: Any, run: runs.RunDir) -> list[TrainerCallback]:
    """Checkpoint completion markers (safe --resume), TensorBoard in run/logs, logs to `logging`, early stopping."""
    callbacks: list[TrainerCallback] = [
        runs.CheckpointCompleted(),
        TensorBoardCallback(tb_writer=SummaryWriter(str(run.logs))),
        LogToLogger(),
    ]
    if getattr(cfg.train, "early_stopping", None):
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=cfg.train.early_stopping))
    return callbacks


def fit(trainer: Trainer, run: runs.RunDir, resume: bool) -> None:
    """Train, continuing from the last complete checkpoint on --resume, with the same result as one go.

    A run killed after its last training step (while evaluating or saving the model) is not
    trained again: its final Trainer state and selected weights are restored instead, because the
    Trainer, resumed at ``max_steps`` inside an epoch, would take one step past it.
    """
    checkpoint = runs.resume_point(run) if resume else None
    final = runs.training_finished_at(checkpoint)
    if final is None:
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        return
    assert checkpoint is not None
    log.info("training had finished at step %d: restoring it from %s", final["global_step"], checkpoint)
    trainer.state = TrainerState.load_from_json(str(checkpoint / "trainer_state.json"))
    chosen = Path(trainer.state.best_model_checkpoint or checkpoint)
    if trainer.args.load_best_model_at_end and trainer.state.best_model_checkpoint and not chosen.is_dir():
        raise ConfigError(f"{chosen}: the selected checkpoint is missing; retrain the run without --resume")
    model = trainer.model
    model.load_adapter(str(chosen), adapter_name=model.active_adapter)  # as the Trainer's own load_best_model does
