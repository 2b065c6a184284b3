"""The data-size study: each method trained on the same subsets, sizes x seeds, as one resumable command.

    lsllm study --data sst2 --sizes 64 256 1000 4000 --methods ls sft --seeds 3 --output studies/sst2

Every cell is an ordinary run directory (``<method>-n<size>-s<seed>``) made by `lsllm train` or
`lsllm sft train` through the library, so `eval`, `predict`, `report` and `compare` work on it.
What makes the comparison fair: at a given size and seed every method trains on the same
examples (the first N of train after a shuffle seeded by the cell's seed, `DataConfig.subset_seed`),
selects on the same validation split and reports test once. A finished cell is never trained
again; a killed study continues with ``--resume`` (an unfinished cell resumes from its last
checkpoint). The study writes study.json, study.md, study.png and report.html beside the cells.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lsllm import flags, runs
from lsllm.data import load_data
from lsllm.describe import METHODS
from lsllm.errors import ConfigError
from lsllm.files import atomic_save_figure, atomic_write_json, atomic_write_text
from lsllm.problems import make_problem
from lsllm.report import write_report

log = logging.getLogger(__name__)

STUDY_JSON = "study.json"
# Each method is an ordinary `lsllm train` / `lsllm sft train` run with these flags added.
METHOD_FLAGS = {"ls": [], "unls": ["--bidirectional"], "repeat": ["--attention", "repeat"], "sft": []}


@dataclass
class Cell:
    size: int
    method: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.method}-n{self.size}-s{self.seed}"


def plan(sizes: list[int], methods: list[str], seeds: int) -> list[Cell]:
    """Cells in the order they run: small sizes first, so a short study already shows the trend."""
    if not sizes or any(n < 1 for n in sizes):
        raise ConfigError(f"--sizes must be positive training-set sizes, got {sizes}")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ConfigError(f"--methods: unknown {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    if seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {seeds}")
    return [Cell(size, method, seed) for size in sorted(set(sizes)) for seed in range(seeds) for method in methods]


def new_spec(data: str, methods: list[str], sizes: list[int], seeds: int, cell_flags: list[str] = (),
             data_dir: str | None = None) -> dict[str, Any]:
    """What a new study is (saved in study.json): data, task, metric, sizes, methods, seeds and each cell's flags.

    ``cell_flags`` are flags of `lsllm train` / `lsllm sft train` passed to every cell (each
    method takes its own: LS-only flags are dropped for SFT cells).

    Raises:
        ConfigError: no data, an unknown method or flag, SFT on a token task.
    """
    if not data:
        raise ConfigError("--data is required: a built-in name (lsllm datasets), a folder or a file")
    cell_flags = [*cell_flags, "--data", data] + (["--data-dir", data_dir] if data_dir else [])
    unknown = set(flags.unknown_flags("ls", cell_flags)) & set(flags.unknown_flags("sft", cell_flags))
    if unknown:
        raise ConfigError(f"lsllm study: {', '.join(sorted(unknown))} is a flag of neither `lsllm train` nor `lsllm sft train`")
    cfg, _ = flags.config_from_flags(cell_flags)
    bundle = load_data(cfg.data, splits=("validation",))
    check_methods(bundle.task, methods)
    plan(sizes, methods, seeds)  # refuse bad sizes / methods / seeds before anything is written
    task = bundle.task
    return {"data": data, "task": task, "problem": bundle.problem, "metric": metric_for(task, bundle.problem),
            "sizes": sorted(set(sizes)),
            "methods": list(methods), "seeds": seeds, "flags": cell_flags}


def load_spec(output: Path) -> dict[str, Any]:
    """The spec of the study in ``output`` (for --resume)."""
    saved = Path(output) / STUDY_JSON
    if not saved.is_file():
        raise ConfigError(f"--resume: {output} holds no study ({STUDY_JSON}); start it without --resume")
    return {k: v for k, v in runs.read_json_object(saved).items() if k not in ("cells", "summary")}


def cell_config(spec: dict[str, Any], cell: Cell, root: Path, resume: bool) -> tuple[Any, set[str]]:
    """The run config of one cell: the study's flags, the method's, the cell's size and seed (or --resume of its folder)."""
    method = "sft" if cell.method == "sft" else "ls"
    if resume:
        argv = ["--output", str(root), "--resume"]
    else:
        argv = [*spec["flags"], *METHOD_FLAGS[cell.method], "--train-limit", str(cell.size),
                "--subset-seed", str(cell.seed), "--seed", str(cell.seed), "--output", str(root)]
    return flags.config_from_flags(argv, method)


def train_cell(spec: dict[str, Any], cell: Cell, root: Path, resume: bool) -> Path:
    """Train (or continue) one cell's run directory through `lsllm train` / `lsllm sft train`'s library functions."""
    cfg, explicit = cell_config(spec, cell, root, resume)
    if cell.method == "sft":
        from lsllm.sft.training import train_sft

        return train_sft(cfg)
    from lsllm.training import train

    return train(cfg, explicit)


def study(output: str | Path, spec: dict[str, Any] | None = None, resume: bool = False) -> dict[str, Any]:
    """Run a study from Python as `lsllm study` does: ``spec`` from `new_spec`, or None with ``resume`` (read from ``output``).

    Example::

        from lsllm import study
        spec = study.new_spec("sst2", ["ls", "sft"], [64, 256], seeds=3, cell_flags=["--epochs", "2"])
        result = study.study("studies/sst2", spec)
    """
    output = Path(output)
    if resume and (output / STUDY_JSON).is_file():
        spec = load_spec(output)
    elif resume:
        load_spec(output)  # the one-line error
    if spec is None:
        raise ConfigError("a new study needs its spec (study.new_spec)")
    cells = plan(spec["sizes"], spec["methods"], spec["seeds"])
    return run_study(output, cells, lambda cell, root, again: train_cell(spec, cell, root, again), spec, resume=resume)


def run_study(output: Path, cells: list[Cell], train_cell: Callable[[Cell, Path, bool], Path], spec: dict[str, Any],
              resume: bool = False) -> dict[str, Any]:
    """Train every cell (skipping finished ones), then write study.json / study.md / study.png.

    Args:
        output: the study directory.
        cells: from `plan`.
        train_cell: trains one cell into the given run directory (resume=True continues it).
        spec: what the study is (data, metric, sizes, methods, seeds, flags), saved in study.json.
        resume: continue a study in ``output``; without it ``output`` must not hold one.
    """
    output = Path(output)
    if (output / STUDY_JSON).is_file() and not resume:
        raise ConfigError(f"{output} already holds a study: pass --resume to continue it or choose another --output")
    output.mkdir(parents=True, exist_ok=True)
    results = []
    for i, cell in enumerate(cells, 1):
        run = runs.RunDir(output / cell.name)
        if run.finished():
            log.info("[%d/%d] %s finished already", i, len(cells), cell.name)
        else:
            log.warning("[%d/%d] training %s", i, len(cells), cell.name)
            train_cell(cell, run.root, run.exists() and run.started_training())
        results.append(_cell_result(cell, run, spec["metric"]))
        study = summarise(spec, results)
        write_study(output, study)  # after every cell: a killed study still shows what it has
    write_report([output])
    return study


def _cell_result(cell: Cell, run: runs.RunDir, metric: str) -> dict[str, Any]:
    metrics, record = run.read_metrics(), run.read_record()
    return {"size": cell.size, "method": cell.method, "seed": cell.seed, "run": cell.name, "status": "done",
            "test": metrics.get("test", {}).get(metric), "validation": metrics.get("validation", {}).get(metric),
            "step0": (metrics.get("step0") or {}).get(metric), "seconds": record.get("seconds")}


def summarise(spec: dict[str, Any], cells: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean ± std (sample std, n-1) of the test metric per size x method, with n and total wall-clock."""
    summary = []
    for size in spec["sizes"]:
        for method in spec["methods"]:
            done = [c for c in cells if c["size"] == size and c["method"] == method and c["test"] is not None]
            if not done:
                continue
            values = [c["test"] for c in done]
            summary.append({"size": size, "method": method, "n": len(values), "mean": statistics.fmean(values),
                            "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                            "seconds": round(sum(c["seconds"] or 0 for c in done), 1)})
    return {**spec, "cells": cells, "summary": summary}


def study_markdown(study: dict[str, Any]) -> str:
    metric = study["metric"]
    methods = [m for m in study["methods"] if any(s["method"] == m for s in study["summary"])]
    unit = "x100" if metric == "pearson" else "%"
    lines = [f"# Study: {study['data']} — test {metric} ({unit}) by training examples", "",
             f"{len(study['cells'])} runs; seeds 0..{study['seeds'] - 1}; mean ± std over seeds (n runs), wall-clock summed.", "",
             "| examples | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
    for size in study["sizes"]:
        row = []
        for method in methods:
            s = next((s for s in study["summary"] if s["size"] == size and s["method"] == method), None)
            row.append("-" if s is None else f"{100 * s['mean']:.2f} ± {100 * s['std']:.2f} (n={s['n']}, {_clock(s['seconds'])})")
        lines.append(f"| {size} | " + " | ".join(row) + " |")
    lines += ["", "Methods: " + "; ".join(f"`{m}` = {METHODS[m]}" for m in methods) + ".", ""]
    if study.get("flags"):
        lines += [f"Flags passed to every cell: `{' '.join(study['flags'])}`", ""]
    return "\n".join(lines)


def _clock(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def plot_study(study: dict[str, Any], path: Path) -> None:
    """Test metric vs training examples (log x), error bars = std over seeds, one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for method in study["methods"]:
        points = [s for s in study["summary"] if s["method"] == method]
        if points:
            ax.errorbar([p["size"] for p in points], [100 * p["mean"] for p in points], yerr=[100 * p["std"] for p in points],
                        marker="o", capsize=4, label=method)
    ax.set_xscale("log")
    sizes = sorted({s["size"] for s in study["summary"]})
    ax.set_xticks(sizes, [f"{n:,}" for n in sizes])  # the studied sizes, not log-axis minor labels that overlap
    ax.minorticks_off()
    ax.set_xlabel("training examples")
    ax.set_ylabel(f"test {study['metric']} ({'x100' if study['metric'] == 'pearson' else '%'})")
    counts = sorted({s["n"] for s in study["summary"]})
    n = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    ax.set_title(f"{study['data']}: mean ± std over seeds (n = {n} per point)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    atomic_save_figure(fig, path)
    plt.close(fig)


def write_study(output: Path, study: dict[str, Any]) -> None:
    atomic_write_json(output / STUDY_JSON, study)
    atomic_write_text(output / "study.md", study_markdown(study))
    if study["summary"]:
        plot_study(study, output / "study.png")


def metric_for(task: str, problem: str | None = None) -> str:
    """The metric a study compares: the selection metric of the task's problem type (NER: entity F1)."""
    return "f1" if task == "token" else make_problem(problem).selection


def check_methods(task: str, methods: list[str]) -> None:
    if task == "token" and "sft" in methods:
        raise ConfigError("--methods sft: SFT is not offered for token tasks (NER); compare ls unls repeat instead")
    if not methods:
        raise ConfigError("--methods: name at least one of " + ", ".join(METHODS))
