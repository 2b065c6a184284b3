"""The run sequence of LS and SFT training, written once: open → data → config → fit → save → results → record → report.

Both methods train on the HF Trainer (SFT through TRL's `SFTTrainer`, a Trainer subclass), so
the sequence, the mapping from `TrainConfig` to `TrainingArguments`, the precision, the
callbacks and the resume logic exist once, here (`run_training`). A `Method` states only what
differs:

- LS (`training.LSMethod`) resolves presets, builds the classifier, selects a checkpoint on
  validation (``select="accuracy"`` / ``"f1"``: evaluation and saving every ``eval_steps``,
  default once per epoch, the best one loaded at the end), saves adapter + head and evaluates
  the selected model with the same `Classifier` as `eval` / `predict` / `serve`.
- SFT (`sft.training.SFTMethod`) refuses token tasks, builds TRL's trainer (completion-only
  loss, padding-free batches), selects nothing (a checkpoint at the same cadence for
  `--resume`), saves the causal-LM adapter and scores answers from the saved run.

The walk of a run, for either method: `runs.open_run` → `--threads` → `load_data` →
`Method.prepare` → config.yaml → `training_precision` → `Method.build_trainer` (which calls
`trainer_arguments` + `trainer_callbacks`) → `fit` → logs/trainer_state.json → `Method.save`
→ `Method.results` → `runs.record_finished` → report.html.
"""

from __future__ import annotations

import gc
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.tensorboard import SummaryWriter
from transformers import EarlyStoppingCallback, Trainer, TrainerCallback, TrainerState, TrainingArguments
from transformers.integrations import TensorBoardCallback
from transformers.trainer_callback import ProgressCallback

from lsllm import distributed, rank_log, runs
from lsllm.config import TrainConfig
from lsllm.data import DatasetBundle, load_data
from lsllm.errors import ConfigError
from lsllm.hardware import configure_threads, default_device, machine, training_dtype
from lsllm.models.backbones import check_quantization
from lsllm.progress import TrainingBar
from lsllm.report import write_report

log = logging.getLogger(__name__)


def planned_steps(t: TrainConfig, n_train: int) -> tuple[int, int]:
    """(optimizer steps per epoch, total steps) for ``n_train`` examples on one process."""
    per_epoch = max(1, math.ceil(n_train / (t.batch_size * t.grad_accum)))
    total = t.max_steps if t.max_steps > 0 else max(1, math.ceil(per_epoch * t.epochs))
    return per_epoch, total


@dataclass(frozen=True)
class Precision:
    """How a run computes: the dtype its weights are loaded in, and whether the Trainer runs bf16 autocast."""

    weights: torch.dtype
    bf16: bool


def training_precision(cfg: Any, autocast_bf16_weights: bool) -> Precision:
    """The run's precision, decided once for both methods (`hardware.training_dtype`).

    ``autocast_bf16_weights`` is the one difference between the methods: SFT runs a bf16 (or
    4-bit) backbone under the Trainer's bf16 autocast, so its fp32 LoRA matmuls run in bf16 too;
    LS does not, because its head `score` and pooling must stay fp32 (the classifier casts to
    them itself, and autocast would run the head in bf16).
    """
    weights, autocast = training_dtype(cfg.model.dtype, not cfg.lora.enabled, default_device())
    low_precision = weights == torch.bfloat16 or cfg.model.quantize is not None
    return Precision(weights, autocast or (autocast_bf16_weights and low_precision))


def trainer_arguments(cfg: Any, run: runs.RunDir, n_train: int, precision: Precision, select: str | None = None,
                      args_cls: type = TrainingArguments, **method_args: Any) -> TrainingArguments:
    """The Trainer's arguments for a run of ``n_train`` training examples.

    Args:
        cfg: a RunConfig or SFTRunConfig (only ``cfg.train`` is read).
        precision: from `training_precision`.
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
        bf16=precision.bf16,
        fp16=False,
        disable_tqdm=False,
        **selection,
        **method_args,
    )


class CheckpointCompleted(TrainerCallback):
    """Mark a checkpoint complete only once the Trainer has written all of it (safe --resume)."""

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            runs.mark_checkpoint_complete(Path(args.output_dir) / f"checkpoint-{state.global_step}")


class LogToLogger(TrainerCallback):
    """Training logs go to `logging` (library code does not print; the CLI shows a progress bar)."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            log.info("step %d/%d: %s", state.global_step, state.max_steps,
                     ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in logs.items()))


def trainer_callbacks(cfg: Any, run: runs.RunDir) -> list[TrainerCallback]:
    """Checkpoint completion markers (safe --resume), TensorBoard in run/logs (main process), logs to `logging`, early stopping."""
    callbacks: list[TrainerCallback] = [CheckpointCompleted(), LogToLogger()]
    if runs.is_main_process():  # the writer creates its events file at once: only the process that owns the run
        callbacks.insert(1, TensorBoardCallback(tb_writer=SummaryWriter(str(run.logs))))
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
    trainer._load_from_checkpoint(str(chosen))  # as the Trainer's own load_best_model does: adapter or every weight


class Method:
    """What one training method adds to the shared run sequence (`run_training`); subclasses fill it in."""

    prefix = ""  # of the default run folder's name
    command = "lsllm train"  # the command that reproduces a run from its config.yaml
    autocast_bf16_weights = False  # see `training_precision`
    trains_sharded = False  # whether it trains with weights sharded across processes (FSDP, ZeRO-3): see `unshard`

    def prepare(self, cfg: Any, bundle: DatasetBundle, explicit: set[str]) -> None:
        """Check the data against the settings and resolve what depends on it, before config.yaml is saved (new runs)."""

    def build_trainer(self, cfg: Any, run: runs.RunDir, bundle: DatasetBundle, precision: Precision) -> Trainer:
        raise NotImplementedError

    def before_fit(self, run: runs.RunDir, bundle: DatasetBundle) -> None:
        """Anything measured before the first step of a new run (on the main process)."""

    def save(self, run: runs.RunDir, cfg: Any, bundle: DatasetBundle, trainer: Trainer) -> None:
        """Write model/ (through `runs.save_model`)."""
        raise NotImplementedError

    def unshard(self, cfg: Any, bundle: DatasetBundle, state_dict: dict) -> torch.nn.Module:
        """The trained model whole on rank 0 after sharded training: built again, ``state_dict`` (gathered) loaded."""
        raise NotImplementedError

    def results(self, run: runs.RunDir, cfg: Any, bundle: DatasetBundle, state: TrainerState, train_seconds: float) -> None:
        """Evaluate the trained model and write metrics.json, predictions, the card (the trainer is gone by now)."""
        raise NotImplementedError


def run_training(cfg: Any, method: Method, explicit: set[str] | frozenset = frozenset(),
                 callbacks: Sequence[TrainerCallback] = ()) -> Path:
    """Train one run of ``method`` from ``cfg`` and write its run directory; the same sequence for LS and SFT.

    Args:
        cfg: a RunConfig or SFTRunConfig.
        method: what the method adds (model, trainer, how the model is saved, how results are computed).
        explicit: dotted config fields the user set explicitly (presets do not override them).
        callbacks: more Trainer callbacks for this run (e.g. `lsllm tune`'s pruning).

    Returns:
        The run directory (already finished: returned as is, with a warning, on --resume).
    """
    started = time.time()
    launch = distributed.launch()  # before the Trainer sets launcher variables of its own
    distributed.check_launch(torch.cuda.is_available())
    configure_threads(cfg.train.threads)  # `--threads`, from the CLI, a YAML or Python alike
    check_quantization(cfg.model.quantize, cfg.lora.enabled)  # refuse QLoRA without CUDA before any work is done
    run, cfg = runs.open_run(cfg, prefix=method.prefix)
    if cfg.train.resume and run.finished():
        log.warning("%s finished already: nothing to resume", run.root)
        return run.root
    main_process = runs.is_main_process()  # the only process that writes the run (the others' RNG states aside)
    if main_process:
        run.root.mkdir(parents=True, exist_ok=True)
    bundle = load_data(cfg.data)
    method.prepare(cfg, bundle, set(explicit))
    if not cfg.train.resume and main_process:
        cfg.save(run.config)
    torch.manual_seed(cfg.train.seed)
    trainer = method.build_trainer(cfg, run, bundle, training_precision(cfg, method.autocast_bf16_weights))
    distributed.check_sharding(trainer, method.trains_sharded, method.command)  # known once the Trainer read its config
    sharded = distributed.weights_sharded(trainer)
    trainer.remove_callback(ProgressCallback)  # its bar prints every log as a dict: ours puts them in the postfix
    trainer.add_callback(TrainingBar())
    for callback in callbacks:
        trainer.add_callback(callback)
    if not cfg.train.resume and main_process:
        method.before_fit(run, bundle)
    clock = time.perf_counter()
    fit(trainer, run, cfg.train.resume)
    train_seconds = time.perf_counter() - clock
    # FSDP, ZeRO-3: every process takes part in gathering the selected weights; rank 0 receives them (on the CPU)
    gathered = trainer.accelerator.get_state_dict(trainer.model_wrapped) if sharded else None
    if rank_log.folder() is not None and not sharded:  # LSLLM_DEBUG_RANKS: every process's final weights
        rank_log.record_weights(trainer.model)
    # From here rank 0 works alone. Every process leaves the process group now, all together once every
    # collective is done: a gloo process that exits without leaving it can abort at interpreter exit (SIGABRT),
    # failing a run that trained well.
    trainer.accelerator.wait_for_everyone()
    trainer.accelerator.end_training()
    if not trainer.is_world_process_zero():  # under torchrun only rank 0 writes the run
        return run.root
    launch["sharding"] = "fsdp" if trainer.is_fsdp_enabled else "deepspeed" if trainer.is_deepspeed_enabled else None
    if sharded:  # rank 0 goes on with the whole model: built again here, the gathered weights loaded into it
        trainer.model = method.unshard(cfg, bundle, gathered)
        if rank_log.folder() is not None:
            rank_log.record_weights(trainer.model)
    trainer.state.save_to_json(str(run.trainer_state))
    method.save(run, cfg, bundle, trainer)
    state = trainer.state
    del trainer  # the method keeps what its results need; SFT scores the saved run, with the training model freed
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    method.results(run, cfg, bundle, state, train_seconds)
    runs.record_finished(run, started, reproduce=f"{method.command} --config {run.config} --output NEW_DIR",
                         resumed=cfg.train.resume, steps=state.global_step, machine=machine(),
                         examples={split: len(examples) for split, examples in bundle.splits.items()}, **launch)
    write_report([run.root])
    return run.root
