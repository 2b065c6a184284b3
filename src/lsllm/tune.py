"""`lsllm tune`: the recipe for the user's data, searched inside a time budget and selected on validation.

    lsllm tune --data my.tsv --prompt 'Review: {text}\\nSentiment:' --budget 2h --output tunes/mine
    lsllm tune --output tunes/mine --resume --budget 30m        # a killed tune continues
    lsllm train --config tunes/mine/best.yaml --output runs/best  # the best trial, trained again

An Optuna study (TPE sampler, median or successive-halving pruner) whose trials are ordinary run
folders, ``DIR/trial-0007`` (named by Optuna's trial number, unique in a study even when several
processes share one storage), each trained by `training.train` on the user's run config with the
trial's settings set (`Given.trial`, `trial_settings`: one rule per dimension; the user's flags are
read once, `Given`). A trial's value is its run's selection metric on validation (`Problem.selection`:
accuracy, entity F1, Jaccard, Pearson), read from its metrics.json; test is never used to
select, and only the best trial's test score is reported, once, after the search.

Pruning: `PruningCallback` reports every validation score to the trial and raises
`optuna.TrialPruned` when the pruner says so; the exception leaves the Trainer, the objective
marks the run folder as pruned (``tune-trial.json``) and Optuna records the trial as pruned.

The study lives in a storage (default ``sqlite:///DIR/tune.db``, or ``--storage URL`` for a
shared database); the tune's settings (data, flags, space) are saved in the study itself, so
``--resume`` needs only the folder, and another process (or machine) can join the same study.
Workers on several machines share a database server (`open_storage`): one creates the study and
queues the hand-made recipe once (`open_study`), a trial drawn after the study holds --trials
trials is given back unrun (`objective_for`), a killed worker's trial is failed by heartbeat, and
each worker writes the whole study's outputs from the database. Outputs beside the trials:
tune.json, tune.md, best.yaml, history.png, importances.png, slice.png and report.html.
"""

from __future__ import annotations

import argparse
import gc
import inspect
import logging
import math
import os
import random
import re
import socket
import statistics
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from transformers import TrainerCallback

from lsllm import flags, runs
from lsllm.config import ALL_PROJECTIONS, RunConfig, apply_preset, read_mapping
from lsllm.data import load_data
from lsllm.errors import ConfigError, LsllmError, ModelError
from lsllm.files import atomic_save_figure, atomic_write_json, atomic_write_text
from lsllm.models.head_init import label_phrases
from lsllm.problems import Problem, family
from lsllm.report import write_report

log = logging.getLogger(__name__)

TUNE_JSON = "tune.json"
TUNE_DB = "tune.db"
BEST_YAML = "best.yaml"
TRIAL_MARK = "tune-trial.json"  # in each trial's run folder: the trial's number, state and parameters
GIVEN_BACK = "given_back"  # a trial's user attribute: drawn after the study held --trials trials, never run
HEARTBEAT_S = 60  # a running trial's worker records a heartbeat this often (--heartbeat)
STALE_HEARTBEATS = 3  # a running trial whose worker missed this many heartbeats is failed by the next worker to look
STALE_ERROR = "its worker stopped sending heartbeats (killed, or its machine lost)"
SPEC_WAIT_S = 30.0  # a joining worker waits this long for the creating worker to save the tune's settings
CONNECT_TIMEOUT_S = 10  # seconds to reach a database server before --storage is refused
MIN_BUDGET_S = 60.0
PRUNERS = ("median", "halving", "none")
STATES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running", "WAITING": "waiting"}
# The LoRA target sets the space chooses among.
TARGETS = {"qv": ["q_proj", "v_proj"], "attention": ["q_proj", "k_proj", "v_proj", "o_proj"], "all": list(ALL_PROJECTIONS)}
# The built-in dimensions and the settings each one sets (a train flag given for one of them fixes it).
DIMENSIONS: dict[str, tuple[str, ...]] = {
    "lr": ("train.lr",),
    "head_lr_ratio": ("train.head_lr",),
    "lora_r": ("lora.r",),
    "lora_alpha_ratio": ("lora.alpha",),
    "lora_targets": ("lora.target_modules",),
    "lora_dropout": ("lora.dropout",),
    "epochs": ("train.epochs",),
    "attention": ("model.attention", "model.bidirectional", "model.unmask_layers"),
    "pooling": ("model.pooling",),
    "head_init": ("model.head_init",),
}
NOT_SEARCHED = {"output", "resume"}  # settings a trial does not choose: the tune places each run itself
KINDS = ("float", "int", "categorical")
_now = time.monotonic  # the budget's clock (tests replace it)


# ---------------------------------------------------------------- budget


def parse_budget(text: str | float | int) -> float:
    """``30m``, ``2h``, ``1h30m``, ``5400s`` or ``5400`` (seconds) -> seconds; at least a minute.

    Raises:
        ConfigError: unreadable, or under 60 s (too short for one trial).
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        spec = str(text).strip().lower().replace(" ", "")
        units = {"h": 3600.0, "m": 60.0, "s": 1.0}
        if re.fullmatch(r"\d+(\.\d+)?", spec):
            seconds = float(spec)
        elif spec and re.fullmatch(r"(\d+(\.\d+)?[hms])+", spec):
            seconds = sum(float(n) * units[u] for n, _, u in re.findall(r"(\d+(\.\d+)?)([hms])", spec))
        else:
            raise ConfigError(f"--budget {text}: give a duration like 30m, 2h, 1h30m or 5400s")
    if not math.isfinite(seconds) or seconds < MIN_BUDGET_S:
        raise ConfigError(f"--budget {text}: {seconds:g} s is too short for one trial; give at least {MIN_BUDGET_S:.0f}s, "
                          "e.g. 30m")
    return seconds


def clock(seconds: float | None) -> str:
    """5400 -> "1h30m", 95 -> "1m35s", 12.3 -> "12s"."""
    if seconds is None:
        return "-"
    s = max(0, round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


# ---------------------------------------------------------------- the search space


@dataclass
class Dim:
    """One dimension: a float or int range (``log`` for a log scale) or a list of choices."""

    name: str
    type: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    choices: list[Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.type == "categorical":
            return {"type": self.type, "choices": list(self.choices or [])}
        return {"type": self.type, "low": self.low, "high": self.high, "log": self.log}

    @classmethod
    def from_dict(cls, name: str, raw: dict[str, Any]) -> Dim:
        return cls(name, raw["type"], raw.get("low"), raw.get("high"), bool(raw.get("log", False)), raw.get("choices"))

    def suggest(self, trial: Any) -> Any:
        if self.type == "float":
            return trial.suggest_float(self.name, float(self.low), float(self.high), log=self.log)
        if self.type == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_categorical(self.name, list(self.choices or []))

    def probes(self) -> list[Any]:
        """The values that decide whether the train flags accept the dimension: both ends, or every choice."""
        return list(self.choices or []) if self.type == "categorical" else [self.low, self.high]


def _settings() -> dict[str, tuple[str, str, str]]:
    """Every train setting by its flag name with underscores (``weight_decay``): (section, field, annotation)."""
    import dataclasses

    out = {}
    for section, cls in flags.SECTIONS.items():
        for f in dataclasses.fields(cls):
            name = flags.flag_for(section, f.name).replace("-", "_")
            if f.name not in NOT_SEARCHED:
                out[name] = (section, f.name, str(f.type))
    return out


def labels_are_words(labels: list[str], label_words: list[str] | None) -> bool:
    """Whether --head-init labels would start the head from words (the rule of `head_init.label_words`, silently)."""
    if label_words is not None:
        return len(label_words) == len(labels)
    return label_phrases(labels) is not None


def default_space(kind: Problem, cfg: Any, explicit: set[str], labels: list[str],
                  fixed: Sequence[str] = ()) -> tuple[dict[str, Dim], list[str]]:
    """The space made for label supervision on this data (``kind``: its family member), and what was left out and why.

    A dimension is left out when ``fixed`` names it, when a train flag sets its setting (the
    user's choice wins), or when it means nothing here (LoRA dimensions with --no-lora, epochs
    with --max-steps, a setting the data's family member refuses (`Problem.refuse_settings`:
    pooling for token tasks, the label-word head for token tasks and regressions), the label-word
    head without word labels and a --prompt).
    """
    space = {
        "lr": Dim("lr", "float", 5e-5, 1e-3, log=True),
        "head_lr_ratio": Dim("head_lr_ratio", "float", 1.0, 30.0, log=True),
        "lora_r": Dim("lora_r", "categorical", choices=[4, 8, 16, 32]),
        "lora_alpha_ratio": Dim("lora_alpha_ratio", "categorical", choices=[1, 2]),
        "lora_targets": Dim("lora_targets", "categorical", choices=list(TARGETS)),
        "lora_dropout": Dim("lora_dropout", "float", 0.0, 0.1),
        "epochs": Dim("epochs", "categorical", choices=[1, 2, 3]),
        "attention": Dim("attention", "categorical", choices=list(kind.tune_attention)),
        "pooling": Dim("pooling", "categorical", choices=["last", "mean"]),
        "head_init": Dim("head_init", "categorical", choices=["random", "labels"]),
    }
    unknown = [name for name in fixed if name not in space]
    if unknown:
        raise ConfigError(f"--fixed {' '.join(unknown)}: not a dimension; the dimensions are {', '.join(space)}")
    left_out = []
    why = {
        "lora_r": "--no-lora" if not cfg.lora.enabled else None,
        "lora_alpha_ratio": "--no-lora" if not cfg.lora.enabled else None,
        "lora_targets": "--no-lora" if not cfg.lora.enabled else None,
        "lora_dropout": "--no-lora" if not cfg.lora.enabled else None,
        "epochs": "--max-steps is set" if cfg.train.max_steps > 0 else None,
        "pooling": _refusal(kind, "model.pooling", space["pooling"].choices),
        "head_init": _refusal(kind, "model.head_init", space["head_init"].choices)
                     or ("it needs --prompt" if cfg.model.prompt is None
                         else "the labels are not words (give --label-words)"
                         if not labels_are_words(labels, cfg.model.label_words) else None),
    }
    for name in list(space):
        given = [s for s in DIMENSIONS[name] if s in explicit]
        reason = ("--fixed" if name in fixed else f"--{flags.flag_for(*given[0].split('.'))} is given" if given
                  else why.get(name))
        if reason:
            del space[name]
            left_out.append(f"{name} ({reason})")
    return space, left_out


def _number(value: Any) -> Any:
    """YAML 1.1 reads ``5e-5`` as a string: numbers written so become floats."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _numeric(name: str) -> bool:
    """Whether a dimension's values are numbers (so a YAML string like "5e-5" is read as one)."""
    if name in ("head_lr_ratio", "lora_alpha_ratio"):
        return True
    kind = _settings().get(name, ("", "", ""))[2]
    return kind.startswith(("float", "int"))


def read_space(path: str | Path) -> tuple[dict[str, Dim], dict[str, dict[str, int]]]:
    """A --space file: a mapping name -> {type, low, high, log, choices}; returns the dimensions and each key's line.

    Raises:
        ConfigError: one line naming FILE:line: bad YAML, an unknown dimension or key, a bad range.
    """
    path = Path(path)
    raw = read_mapping(path, "yaml", missing="no such space file", empty="empty space file",
                       fix="a space is a mapping name -> {type, low, high, log, choices}")
    node = yaml.compose(path.read_text(encoding="utf-8"))
    lines: dict[str, dict[str, int]] = {}
    for key_node, value_node in node.value:
        entry = {"": key_node.start_mark.line + 1}
        if isinstance(value_node, yaml.MappingNode):
            entry.update({k.value: k.start_mark.line + 1 for k, _ in value_node.value})
        lines[str(key_node.value)] = entry
    settings = _settings()
    space = {}
    for name, spec in raw.items():
        name = str(name)
        at = f"{path}:{lines.get(name, {}).get('', '?')}"
        if name not in DIMENSIONS and name not in settings:
            raise ConfigError(f"{at}: unknown dimension {name!r}; use {', '.join(DIMENSIONS)} or a train flag's name "
                              "(weight_decay, warmup_ratio, batch_size, ...)")
        if not isinstance(spec, dict):
            raise ConfigError(f"{at}: {name} must be a mapping, e.g. {{type: float, low: 0.0, high: 0.1}}")
        where = {key: f"{path}:{line}" for key, line in lines.get(name, {}).items() if key}
        extra = [k for k in spec if k not in ("type", "low", "high", "log", "choices")]
        if extra:
            raise ConfigError(f"{where.get(str(extra[0]), at)}: {name}: unknown key {extra[0]!r}; the keys are type, low, "
                              "high, log, choices")
        kind = spec.get("type")
        if kind not in KINDS:
            raise ConfigError(f"{where.get('type', at)}: {name}: type must be float, int or categorical, got {kind!r}")
        if kind == "categorical":
            choices = spec.get("choices")
            if "low" in spec or "high" in spec or "log" in spec:
                key = next(k for k in ("low", "high", "log") if k in spec)
                raise ConfigError(f"{where[key]}: {name}: a categorical dimension takes choices, not {key}")
            if not isinstance(choices, list) or not choices or any(isinstance(c, (dict, list)) or c is None for c in choices):
                raise ConfigError(f"{where.get('choices', at)}: {name}: choices must be a non-empty list of values")
            if len({repr(c) for c in choices}) != len(choices):
                raise ConfigError(f"{where['choices']}: {name}: a choice is listed twice")
            space[name] = Dim(name, kind, choices=[_number(c) if _numeric(name) else c for c in choices])
            continue
        if "choices" in spec:
            raise ConfigError(f"{where['choices']}: {name}: a {kind} dimension takes low and high, not choices")
        low, high, use_log = _number(spec.get("low")), _number(spec.get("high")), spec.get("log", False)
        for key, value in (("low", low), ("high", high)):
            ok = isinstance(value, int) if kind == "int" else isinstance(value, (int, float))
            if isinstance(value, bool) or not ok or (kind == "float" and not math.isfinite(value)):
                raise ConfigError(f"{where.get(key, at)}: {name}: {key} must be {'an integer' if kind == 'int' else 'a number'}, "
                                  f"got {value!r}")
        if low > high:
            raise ConfigError(f"{where['low']}: {name}: low {low} is above high {high}")
        if not isinstance(use_log, bool):
            raise ConfigError(f"{where['log']}: {name}: log must be true or false")
        if use_log and low <= 0:
            raise ConfigError(f"{where['low']}: {name}: a log scale needs low > 0, got {low}")
        space[name] = Dim(name, kind, float(low) if kind == "float" else low, float(high) if kind == "float" else high, use_log)
    if not space:
        raise ConfigError(f"{path}: the space names no dimension")
    return space, lines


def trial_settings(params: dict[str, Any], base: Any) -> dict[str, Any]:
    """The settings (dotted name -> value) a trial's parameters set on the user's config: one rule per dimension.

    ``base`` is the user's run config with its preset applied: the ratios (head lr, LoRA alpha)
    multiply its lr and rank when the trial does not choose them. A dimension named after a train
    setting (a --space file's ``weight_decay``) sets it, its value read as that setting's flag reads it.

    Raises:
        ValueError: a value the setting's flag could not read (``lora_r: 2.5``).
    """
    settings = _settings()
    lr = float(params.get("lr", base.train.lr))
    rank = int(params.get("lora_r", base.lora.r))
    out: dict[str, Any] = {}
    for name, value in params.items():
        if name == "head_lr_ratio":
            out["train.head_lr"] = lr * float(value)
        elif name == "lora_alpha_ratio":
            out["lora.alpha"] = max(1, round(rank * float(value)))
        elif name == "lora_targets":
            out["lora.target_modules"] = list(TARGETS.get(str(value), str(value).split()))
        elif name == "attention":
            out["model.attention"] = str(value)
            if value != "bidirectional":
                out["model.bidirectional"] = False  # the user's --bidirectional gives way to the trial's mode
        else:
            section, field, _ = settings[name]
            out[f"{section}.{field}"] = flags.flag_value(section, field, value)
    return out


def trial_flags(params: dict[str, Any], base: Any) -> list[str]:
    """The trial's settings (`trial_settings`) written as `lsllm train` flags: the record each trial keeps."""
    return settings_flags(trial_settings(params, base))


def settings_flags(settings: dict[str, Any]) -> list[str]:
    """Settings (dotted name -> value) written as the `lsllm train` flags that give them, for a record."""
    return [part for dotted, value in settings.items() for part in flags.setting_flags(dotted, value)]


def check_space(space: dict[str, Dim], spec: dict[str, Any], lines: dict[str, dict[str, int]] | None = None,
                path: str | Path | None = None, given: Given | None = None) -> None:
    """Refuse a dimension the train settings would refuse at either end of its range (or at any choice), or that
    means nothing for this data, naming FILE:line when it came from a --space file."""
    given = given or Given.of(spec)
    base, _ = given.preset(spec)
    for name, dim in space.items():
        where = lines.get(name, {}) if lines else {}
        at = f"{path}:{where.get('', '?')}" if path else f"dimension {name}"
        task_issue = _task_issue(name, dim, spec, base)
        if task_issue:
            raise ConfigError(f"{at}: {name}: {task_issue}")
        keys = ["low", "high"] if dim.type != "categorical" else ["choices"] * len(dim.probes())
        for key, value in zip(keys, dim.probes(), strict=True):
            mark = f"{path}:{where.get(key, where.get('', '?'))}" if path else at
            kind = _settings().get(name, ("", "", ""))[2]
            if (kind == "int" and (isinstance(value, bool) or not isinstance(value, int))) or (
                    kind == "float" and (isinstance(value, bool) or not isinstance(value, (int, float)))):
                raise ConfigError(f"{mark}: {name} = {value!r}: the train flag takes {'an integer' if kind == 'int' else 'a number'}")
            try:
                flags.with_settings(given.config, trial_settings({name: value}, base))
            except LsllmError as err:
                raise ConfigError(f"{mark}: {name} = {value!r} is refused by the train flags: {err}") from None
            except (TypeError, ValueError):  # the flag could not read the value
                raise ConfigError(f"{mark}: {name} = {value!r} is not a value the train flag takes") from None


def _refusal(kind: Problem, dotted: str, values: Sequence[Any]) -> str | None:
    """The family member's one-line refusal (`Problem.refuse_settings`) of the setting ``dotted`` at any of
    ``values``, or None where every value applies to this data."""
    section, name = dotted.split(".")
    for value in values:
        probe = RunConfig()
        setattr(getattr(probe, section), name, value)
        try:
            kind.refuse_settings(probe)
        except ConfigError as err:
            return str(err)
    return None


def _task_issue(name: str, dim: Dim, spec: dict[str, Any], base: Any) -> str | None:
    """Why a dimension means nothing for this data and these flags, or None."""
    kind = family(spec["task"], spec.get("problem"))
    values = dim.probes()
    if name in ("lora_r", "lora_alpha_ratio", "lora_targets", "lora_dropout", "lora_alpha", "target_modules") and not base.lora.enabled:
        return "LoRA is off (--no-lora); drop the dimension"
    if name == "epochs" and base.train.max_steps > 0:
        return "--max-steps is set, so epochs are ignored; drop one"
    settings = DIMENSIONS.get(name) or ((".".join(_settings()[name][:2]),) if name in _settings() else ())
    refused = _refusal(kind, settings[0], values) if len(settings) == 1 else None  # e.g. pooling, head_init for NER
    if refused:
        return refused
    if name == "lora_targets":
        bad = [v for v in values if str(v) not in TARGETS and not all(p.endswith("proj") for p in str(v).split())]
        if bad:
            return f"choice {bad[0]!r}: use {', '.join(TARGETS)} or projection names like 'q_proj v_proj'"
    if name in ("head_lr_ratio", "lora_alpha_ratio") and any(not isinstance(v, (int, float)) or v <= 0 for v in values):
        return "a ratio must be a number > 0"
    return None


# ---------------------------------------------------------------- the tune's settings


def anchor_params(space: dict[str, Dim], spec: dict[str, Any], given: Given | None = None) -> dict[str, Any]:
    """The first trial of a new tune: the hand-made recipe (the user's flags, `--preset lsllm` filling
    what they leave open, docs/accuracy.md), on each dimension of the space where it is a point of it.

    TPE samples its first trials at random, and on a CPU a budget of hours holds few trials (measured
    2026-12-03 on one core: SST-2 at 4,000 examples, 6 trials in 70 min; CoNLL03 at 4,000 sentences, 1
    trial in 50 min), so a short tune would be a random search that can end below the recipe a user
    gets without tuning. Starting from that recipe, the best trial is never below it on validation.
    """
    given = given or Given.of(spec)
    if given.config.train.preset is None:
        try:
            cfg = apply_preset(flags.with_settings(given.config, {"train.preset": "lsllm"}), spec["task"], set(given.explicit))
        except ConfigError:  # the lsllm preset needs --prompt for sequences: the defaults, then
            cfg, _ = given.preset(spec)
    else:
        cfg, _ = given.preset(spec)
    attention = "bidirectional" if cfg.model.bidirectional else cfg.model.attention
    known = {
        "lr": cfg.train.lr, "head_lr_ratio": (cfg.train.head_lr or cfg.train.lr) / cfg.train.lr,
        "lora_r": cfg.lora.r, "lora_alpha_ratio": cfg.lora.alpha / cfg.lora.r,
        "lora_targets": next((name for name, modules in TARGETS.items() if modules == list(cfg.lora.target_modules)), None),
        "lora_dropout": cfg.lora.dropout, "epochs": int(cfg.train.epochs), "attention": attention,
        "pooling": cfg.model.pooling or ("mean" if attention == "bidirectional" else "last"), "head_init": cfg.model.head_init,
    }
    settings = _settings()
    params = {}
    for name, dim in space.items():
        if name in known:
            value = known[name]
        elif name in settings:
            section, field, _ = settings[name]
            value = getattr(getattr(cfg, section), field)
        else:
            continue
        if dim.type == "categorical":
            match = [choice for choice in dim.choices or [] if choice == value or str(choice) == str(value)]
            if match:
                params[name] = match[0]
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and dim.low <= value <= dim.high:
            params[name] = int(value) if dim.type == "int" else float(value)
    return params


@dataclass(frozen=True)
class Given:
    """What the user gave every trial, read once: their run config (no preset applied: each trial's run applies it),
    the settings they gave (flags and --config keys: the preset and the recipe leave these alone) and the ones given
    as flags (each fixes its dimension of the default space). Every trial's config is this config with the trial's
    settings set (`trial_settings`, `flags.with_settings`); the tune saves the user's flags, as typed, for the record
    and for --resume and joining workers, which read them here (`Given.of`)."""

    config: RunConfig
    explicit: frozenset[str]
    flagged: frozenset[str]

    @classmethod
    def of_args(cls, args: argparse.Namespace) -> Given:
        """From the parsed `lsllm tune` (or `lsllm train`) command line: its config flags and --config."""
        cfg, explicit = flags.config_from_args(args)
        return cls(cfg, frozenset(explicit), frozenset(dotted for dotted in vars(args) if "." in dotted))

    @classmethod
    def read(cls, train_flags: Sequence[str]) -> Given:
        """From `lsllm train` flags (a saved tune's, or `new_spec`'s from Python).

        Raises:
            ConfigError: a flag `lsllm train` does not know, or a setting it refuses.
        """
        parsed, extra = flags.method_parser("ls").parse_known_args([str(f) for f in train_flags])
        unknown = [a for a in extra if a.startswith("--")]
        if unknown:
            raise ConfigError(f"lsllm tune: {', '.join(unknown)} is not a flag of `lsllm train`")
        return cls.of_args(parsed)

    @classmethod
    def of(cls, spec: dict[str, Any]) -> Given:
        """The saved tune's (its "flags")."""
        return cls.read(spec["flags"])

    def preset(self, spec: dict[str, Any]) -> tuple[RunConfig, set[str]]:
        """The user's run config with the preset applied for the task (a new object), and the settings they gave."""
        return apply_preset(flags.with_settings(self.config, {}), spec["task"], set(self.explicit)), set(self.explicit)

    def trial(self, settings: dict[str, Any]) -> tuple[RunConfig, set[str]]:
        """A trial's run config: the user's with ``settings`` set, and the settings given (the trial's count as given)."""
        return flags.with_settings(self.config, settings), set(self.explicit) | set(settings)


def new_spec(train_flags: Sequence[str], space_file: str | Path | None = None, subset: int | None = None,
             fixed: Sequence[str] = (), given: Given | None = None) -> dict[str, Any]:
    """What a new tune is (saved in the study and tune.json): data, task, metric, the user's flags, the space.

    Args:
        train_flags: flags of `lsllm train` given to every trial (not --output / --resume), saved as typed.
        space_file: a YAML space replacing the default one.
        subset: train each trial on the first N training examples (--train-limit N).
        fixed: default dimensions not to search.
        given: ``train_flags`` already read (`Given.of_args`: the CLI parsed them); None reads them here.

    Raises:
        ConfigError: no data, an unknown flag, a bad space (FILE:line), a bad subset.
    """
    train_flags = [str(f) for f in train_flags]
    given = given or Given.read(train_flags)
    if {"train.output", "train.resume"} & given.flagged:
        raise ConfigError("lsllm tune places each trial itself: its --output is the tune's folder; drop the train --output")
    if subset is not None:
        if subset < 1:
            raise ConfigError(f"--subset must be >= 1 training examples, got {subset}")
        train_flags = [*train_flags, *flags.setting_flags("data.train_limit", subset)]
        config, _ = given.trial({"data.train_limit": subset})
        given = Given(config, given.explicit | {"data.train_limit"}, given.flagged | {"data.train_limit"})
    cfg = given.config
    if not cfg.data.data:
        raise ConfigError("--data is required: a built-in name (lsllm datasets), a folder or a file")
    space, lines = read_space(space_file) if space_file is not None else (None, None)  # the file's form, before any data
    bundle = load_data(cfg.data, splits=("validation",))
    kind = family(bundle.task, bundle.problem)
    spec: dict[str, Any] = {"data": cfg.data.data, "task": kind.task, "problem": kind.saved_problem,
                            "metric": kind.selection, "direction": "maximize", "flags": train_flags,
                            "subset": subset, "space_source": str(space_file) if space_file else "default", "left_out": []}
    given.preset(spec)  # the preset's own refusals (--preset lsllm without --prompt) before any trial
    if space is None:
        space, spec["left_out"] = default_space(kind, cfg, set(given.flagged), bundle.labels, fixed)
        if not space:
            raise ConfigError("every dimension is fixed (by --fixed or train flags): nothing to tune; drop some, or --space FILE")
    elif fixed:
        raise ConfigError("--fixed applies to the default space; with --space FILE, leave the dimension out of the file")
    check_space(space, spec, lines, space_file, given)
    spec["space"] = {name: dim.to_dict() for name, dim in space.items()}
    return spec


def space_of(spec: dict[str, Any]) -> dict[str, Dim]:
    return {name: Dim.from_dict(name, raw) for name, raw in spec["space"].items()}


# ---------------------------------------------------------------- pruning


class PruningCallback(TrainerCallback):
    """Report each validation score to the Optuna trial; raise optuna.TrialPruned when the pruner says so.

    The exception leaves `trainer.train` (the Trainer does not catch it): the run stops at that
    evaluation, before that step's checkpoint, and `objective` marks its folder as pruned. The
    evaluation at the last step is reported but never judged: that trial has trained to its end,
    so pruning it would save nothing but its test pass and would hand TPE a pruned trial, which it
    ranks below every complete one (seen in the 2-hour SST-2 tunes, docs/tune.md).
    """

    def __init__(self, trial: Any, metric: str) -> None:
        self.trial = trial
        self.metric = metric
        self.reported: list[tuple[int, float]] = []

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        value = (metrics or {}).get(f"eval_{self.metric}")
        if not isinstance(value, (int, float)) or not state.is_world_process_zero:
            return
        step = int(state.global_step)
        if any(s == step for s, _ in self.reported):
            return  # reported already (Optuna keeps the first value of a step)
        self.trial.report(float(value), step)
        self.reported.append((step, float(value)))
        if state.max_steps and step >= state.max_steps:
            return
        if self.trial.should_prune():
            import optuna

            raise optuna.TrialPruned(f"validation {self.metric} {value:.4f} at step {step}")


def make_pruner(pruner: str | Any) -> Any:
    """--pruner median (default: MedianPruner) | halving (SuccessiveHalvingPruner) | none, or an Optuna pruner as is.

    The median pruner judges from the second trial on (Optuna's default waits for 5 finished trials):
    the first trial is the hand-made recipe (`anchor_params`), and a CPU budget of hours holds few
    trials (2026-12-03: 6 SST-2 trials in 70 min, none pruned with the default), so a trial behind
    the finished ones' median at the same step, the recipe's own score at first, stops there.
    """
    import optuna

    if not isinstance(pruner, str):
        return pruner
    if pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=1)
    if pruner == "halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    if pruner == "none":
        return optuna.pruners.NopPruner()  # every trial runs to its end
    raise ConfigError(f"--pruner must be one of {', '.join(PRUNERS)}, got {pruner!r}")


# ---------------------------------------------------------------- one trial


def trial_name(number: int) -> str:
    return f"trial-{number:04d}"


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _mark(folder: Path, number: int, state: str, params: dict[str, Any], **details: Any) -> None:
    if folder.is_dir():
        atomic_write_json(folder / TRIAL_MARK, {"trial": number, "state": state, "params": params, **details})


class NotRun(Exception):
    """A trial drawn after the study held --trials trials: given back unrun (`objective_for`)."""


def worker_name() -> str:
    """This process as trials record it: host and pid (where a trial's run folder is, who ran it)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def trials_before(study: Any, number: int) -> int:
    """The study's trials numbered below ``number``, in any state (waiting, running, failed...), but not given back.

    Optuna numbers a study's trials 0, 1, 2, ... in the order they are created, under a lock on the
    study's row, so every trial below ``number`` exists when ``number`` is drawn. A trial still
    running may yet be given back; counting it anyway can only stop a worker early, never late.
    """
    return sum(1 for t in study.get_trials(deepcopy=False) if t.number < number and GIVEN_BACK not in t.user_attrs)


def given_back(study: Any, frozen: Any, trials: int | None) -> bool:
    """Whether a trial is given back unrun: marked so, or drawn past --trials and not yet marked by its worker.

    The worker that drew it marks it a moment after drawing; a summary written in that moment by
    another worker must still leave it out, so the rule `objective_for` applies is applied here too.
    """
    if GIVEN_BACK in frozen.user_attrs:
        return True
    return trials is not None and not frozen.state.is_finished() and trials_before(study, frozen.number) >= trials


def objective_for(output: Path, spec: dict[str, Any], train: Callable | None = None,
                  trials: int | None = None) -> Callable[[Any], float]:
    """The objective of the study: one run folder per trial, its validation selection metric as the value.

    With ``trials`` (--trials N), a trial runs only when fewer than N trials precede it in the
    study (`trials_before`); otherwise it is given back unrun (marked, failed, no run folder) and
    this process stops. Workers that draw trials at the same moment therefore never run more than
    N in all: of the trials numbered past the N-th, none runs.
    """
    space = space_of(spec)
    given = Given.of(spec)
    base, _ = given.preset(spec)

    def objective(trial: Any) -> float:
        import optuna

        from lsllm import training

        if trials is not None and trials_before(trial.study, trial.number) >= trials:
            trial.set_user_attr(GIVEN_BACK, f"drawn when the study held --trials {trials} trials")
            trial.study.stop()
            raise NotRun(f"trial {trial.number}: the study holds {trials} trials")
        params = {name: dim.suggest(trial) for name, dim in space.items()}
        folder = output / trial_name(trial.number)
        trial.set_user_attr("run", folder.name)
        trial.set_user_attr("output", str(output.resolve()))
        trial.set_user_attr("worker", worker_name())
        settings = trial_settings(params, base)
        trial.set_user_attr("flags", settings_flags(settings))  # the record: the trial's settings as train flags
        cfg, explicit = given.trial({**settings, "train.output": str(folder), "train.resume": False})
        callback = PruningCallback(trial, spec["metric"])
        pruned = None
        started = _now()
        try:
            (train or training.train)(cfg, explicit, callbacks=[callback])
        except optuna.TrialPruned as err:
            pruned = str(err)  # raised again below, outside this block: the Trainer's frames are freed first
        except BaseException as err:
            message = "interrupted" if isinstance(err, KeyboardInterrupt) else _one_line(err)
            trial.set_user_attr("error", message)
            _mark(folder, trial.number, "failed", params, error=message)
            raise
        finally:
            trial.set_user_attr("seconds", round(_now() - started, 1))  # the budget's mean trial time
            gc.collect()
            _free_accelerator()
        if pruned is not None:
            step, value = callback.reported[-1] if callback.reported else (None, None)
            trial.set_user_attr("pruned_at", step)
            _mark(folder, trial.number, "pruned", params, step=step, validation={spec["metric"]: value}, reason=pruned)
            raise optuna.TrialPruned(pruned)
        run = runs.RunDir(folder)
        metrics = run.read_metrics()
        value = (metrics.get("validation") or {}).get(spec["metric"])
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ModelError(f"{folder}: no finite validation {spec['metric']} in metrics.json")
        # In the study, for any worker to write best.yaml and the best trial's test score from: the
        # run folder may be on another machine. Test is stored, never read to select.
        trial.set_user_attr("config", read_mapping(run.config, "yaml"))
        trial.set_user_attr("test", (metrics.get("test") or {}).get(spec["metric"]))
        _mark(folder, trial.number, "complete", params, validation={spec["metric"]: value})
        return float(value)

    return objective


def _free_accelerator() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# ---------------------------------------------------------------- the study


def default_storage(output: Path) -> str:
    return f"sqlite:///{(Path(output).resolve() / TUNE_DB)}"


def shown_storage(url: str) -> str:
    """The storage URL without its password: what tune.json, messages and run.json's command line show."""
    try:
        from sqlalchemy.engine import make_url

        shown = make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy reads: mask what looks like user:password@
        shown = url
    shown = re.sub(r"(//[^:/@]+):[^@/]+@", r"\1:***@", shown)
    return re.sub(r"(?i)([?&]password=)[^&]*", r"\1***", shown)


def scrub(text: str, url: str) -> str:
    """``text`` (an error message, say) with the URL's password masked, as written and as decoded."""
    from urllib.parse import unquote

    secrets = re.findall(r"//[^:/@]+:([^@/]+)@", url) + re.findall(r"(?i)[?&]password=([^&]*)", url)
    text = text.replace(url, shown_storage(url))
    for secret in sorted({s for raw in secrets for s in (raw, unquote(raw)) if s}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def storage_url(url: str) -> str:
    """The URL SQLAlchemy opens: a ``postgresql://`` URL that names no driver gets the one installed.

    SQLAlchemy 2.1 opens ``postgresql://`` with psycopg (3), 2.0 with psycopg2; naming the installed
    one (``pip install 'lsllm[postgres]'`` installs psycopg) lets the same URL work under both.

    Raises:
        ConfigError: a PostgreSQL URL and neither driver installed.
    """
    import importlib.util

    scheme, sep, rest = url.partition("://")
    if not sep or scheme != "postgresql":
        return url
    for module in ("psycopg", "psycopg2"):
        if importlib.util.find_spec(module) is not None:
            return f"postgresql+{module}://{rest}"
    raise ConfigError(f"--storage {shown_storage(url)}: PostgreSQL needs its driver: pip install 'lsllm[postgres]' (psycopg)")


def _storage_problem(err: BaseException | None, url: str) -> str:
    """Why a storage did not open, in one line without the password."""
    import sqlalchemy.exc

    if isinstance(err, ImportError):
        text = (f"its database driver is not installed ({_one_line(err)}): for PostgreSQL, pip install 'lsllm[postgres]'; "
                "for another database, the driver SQLAlchemy names")
    elif isinstance(err, sqlalchemy.exc.ArgumentError):  # NoSuchModuleError too: an unknown scheme
        text = (f"not a database URL SQLAlchemy reads ({_one_line(err)}); e.g. postgresql://USER@HOST:5432/DB or "
                "sqlite:////path/tune.db")
    elif isinstance(err, sqlalchemy.exc.OperationalError):
        text = (f"cannot connect ({_one_line(getattr(err, 'orig', None) or err)}): is the server up, and the host, port, "
                "database and user right?")
    else:
        text = f"cannot open it ({_one_line(err) if err else 'unknown error'})"
    return scrub(text, url)[:400]


def open_storage(url: str, heartbeat: int = HEARTBEAT_S, on_stale: Callable[[Any, Any], None] | None = None) -> Any:
    """An Optuna RDB storage with heartbeats: a killed worker's trial is failed, not left running forever.

    Every running trial's worker records a heartbeat every ``heartbeat`` seconds; a running trial
    whose worker missed `STALE_HEARTBEATS` of them is failed by the next worker that starts a trial
    (Optuna's fail_stale_trials), which calls ``on_stale(study, frozen_trial)``. SQLite waits for a
    lock instead of failing at once, and the first creation of the tables is retried, so workers
    that start on one new file or empty database at the same moment all get in; a database server
    gets `CONNECT_TIMEOUT_S` seconds to answer.

    Raises:
        ConfigError: a bad URL, a missing driver, a server that does not answer (password masked).
    """
    import optuna

    if heartbeat < 1:
        raise ConfigError(f"--heartbeat must be >= 1 second, got {heartbeat}")
    opened = storage_url(url)
    if opened.startswith("sqlite"):
        kwargs: dict[str, Any] = {"connect_args": {"timeout": 60}}
    elif opened.startswith("postgresql"):
        kwargs = {"pool_pre_ping": True, "connect_args": {"connect_timeout": CONNECT_TIMEOUT_S}}
    else:
        kwargs = {"pool_pre_ping": True}
    # Optuna 4.9 renamed failed_trial_callback; the older name is deprecated.
    stale = ("heartbeat_stale_trial_callback" if "heartbeat_stale_trial_callback"
             in inspect.signature(optuna.storages.RDBStorage).parameters else "failed_trial_callback")
    last: BaseException | None = None
    for attempt in range(6):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(opened, engine_kwargs=kwargs, heartbeat_interval=heartbeat,
                                                  grace_period=STALE_HEARTBEATS * heartbeat, **{stale: on_stale})
        except Exception as err:  # sqlalchemy's errors: a bad URL, a missing driver, a race on the first tables
            last = err
            # Workers that start at once on an empty database race to create Optuna's tables (and, on
            # PostgreSQL, its enum types): the loser's CREATE fails on what the winner made; again, it
            # finds them. SQLite's first writer can also hold the file's lock past the timeout.
            if attempt == 5 or not (opened.startswith("sqlite") or isinstance(err, _schema_race_errors())):
                break
            time.sleep(0.3 + random.random())
    raise ConfigError(f"--storage {shown_storage(url)}: {_storage_problem(last, url)}") from None


def _schema_race_errors() -> tuple[type[BaseException], ...]:
    import sqlalchemy.exc

    return sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError


def open_study(storage: Any, name: str, spec: dict[str, Any] | None, resume: bool, pruner: Any, where: str) -> tuple[Any, dict]:
    """The study ``name`` in ``storage``: created by exactly one process, or joined (--resume).

    Creating a study is atomic in the database (a second create_study of the name fails), so of
    workers started at the same moment exactly one creates it. That one queues the first trial
    (the hand-made recipe, `anchor_params`) and only then saves the tune's settings in the study;
    a worker that joins waits for those settings (up to `SPEC_WAIT_S`) before it draws a trial, so
    trial 0 is the hand-made recipe, queued once.
    """
    import optuna

    exists = name in optuna.study.get_all_study_names(storage)
    if exists and not resume:
        raise ConfigError(f"{where} already holds the tune {name!r}: pass --resume to continue it, or choose another --output")
    if not exists and spec is None:
        raise ConfigError(f"--resume: {where} holds no tune {name!r}; start it without --resume (with --data ...)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if spec is not None:
            # The process that creates the study seeds the sampler with the run's --seed: a tune started
            # twice with the same flags draws the same trials (how median and halving were compared).
            # Processes that join draw unseeded, or they would repeat the creator's draws.
            given = Given.of(spec)
            seed = given.config.train.seed
            try:
                study = optuna.create_study(storage=storage, study_name=name, direction="maximize",
                                            sampler=optuna.samplers.TPESampler(constant_liar=True, seed=seed),
                                            pruner=make_pruner(pruner))
            except optuna.exceptions.DuplicatedStudyError:  # another worker created it first
                if not resume:
                    raise ConfigError(f"{where} already holds the tune {name!r}: pass --resume to join it, or choose "
                                      "another --output") from None
            else:
                study.enqueue_trial(anchor_params(space_of(spec), spec, given))
                study.set_user_attr("lsllm_spec", spec)
                return study, spec
        # constant_liar: workers sharing a study spread their trials
        study = optuna.load_study(study_name=name, storage=storage, sampler=optuna.samplers.TPESampler(constant_liar=True),
                                  pruner=make_pruner(pruner))
    saved = study.user_attrs.get("lsllm_spec")
    deadline = time.monotonic() + SPEC_WAIT_S
    while saved is None and time.monotonic() < deadline:  # its creator is between creating it and saving the settings
        time.sleep(0.5)
        saved = study.user_attrs.get("lsllm_spec")
    if saved is None:
        raise ConfigError(f"--resume: the tune {name!r} in {where} holds no lsllm settings (its first process stopped "
                          "before saving them?); start a new one with another --study-name")
    if spec is not None:
        differ = [key for key in ("space", "subset") if _jsonish(saved.get(key)) != _jsonish(spec.get(key))]
        if _settings_of(saved) != _settings_of(spec):
            differ.insert(0, "train flags")
        if differ:
            raise ConfigError(f"--resume continues the saved tune, whose {', '.join(differ)} differ from the ones given: "
                              "drop the flags (--resume --output DIR is enough) or start a new --output")
    return study, saved


def _settings_of(spec: dict[str, Any]) -> dict[str, Any]:
    """The run settings a tune's flags stand for (flags in another order are the same tune)."""
    cfg = Given.of(spec).config
    return {k: v for k, v in cfg.to_dict().items() if k not in ("lsllm_version", "format_version")}


def _jsonish(value: Any) -> Any:
    import json

    return json.loads(json.dumps(value))


def tune(output: str | Path, spec: dict[str, Any] | None = None, *, budget: float | str | None = None,
         trials: int | None = None, storage: str | None = None, study_name: str | None = None, resume: bool = False,
         pruner: str | Any | None = None, heartbeat: int = HEARTBEAT_S, progress: Callable[[str], None] | None = None,
         train: Callable | None = None) -> dict[str, Any]:
    """Run (or continue, or join) a tune as `lsllm tune` does; returns what tune.json holds.

    Args:
        output: this worker's tune folder: its trial-NNNN run folders, and tune.json/md, best.yaml,
            plots, report.html for the whole study (every worker's trials); tune.db (SQLite default).
        spec: from `new_spec`; None with ``resume`` (read from the study).
        budget: seconds or "2h": no trial starts when the time left is under the mean trial time (the first always runs).
        trials: at most this many trials in the study, counting earlier ones and other workers' (never overshot).
        storage: an Optuna storage URL (default sqlite:///OUTPUT/tune.db), e.g. postgresql://USER@HOST/DB.
        study_name: the study's name in the storage (default: the folder's name).
        resume: continue the study (or join it from another process or machine).
        pruner: "median" | "halving" | "none" | an Optuna pruner; None: the resumed tune's, else "median".
        heartbeat: seconds between a running trial's heartbeats; a trial silent for 3 of them is failed.
        progress: called with one line per finished trial (the CLI prints it).
        train: the training function (default `training.train`; tests replace it).

    Example::

        from lsllm import tune
        spec = tune.new_spec(["--data", "sst2", "--prompt", "Review: {text}\\nSentiment:"])
        result = tune.tune("tunes/sst2", spec, budget="2h")
        result["best"]   # {"trial": 7, "run": "trial-0007", "validation": ..., "test": ..., "config": "best.yaml"}
    """
    import optuna

    seconds = parse_budget(budget) if budget is not None else None
    if trials is not None and trials < 1:
        raise ConfigError(f"--trials must be >= 1, got {trials}")
    if seconds is None and trials is None:
        raise ConfigError("give --budget (e.g. 2h) and/or --trials N: a tune needs an end")
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise ConfigError(f"--output {output}: a file, not a folder; choose a folder for the tune")
    saved_json = _read_tune_json(output)
    if not resume and (saved_json or any(output.glob("trial-*"))):
        raise ConfigError(f"{output} already holds a tune: pass --resume to continue it or choose another --output")
    if resume and storage is None and saved_json.get("storage") and "***" not in saved_json["storage"]:
        storage = saved_json["storage"]
    if resume and storage is None and not (output / TUNE_DB).is_file() and spec is None:
        raise ConfigError(f"--resume: {output} holds no tune ({TUNE_DB}); start it without --resume (with --data ...)")
    if pruner is None:
        saved_pruner = saved_json.get("pruner")
        pruner = saved_pruner if resume and saved_pruner in PRUNERS else "median"
    url = storage or default_storage(output)
    name = study_name or saved_json.get("study_name") or output.resolve().name
    _quiet_optuna()
    output.mkdir(parents=True, exist_ok=True)

    def on_stale(study: Any, frozen: Any) -> None:  # a trial whose worker stopped sending heartbeats, failed just now
        attrs = frozen.user_attrs
        _mark(Path(attrs.get("output") or output) / attrs.get("run", trial_name(frozen.number)), frozen.number, "failed",
              dict(frozen.params), error=STALE_ERROR)  # where its folder is on this machine (one machine, a shared disk)
        if progress is not None:
            progress(f"{attrs.get('run', trial_name(frozen.number))} (worker {attrs.get('worker', '?')}): failed, no heartbeat "
                     f"for {STALE_HEARTBEATS * heartbeat} s; the search goes on")

    study, spec = open_study(open_storage(url, heartbeat, on_stale), name, spec, resume, pruner,
                             storage and shown_storage(url) or str(output))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optuna.storages.fail_stale_trials(study)  # trials of a killed worker (no heartbeat for 3 beats): failed
    meta = {"study_name": name, "storage": shown_storage(url), "pruner": pruner if isinstance(pruner, str) else type(pruner).__name__,
            "budget_s": seconds, "max_trials": trials}
    started = _now()
    durations: list[float] = []

    def after_trial(study: Any, frozen: Any) -> None:
        if GIVEN_BACK in frozen.user_attrs:
            return  # drawn after the study held --trials trials: never ran, nothing to say
        if isinstance(frozen.user_attrs.get("seconds"), (int, float)):
            durations.append(frozen.user_attrs["seconds"])
        result = write_outputs(output, study, spec, meta, plots=False)
        left = None if seconds is None else seconds - (_now() - started)
        if progress is not None:
            progress(progress_line(frozen, result, left))
        if trials is not None and len(started_trials(study)) >= trials:
            study.stop()
        elif left is not None and durations and left < statistics.fmean(durations):
            if progress is not None:
                progress(f"budget: {clock(left)} left, under the mean trial time {clock(statistics.fmean(durations))}: "
                         "no new trial")
            study.stop()

    existing = len(started_trials(study))
    todo = None if trials is None else trials - existing
    result: dict[str, Any] = {}
    try:
        if todo is not None and todo <= 0:
            if progress is not None:
                progress(f"the study holds {existing} trial(s) already (--trials {trials}): no new trial")
        else:
            study.optimize(objective_for(output, spec, train, trials), n_trials=todo, timeout=seconds, callbacks=[after_trial],
                           catch=(ModelError, NotRun, _out_of_memory()))  # the objective collects garbage itself
    except _storage_errors() as err:
        raise ConfigError(f"--storage {shown_storage(url)}: lost the database ({scrub(_one_line(err), url)[:300]}); the "
                          "trials it holds are kept: run the same command with --resume") from None
    finally:
        try:
            result = write_outputs(output, study, spec, meta, plots=True)
        except (LsllmError, *_storage_errors()) as err:  # never hides why the search stopped
            log.warning("tune.json not updated: %s", scrub(_one_line(err), url))
    write_report([output])
    return result


def started_trials(study: Any) -> list[Any]:
    """The trials --trials counts: started (complete, pruned, failed or running), not queued, not given back."""
    import optuna

    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL,
              optuna.trial.TrialState.RUNNING)
    return [t for t in study.get_trials(deepcopy=False, states=states) if GIVEN_BACK not in t.user_attrs]


def _storage_errors() -> tuple[type[BaseException], ...]:
    import optuna
    import sqlalchemy.exc

    return optuna.exceptions.StorageInternalError, sqlalchemy.exc.SQLAlchemyError


def _out_of_memory() -> type[Exception]:
    import torch

    return torch.OutOfMemoryError


def _quiet_optuna() -> None:
    """Optuna's messages go to `logging` (the CLI's -v shows them); its per-trial tracebacks stay out of the terminal."""
    import optuna

    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()
    optuna.logging.set_verbosity(optuna.logging.INFO if logging.getLogger().isEnabledFor(logging.INFO) else optuna.logging.ERROR)


def _read_tune_json(output: Path) -> dict[str, Any]:
    path = output / TUNE_JSON
    return read_mapping(path, "json", fix="was the tune interrupted while writing? run it again with --resume") \
        if path.is_file() else {}


# ---------------------------------------------------------------- outputs


def trial_record(frozen: Any, metric: str) -> dict[str, Any]:
    """One trial as tune.json lists it: number, run folder, worker, state, params, validation score, wall-clock."""
    state = STATES.get(frozen.state.name, frozen.state.name.lower())
    intermediate = dict(sorted(frozen.intermediate_values.items()))
    validation = frozen.value if state == "complete" else (list(intermediate.values())[-1] if intermediate else None)
    seconds = ((frozen.datetime_complete - frozen.datetime_start).total_seconds()
               if frozen.datetime_start and frozen.datetime_complete else None)
    attrs = frozen.user_attrs
    # A trial failed without an error of its own was failed by another worker: its own stopped sending heartbeats.
    error = attrs.get("error") or (STALE_ERROR if state == "failed" and "seconds" not in attrs else None)
    return {"number": frozen.number, "run": attrs.get("run", trial_name(frozen.number)), "worker": attrs.get("worker"),
            "state": state, "params": dict(frozen.params), "validation": validation,
            "validation_at": attrs.get("pruned_at") if state == "pruned" else None,
            "intermediate": {str(k): v for k, v in intermediate.items()}, "seconds": round(seconds, 1) if seconds else seconds,
            "error": error, "output": attrs.get("output")}


def best_trial(study: Any) -> Any | None:
    import optuna

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    return max(complete, key=lambda t: (t.value, -t.number)) if complete else None  # ties: the earliest


def trial_folder(frozen: Any, output: Path) -> Path:
    """Where a trial's run folder is on the machine of the worker that ran it."""
    return Path(frozen.user_attrs.get("output") or output) / frozen.user_attrs.get("run", trial_name(frozen.number))


def trial_config(frozen: Any, output: Path) -> dict[str, Any] | None:
    """A complete trial's config.yaml as the study holds it (any worker's trial), or from its folder when it is here."""
    if isinstance(frozen.user_attrs.get("config"), dict):
        return frozen.user_attrs["config"]
    config = trial_folder(frozen, output) / runs.CONFIG
    return read_mapping(config, "yaml") if config.is_file() else None


def trial_test(frozen: Any, output: Path, metric: str) -> float | None:
    """A complete trial's test score as the study holds it, or from its metrics.json when its folder is here."""
    if "test" in frozen.user_attrs:
        return frozen.user_attrs["test"]
    folder = trial_folder(frozen, output)
    return (runs.RunDir(folder).read_metrics().get("test") or {}).get(metric) if (folder / runs.METRICS).is_file() else None


def summarise(output: Path, study: Any, spec: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """tune.json: the settings, every trial, and the best trial (by validation) with its test score, read once here.

    The study's trials, whichever worker ran them; a trial given back unrun (`objective_for`) is
    left out and only counted.
    """
    metric = spec["metric"]
    everything = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    trials = [trial_record(t, metric) for t in everything if not given_back(study, t, meta.get("max_trials"))]
    counts = {state: sum(t["state"] == state for t in trials) for state in ("complete", "pruned", "failed", "running")}
    if len(everything) > len(trials):
        counts["given_back"] = len(everything) - len(trials)
    best = best_trial(study)
    best_entry = None
    if best is not None:
        folder = trial_folder(best, output)
        best_entry = {"trial": best.number, "run": folder.name, "path": str(folder), "worker": best.user_attrs.get("worker"),
                      "validation": best.value, "test": trial_test(best, output, metric), "params": dict(best.params),
                      "config": BEST_YAML if trial_config(best, output) is not None else None}
    return {**{k: v for k, v in spec.items()}, **meta, "counts": counts, "trials": trials, "best": best_entry}


def write_outputs(output: Path, study: Any, spec: dict[str, Any], meta: dict[str, Any], plots: bool) -> dict[str, Any]:
    """tune.json, tune.md and best.yaml (after every trial, from the study: every worker's trials); the plots too at the end."""
    result = summarise(output, study, spec, meta)
    best = best_trial(study)
    config = trial_config(best, output) if best is not None else None
    if config is not None:
        write_best_yaml(config, output / BEST_YAML)
    atomic_write_json(output / TUNE_JSON, result)
    atomic_write_text(output / "tune.md", tune_markdown(result, output))
    if plots:
        write_plots(output, study)
    return result


def write_best_yaml(config: dict[str, Any], target: Path) -> None:
    """The best trial's own config.yaml with output and resume cleared: `lsllm train --config best.yaml` trains it again."""
    raw = dict(config)
    train = dict(raw.get("train") or {})
    train["output"], train["resume"] = None, False
    raw["train"] = train
    atomic_write_text(target, yaml.safe_dump(raw, sort_keys=False))


def _value(value: Any, metric: str) -> str:
    if not isinstance(value, (int, float)):
        return "-"
    return f"{value:.4f}" if metric == "pearson" else f"{100 * value:.2f}"


def _param(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def tune_markdown(result: dict[str, Any], output: Path) -> str:
    metric = result["metric"]
    unit = "" if metric == "pearson" else " %"
    counts = result["counts"]
    names = list(result.get("space") or {})
    running = f", {counts['running']} running" if counts["running"] else ""
    lines = [f"# Tune: {result['data']} — validation {metric}", "",
             f"{len(result['trials'])} trials ({counts['complete']} complete, {counts['pruned']} pruned, "
             f"{counts['failed']} failed{running}); "
             f"selected on validation {metric} only, test reported once, for the best trial.", ""]
    best = result.get("best")
    if best:
        lines += [f"**Best: {best['run']}** — validation {metric} {_value(best['validation'], metric)}{unit}, "
                  f"test {metric} {_value(best['test'], metric)}{unit}", ""]
        if best.get("config"):
            lines += [f"Train it again: `lsllm train --config {output / BEST_YAML} --output NEW_DIR`", ""]
        lines += ["| parameter | value |", "|---|---|", *[f"| {k} | {_param(v)} |" for k, v in best["params"].items()], ""]
    else:
        lines += ["No trial has completed yet.", ""]
    workers = len({t.get("worker") for t in result["trials"] if t.get("worker")}) > 1  # trials from several processes
    lines += [f"| trial | state | validation {metric}{unit} | time | " + ("worker | " if workers else "") + " | ".join(names)
              + " |", "|---|---|---|---|" + ("---|" if workers else "") + "---|" * len(names)]
    for t in result["trials"]:
        shown = _value(t["validation"], metric) + (f" (step {t['validation_at']})" if t.get("validation_at") is not None else "")
        row = [t["run"], t["state"] + (f": {t['error']}" if t.get("error") else ""), shown, clock(t["seconds"])]
        row += [t.get("worker") or "-"] if workers else []
        lines.append("| " + " | ".join(row + [_param(t["params"].get(n, "-")) for n in names]) + " |")
    lines += ["", f"Flags given to every trial: `{' '.join(result['flags'])}`" if result.get("flags") else "",
              f"Space: {result.get('space_source', 'default')}"
              + (f"; left out: {', '.join(result['left_out'])}" if result.get("left_out") else ""), ""]
    return "\n".join(lines)


def write_plots(output: Path, study: Any) -> list[str]:
    """history.png, importances.png (2+ complete trials), slice.png via optuna.visualization.matplotlib; each guarded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna

    from lsllm.report.collect import TUNE_PLOTS

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    plots = {TUNE_PLOTS[0]: optuna.visualization.matplotlib.plot_optimization_history,
             TUNE_PLOTS[2]: optuna.visualization.matplotlib.plot_slice}
    if len(complete) >= 2:
        plots[TUNE_PLOTS[1]] = optuna.visualization.matplotlib.plot_param_importances
    written = []
    for name, plot in plots.items():
        if not complete:
            break
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                axes = plot(study)
                figure = (axes.flat[0] if hasattr(axes, "flat") else axes).figure
            atomic_save_figure(figure, output / name, bbox_inches="tight")
            plt.close(figure)
            written.append(name)
        except Exception as err:  # a plot is a convenience: one that cannot be drawn never stops the tune
            log.warning("%s not drawn: %s", name, _one_line(err))
            plt.close("all")
    return written


def progress_line(frozen: Any, result: dict[str, Any], left: float | None) -> str:
    """One line per finished trial: what it did, the trials done, the best so far, the time left."""
    metric = result["metric"]
    record = next((t for t in result["trials"] if t["number"] == frozen.number), None) or trial_record(frozen, metric)
    what = {"complete": f"validation {metric} {_value(record['validation'], metric)}",
            "pruned": f"pruned at step {record.get('validation_at')} ({metric} {_value(record['validation'], metric)})",
            "failed": f"failed: {record.get('error') or 'see the log'}"}.get(record["state"], record["state"])
    counts = result["counts"]
    best = result.get("best")
    best_text = f"best {_value(best['validation'], metric)} ({best['run']})" if best else "no best yet"
    done = counts["complete"] + counts["pruned"] + counts["failed"]
    return (f"{record['run']}: {what} in {clock(record['seconds'])} | {done} done ({counts['complete']} complete, "
            f"{counts['pruned']} pruned, {counts['failed']} failed), {best_text}"
            + ("" if left is None else f" | {clock(max(0.0, left))} left"))
