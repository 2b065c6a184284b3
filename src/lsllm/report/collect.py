"""Read what a run or study directory holds into plain data for the report, loading no model.

A report must open on any run: finished or not, LS or SFT, written by this or an older lsllm.
So only config.yaml (a run), study.json (a study) or tune.json (a tune) is required; every other file is optional
and a missing or unreadable one becomes a line in ``notes`` that the report shows, never an
error. What is read, and from where:

    config.yaml                     method (LS-LLM / LS-unLLM / SFT), model, data, recipe
    model/lsllm.json | lsllm-sft.json   task, labels, weights source, attention, pooling, versions
    run.json                        command, reproduce, started, seconds (written when a run finishes)
    metrics.json                    validation / test (and SFT train) metrics
    predictions.jsonl               the records of the reported split (test, else validation)
    checkpoints/*/trainer_state.json or logs/trainer_state.json   the Trainer's log_history
    logs/ (TensorBoard events)      the same curves when no trainer_state.json is left
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lsllm import describe
from lsllm.config import read_mapping
from lsllm.errors import ConfigError
from lsllm.problems import Problem, family
from lsllm.runs import RunDir, RunInfo, SFTInfo, read_json_noting, read_jsonl_noting

STUDY = "study.json"
TUNE = "tune.json"  # written by `lsllm tune` (lsllm.tune) beside its trial run folders
TUNE_PLOTS = ("history.png", "importances.png", "slice.png")


@dataclass
class Curves:
    """Training loss and the validation selection metric over optimizer steps."""

    metric: str  # the validation metric the run selected on: accuracy | jaccard | pearson (seq, by problem) | f1 (token)
    loss: list[tuple[int, float]] = field(default_factory=list)
    validation: list[tuple[int, float]] = field(default_factory=list)
    selected_step: int | None = None  # the checkpoint the run's model comes from
    selected_reason: str = ""  # "best validation <metric>" | "final model"
    source: str = ""  # the file the points were read from
    percent: bool = True  # the metric is a fraction shown as a percentage (`Problem.percent`; not a correlation)


@dataclass
class Run:
    """One run directory, as far as it is written."""

    root: Path
    kind: str  # "ls" | "sft"
    method: str  # "LS-LLM" | "LS-unLLM" | "SFT (chat)" ...
    task: str  # "seq" | "token"
    config: dict[str, Any]
    info: RunInfo | SFTInfo | None  # model/lsllm.json or model/lsllm-sft.json (None when absent or unreadable)
    record: dict[str, Any]  # run.json ({} when absent)
    metrics: dict[str, dict[str, Any]]  # split -> metrics ({} when absent)
    predictions: list[dict[str, Any]]
    predictions_split: str  # the split predictions.jsonl holds
    curves: Curves
    notes: list[str] = field(default_factory=list)  # what is missing or unreadable

    @property
    def labels(self) -> list[str]:
        return list((self.info.labels if self.info else None) or (self.config.get("data") or {}).get("labels") or [])

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def problem(self) -> str:
        """single-label | multi-label | regression (sequence runs; token runs are single-label per word)."""
        return (self.info.problem if self.info else None) or (self.config.get("data") or {}).get("problem") or "single-label"

    @property
    def family(self) -> Problem:
        """The run's member of the task family (`lsllm.problems`): what the report asks instead of testing names."""
        return family(self.task, self.problem)

    @property
    def ls_info(self) -> RunInfo | None:
        """model/lsllm.json of an LS run (attention, pooling, dataset name); None for SFT runs or when absent."""
        return self.info if isinstance(self.info, RunInfo) else None


@dataclass
class Study:
    """A study directory: study.json (cells and their summary) and the runs it points at."""

    root: Path
    spec: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.root.name

    def cell_run(self, cell: dict[str, Any]) -> Path | None:
        return (self.root / cell["run"]) if cell.get("run") else None


@dataclass
class Tune:
    """A tune directory: tune.json (settings, every trial, the best one) beside the trials' run folders."""

    root: Path
    spec: dict[str, Any]

    @property
    def name(self) -> str:
        return self.root.name


def read(path: str | Path) -> Run | Study | Tune:
    """A run directory (config.yaml), a study directory (study.json) or a tune directory (tune.json).

    Raises:
        ConfigError: the folder is neither, or its config.yaml / study.json is unreadable.
    """
    path = Path(path)
    if not path.is_dir():
        raise ConfigError(f"{path}: no such directory; pass a run directory (config.yaml) or a study directory ({STUDY})")
    if (path / STUDY).is_file():
        return read_study(path)
    if (path / TUNE).is_file():
        spec = read_mapping(path / TUNE, "json", fix="was the tune interrupted while writing? run it again with --resume")
        return Tune(path, {**spec, "trials": spec.get("trials") or []})
    if RunDir(path).exists():
        return read_run(path)
    raise ConfigError(f"{path}: neither a run (no config.yaml) nor a study (no {STUDY}) nor a tune (no {TUNE}); pass the "
                      "folder `lsllm train`, `lsllm sft train`, `lsllm study` or `lsllm tune` wrote")


def read_study(root: Path) -> Study:
    spec = read_mapping(root / STUDY, "json", fix="was the study interrupted while writing? run it again with --resume")
    spec.setdefault("cells", [])
    spec.setdefault("summary", [])
    return Study(root, spec)


def read_run(root: Path) -> Run:
    notes: list[str] = []
    run = RunDir(root)
    config = run.read_config()
    kind = "sft" if config.get("sft") else "ls"
    info = run.info_noting(SFTInfo if kind == "sft" else RunInfo, notes, "the model is not saved yet")
    record = read_json_noting(run.record, None)
    metrics = read_json_noting(run.metrics, notes, "no results yet (training not finished?)")
    record, metrics = (value if isinstance(value, dict) else {} for value in (record, metrics))
    task = (info.task if info else None) or (config.get("data") or {}).get("task") or "seq"
    split = "test" if "test" in metrics else "validation"
    predictions = read_jsonl_noting(run.predictions, notes, "absent, so no error analysis")
    problem = (info.problem if info else None) or (config.get("data") or {}).get("problem") or "single-label"
    curves = read_curves(root, kind, task, problem)
    before = (metrics.get("step0") or {}).get(curves.metric)  # validation before training (--head-init labels)
    if isinstance(before, (int, float)) and not any(step == 0 for step, _ in curves.validation):
        curves.validation.insert(0, (0, float(before)))
    if not curves.loss and not curves.validation:
        notes.append("no training log found (checkpoints/*/trainer_state.json, logs/): no curves")
    return Run(root=root, kind=kind, method=describe.method_name(config), task=task, config=config, info=info, record=record,
               metrics=metrics, predictions=predictions, predictions_split=split, curves=curves, notes=notes)


def read_curves(root: Path, kind: str, task: str, problem: str | None = None) -> Curves:
    """The curves from the newest trainer_state.json, else from the TensorBoard events in logs/.

    The validation curve is the metric the run selected its checkpoint on (`Problem.selection`:
    Pearson for a regression, Jaccard for multi-label, accuracy for single-label; F1 for NER).
    """
    member = family(task, problem)
    metric = member.selection
    curves = Curves(metric, percent=metric in member.percent)
    state_file = RunDir(root).newest_trainer_state()
    if state_file is not None:
        state = read_json_noting(state_file, None)
        if isinstance(state, dict):
            history = state.get("log_history") or []
            curves.loss = [(h["step"], float(h["loss"])) for h in history if "loss" in h and "step" in h]
            curves.validation = [(h["step"], float(h[f"eval_{metric}"])) for h in history if f"eval_{metric}" in h and "step" in h]
            curves.source = str(state_file.relative_to(root))
            curves.selected_step, curves.selected_reason = _selected(state, kind, metric)
            return curves
    return _tensorboard_curves(RunDir(root).logs, curves, kind)


def _selected(state: dict[str, Any], kind: str, metric: str) -> tuple[int | None, str]:
    """LS runs load the best validation checkpoint at the end; SFT runs keep the final model."""
    if kind == "sft":
        return state.get("global_step"), "final model"
    step = state.get("best_global_step")
    if step is None and state.get("best_model_checkpoint"):
        match = re.search(r"checkpoint-(\d+)$", str(state["best_model_checkpoint"]).rstrip("/"))
        step = int(match.group(1)) if match else None
    return step, f"best validation {metric}" if step is not None else ""


def _tensorboard_curves(logs: Path, curves: Curves, kind: str) -> Curves:
    if not logs.is_dir() or not any(logs.glob("**/events.out.tfevents.*")):
        return curves
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError:
        return curves
    accumulator = EventAccumulator(str(logs), size_guidance={"scalars": 0})
    accumulator.Reload()
    tags = set(accumulator.Tags().get("scalars", []))

    def points(tag: str) -> list[tuple[int, float]]:
        by_step = {event.step: float(event.value) for event in accumulator.Scalars(tag)} if tag in tags else {}
        return sorted(by_step.items())  # a resumed run logs some steps twice: the later value wins

    curves.loss = points("train/loss")
    curves.validation = points(f"eval/{curves.metric}")
    curves.source = "logs/ (TensorBoard)"
    if kind == "sft" and curves.loss:
        curves.selected_step, curves.selected_reason = curves.loss[-1][0], "final model"
    elif curves.validation:  # the best checkpoint; the earliest on ties, as the Trainer keeps it
        best = max(curves.validation, key=lambda p: (p[1], -p[0]))
        curves.selected_step, curves.selected_reason = best[0], f"best validation {curves.metric}"
    return curves
