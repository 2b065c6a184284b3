"""`compare RUN_DIRS...`: one table of LS, unLS and SFT runs, seeds folded into mean ± std.

Each run directory is read through its config.yaml and metrics.json only, so runs of any kind
(and of older lsllm versions) compare without loading a model. The kind comes from the config:
an `sft` section means SFT, `model.bidirectional` means LS-unLLM, otherwise LS-LLM. Runs whose
configs are equal except for the seed (and output path) are one row: metrics as mean ± sample
standard deviation over the seeds.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lsllm import describe
from lsllm.errors import ConfigError
from lsllm.problems import family
from lsllm.runs import RunDir

# Settings that name a run but do not change what it learns.
_NOT_IN_GROUP = {("train", "seed"), ("train", "output"), ("train", "resume")}
IRREGULAR = "irregular"  # SFT: answers that name no label, a count


@dataclass
class RunSummary:
    """What one run directory says about itself."""

    path: Path
    method: str
    model: str
    data: str
    train_examples: int | str
    seed: int | None
    split: str
    metrics: dict[str, Any]
    group: str
    keys: tuple[str, ...] = ("accuracy", "f1_macro")  # what the comparison shows for it: `Problem.compared`
    percent: frozenset[str] = frozenset(("accuracy", "f1_macro"))  # those that are fractions: `Problem.percent`


def _mapping(data: dict[str, Any], key: str, path: Path) -> dict[str, Any]:
    """`data[key]` when it is a mapping ({} when absent), else a ConfigError naming the file."""
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: {key!r} must be a mapping, got {type(value).__name__}; retrain or restore the run")
    return value


def summarize_run(run_dir: str | Path) -> RunSummary:
    """Read one run directory's config.yaml and metrics.json.

    Raises:
        ConfigError: a file is missing or unreadable, or metrics.json has neither test nor validation.
    """
    run = RunDir(Path(run_dir))
    run_dir, config_path, metrics_path = run.root, run.config, run.metrics
    config = run.read_config()
    metrics = run.read_metrics()
    split = "test" if "test" in metrics else "validation"
    if split not in metrics:
        raise ConfigError(f"{metrics_path}: no test or validation metrics")
    scores = _mapping(metrics, split, metrics_path)
    data_cfg = _mapping(config, "data", config_path)
    n_examples = _mapping(metrics, "train", metrics_path).get("n_examples")
    trained = n_examples if _is_number(n_examples) else data_cfg.get("train_limit") or "all"
    group = {
        section: {k: v for k, v in values.items() if (section, k) not in _NOT_IN_GROUP}
        for section, values in config.items()
        if isinstance(values, dict)
    }
    group["_split"] = split
    try:
        kind = family(data_cfg.get("task"), data_cfg.get("problem"))
    except ConfigError as err:
        raise ConfigError(f"{config_path}: {err}") from None
    return RunSummary(
        path=run_dir,
        method=describe.method_name(config),
        model=_short(str(_mapping(config, "model", config_path).get("name", "?"))),
        data=_short(str(data_cfg.get("data", "?"))),
        train_examples=trained,
        seed=_mapping(config, "train", config_path).get("seed"),
        split=split,
        metrics=scores,
        group=json.dumps(_str_keys(group), sort_keys=True, default=str),
        keys=kind.compared,
        percent=kind.percent,
    )


def _str_keys(value: Any) -> Any:
    """Mappings with string keys all the way down (YAML allows `1:` keys; sorting mixed keys fails)."""
    if isinstance(value, dict):
        return {str(k): _str_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_str_keys(v) for v in value]
    return value


def _short(name: str) -> str:
    """Built-in names as they are; files and folders by their last path component."""
    return Path(name).name if "/" in name else name


def _mean_std(values: list[float], percent: bool, digits: int | None = None) -> str:
    scale = 100.0 if percent else 1.0
    digits = digits if digits is not None else 2 if percent else 1
    mean = statistics.fmean(values) * scale
    if len(values) < 2:
        return str(values[0]) if isinstance(values[0], int) else f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {statistics.stdev(values) * scale:.{digits}f}"


def compare_rows(run_dirs: list[str | Path]) -> list[dict[str, Any]]:
    """One row per group of runs that differ only in the seed, in the order first seen."""
    groups: dict[str, list[RunSummary]] = {}
    for run_dir in run_dirs:
        summary = summarize_run(run_dir)
        groups.setdefault(summary.group, []).append(summary)
    keys = list(dict.fromkeys(k for summaries in groups.values() for r in summaries for k in r.keys)) + [IRREGULAR]
    percent = frozenset().union(*(r.percent for summaries in groups.values() for r in summaries))
    rows = []
    for runs in groups.values():
        first = runs[0]
        row: dict[str, Any] = {
            "method": first.method,
            "model": first.model,
            "data": first.data,
            "train examples": first.train_examples,
            "seeds": ",".join(str(r.seed) for r in runs),
            "split": first.split,
        }
        for key in keys:
            values = [r.metrics[key] for r in runs if _is_number(r.metrics.get(key))]
            digits = None if key in percent or key == IRREGULAR else 3  # a count as it is; correlations and errors: 3 decimals
            row[key] = _mean_std(values, percent=key in percent, digits=digits) if len(values) == len(runs) else "—"
        rows.append(row)
    return rows


def _is_number(value: Any) -> bool:
    """A finite int or float (not a bool, NaN or a string): what a metric must be to be shown."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def compare_runs(run_dirs: list[str | Path]) -> str:
    """A Markdown table comparing the runs (accuracy and F1 in %, irregular as a count).

    Example (the measurement in docs/sft.md)::

        >>> print(compare_runs(["runs/sft-sst2-320"]))
        | method | model | data | train examples | seeds | split | accuracy | f1_macro | irregular |
        |---|---|---|---|---|---|---|---|---|
        | SFT (chat) | smollm2-135m | sst2 | 320 | 42 | test | 79.93 | 79.85 | 0 |
    """
    if not run_dirs:
        raise ConfigError("compare needs at least one run directory")
    rows = compare_rows(run_dirs)
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(row[key]) for key in header) + " |" for row in rows]
    return "\n".join(lines)
