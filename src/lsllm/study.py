"""The data-size study: each method trained on the same subsets, sizes x seeds, as one resumable command.

    lsllm study --data sst2 --sizes 64 256 1000 4000 --methods ls sft --seeds 3 --output studies/sst2

Every cell is an ordinary run directory (``<method>-n<size>-s<seed>``) made by `lsllm train` or
`lsllm sft train` through the library, so `eval`, `predict`, `report` and `compare` work on it.
What makes the comparison fair: at a given size and seed every method trains on the same
examples (the first N of train after a shuffle seeded by the cell's seed, `DataConfig.subset_seed`),
selects on the same validation split and reports test once. A finished cell is never trained
again; a killed study continues with ``--resume`` (an unfinished cell resumes from its last
checkpoint). The study writes study.json, study.md, study.png and report.html beside the cells.

Several workers share a study folder: ``--workers N`` starts N processes, and more can join by hand
(``lsllm study --output DIR --resume``, on this machine or another that mounts the folder). A
worker trains a cell only while it holds the cell's lock (`claim`: an flock on
``DIR/.claims/<cell>.lock``), and only when the cell is not finished, so no cell is trained twice;
the kernel drops a lock when its holder dies (kill -9 included), and the next worker to take it
resumes the cell from its last checkpoint.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lsllm import flags, runs
from lsllm.data import load_data
from lsllm.describe import METHODS
from lsllm.errors import ConfigError, LsllmError
from lsllm.files import atomic_save_figure, atomic_write_json, atomic_write_text
from lsllm.problems import Problem, family
from lsllm.report import write_report

log = logging.getLogger(__name__)

STUDY_JSON = "study.json"
CLAIMS = ".claims"  # DIR/.claims/<cell>.lock: held (flock) by the worker training the cell
SUMMARY_LOCK = "_summary"  # held while study.json / study.md / study.png are rewritten
# Each method is an ordinary `lsllm train` / `lsllm sft train` run with these settings set on the study's config.
METHOD_SETTINGS: dict[str, dict[str, Any]] = {"ls": {}, "unls": {"model.bidirectional": True},
                                              "repeat": {"model.attention": "repeat"}, "sft": {}}


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
    parsed, extra = flags.method_parser("ls").parse_known_args(cell_flags)
    unknown = {a for a in extra if a.startswith("--")} & set(flags.unknown_flags("sft", cell_flags))
    if unknown:
        raise ConfigError(f"lsllm study: {', '.join(sorted(unknown))} is a flag of neither `lsllm train` nor `lsllm sft train`")
    cfg, _ = flags.config_from_args(parsed)
    bundle = load_data(cfg.data, splits=("validation",))
    kind = family(bundle.task, bundle.problem)
    check_methods(kind, methods)
    plan(sizes, methods, seeds)  # refuse bad sizes / methods / seeds before anything is written
    return {"data": data, "task": kind.task, "problem": kind.saved_problem, "metric": kind.selection,
            "sizes": sorted(set(sizes)),
            "methods": list(methods), "seeds": seeds, "flags": cell_flags}


def load_spec(output: Path) -> dict[str, Any]:
    """The spec of the study in ``output`` (for --resume)."""
    saved = Path(output) / STUDY_JSON
    if not saved.is_file():
        raise ConfigError(f"--resume: {output} holds no study ({STUDY_JSON}); start it without --resume")
    return {k: v for k, v in runs.read_json_object(saved).items() if k not in ("cells", "summary")}


def trainer(spec: dict[str, Any]) -> Callable[[Cell, Path, bool], Path]:
    """The study's `train_cell`: its flags (``spec["flags"]``, saved in study.json as typed) read once per training
    command, each cell's run config built from that config object (`cell_config`)."""
    given: dict[str, tuple[Any, set[str]]] = {}

    def train_cell(cell: Cell, root: Path, resume: bool) -> Path:
        method = training_command(cell)
        if method not in given:  # the first cell of the command: each command reads its own flags
            given[method] = flags.config_from_flags(spec["flags"], method)
        return train_one(cell, *cell_config(spec, cell, root, resume, given[method]))

    return train_cell


def training_command(cell: Cell) -> str:
    """The training command a cell's method runs: "sft" (`lsllm sft train`) or "ls" (`lsllm train`)."""
    return "sft" if cell.method == "sft" else "ls"


def cell_settings(cell: Cell, root: Path) -> dict[str, Any]:
    """The settings one cell sets on the study's config: its method's, its size and seed (subset and training), its folder."""
    return {**METHOD_SETTINGS[cell.method], "data.train_limit": cell.size, "data.subset_seed": cell.seed,
            "train.seed": cell.seed, "train.output": str(root)}


def cell_config(spec: dict[str, Any], cell: Cell, root: Path, resume: bool,
                given: tuple[Any, set[str]] | None = None) -> tuple[Any, set[str]]:
    """The run config of one cell and the settings given: the study's config with the cell's settings set, or, for
    --resume of its folder, the folder and resume alone (the run's saved config.yaml says the rest).

    ``given``: the study's flags already read for the cell's command (`trainer` reads them once); None reads them.
    """
    method = training_command(cell)
    if resume:
        settings = {"train.output": str(root), "train.resume": True}
        return flags.with_settings(flags.CONFIGS[method][0](), settings), set(settings)
    cfg, explicit = given or flags.config_from_flags(spec["flags"], method)
    settings = cell_settings(cell, root)
    return flags.with_settings(cfg, settings), set(explicit) | set(settings)


def train_one(cell: Cell, cfg: Any, explicit: set[str]) -> Path:
    """Train (or continue) one cell's run directory through `lsllm train` / `lsllm sft train`'s library functions."""
    if training_command(cell) == "sft":
        from lsllm.sft.training import train_sft

        return train_sft(cfg)
    from lsllm.training import train

    return train(cfg, explicit)


def study(output: str | Path, spec: dict[str, Any] | None = None, resume: bool = False, workers: int = 1) -> dict[str, Any]:
    """Run a study from Python as `lsllm study` does: ``spec`` from `new_spec`, or None with ``resume`` (read from ``output``).

    ``workers`` > 1 trains the cells in that many processes; a process started with ``resume``
    while others work on ``output`` joins them (no cell is trained twice).

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
    return run_study(output, cells, trainer(spec), spec, resume=resume, workers=workers)


def run_study(output: Path, cells: list[Cell], train_cell: Callable[[Cell, Path, bool], Path], spec: dict[str, Any],
              resume: bool = False, workers: int = 1) -> dict[str, Any]:
    """Train every cell (skipping finished ones and those other workers hold), then write study.json / study.md / study.png.

    Args:
        output: the study directory.
        cells: from `plan`.
        train_cell: trains one cell into the given run directory (resume=True continues it).
        spec: what the study is (data, metric, sizes, methods, seeds, flags), saved in study.json.
        resume: continue a study in ``output`` (or join the workers on it); without it ``output`` must not hold one.
        workers: processes that train cells at once (`run_workers`; they train with `train_cell` of the spec).
    """
    output = Path(output)
    if (output / STUDY_JSON).is_file() and not resume:
        raise ConfigError(f"{output} already holds a study: pass --resume to continue it or choose another --output")
    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    output.mkdir(parents=True, exist_ok=True)
    if not (output / STUDY_JSON).is_file():
        write_summary(output, spec, cells)  # the study exists from its start: other processes can join it (--resume)
    if workers > 1:
        run_workers(output, workers)
    else:
        work(output, cells, train_cell, spec)
    study = write_summary(output, spec, cells)
    write_report([output])
    return study


def work(output: Path, cells: list[Cell], train_cell: Callable[[Cell, Path, bool], Path], spec: dict[str, Any]) -> None:
    """One worker: train every unfinished cell no other worker holds, then wait for the ones held elsewhere.

    Waiting on a held cell's lock returns when its worker has finished it (nothing to do) or died
    (its lock dropped: this worker resumes it), so a worker returns only when every cell is finished.
    """
    worker = f"{socket.gethostname()}:{os.getpid()}"
    waiting = []
    for i, cell in enumerate(cells, 1):
        if not _train_held(output, cell, train_cell, spec, cells, f"[{i}/{len(cells)}]", worker, wait=False):
            waiting.append((i, cell))
    for i, cell in waiting:
        log.info("[%d/%d] %s: another worker holds it; waiting for it", i, len(cells), cell.name)
        _train_held(output, cell, train_cell, spec, cells, f"[{i}/{len(cells)}]", worker, wait=True)


def _train_held(output: Path, cell: Cell, train_cell: Callable[[Cell, Path, bool], Path], spec: dict[str, Any],
                cells: list[Cell], where: str, worker: str, wait: bool) -> bool:
    """Train one cell if it is unfinished and this worker gets its lock; False when another worker holds it."""
    run = runs.RunDir(output / cell.name)
    if run.finished():
        log.info("%s %s finished already", where, cell.name)
        return True
    with claim(output, cell.name, wait) as held:
        if not held:
            return False
        if run.finished():  # finished by the worker that held it before
            return True
        log.warning("%s training %s (worker %s)", where, cell.name, worker)
        train_cell(cell, run.root, run.exists() and run.started_training())
    write_summary(output, spec, cells)  # after every cell: a killed study still shows what it has
    return True


@contextmanager
def claim(output: Path, name: str, wait: bool) -> Iterator[bool]:
    """Hold ``DIR/.claims/<name>.lock`` (an exclusive flock) for the block: True, or False when another process holds it.

    With ``wait`` the call blocks until the lock is free. The kernel releases a lock when its
    holder's process ends, killed included, so a dead worker's cell needs no stale-claim rule
    (a pid cannot say whether a process on another machine lives). The file records the holder
    (host, pid, since) for people; lock files are never deleted (a deleted one could be locked
    by two processes at once, one through the old file, one through the new).

    Raises:
        ConfigError: the folder's filesystem has no file locks (some network mounts).
    """
    import fcntl

    folder = output / CLAIMS
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        except OSError as err:  # ENOLCK: no locks on this filesystem
            raise ConfigError(f"{folder}: cannot lock {name}.lock ({err.strerror}): the study folder's filesystem has no "
                              "file locks; run the workers on one machine with the folder on a local disk") from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                                 "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}).encode())
        yield True
    finally:
        os.close(fd)  # releases the lock


def write_summary(output: Path, spec: dict[str, Any], cells: list[Cell]) -> dict[str, Any]:
    """study.json / study.md / study.png from every finished cell on disk, rewritten under the study's lock.

    Workers finish cells in any order; each rewrite reads every cell folder while it holds the
    lock, so the last rewrite saw every cell finished before it, whichever worker wrote it.
    """
    with claim(output, SUMMARY_LOCK, wait=True):
        results = [_cell_result(cell, runs.RunDir(output / cell.name), spec["metric"]) for cell in cells
                   if runs.RunDir(output / cell.name).finished()]
        summary = summarise(spec, results)
        write_study(output, summary)
    return summary


def run_workers(output: Path, workers: int) -> None:
    """--workers N: N processes run `work` on the study in ``output`` (its study.json) at once.

    Spawned, not forked: each is a fresh interpreter, with no torch state copied from this one.
    Each gets an equal share of the CPU cores as torch threads (a cell's --threads wins).

    Raises:
        KeyboardInterrupt: a worker was interrupted (Ctrl-C reaches them all).
        LsllmError: a worker stopped with an error (it printed its own line).
    """
    import multiprocessing

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    context = multiprocessing.get_context("spawn")
    args = (str(output), logging.getLogger().getEffectiveLevel(), list(warnings.filters), runs.COMMAND.get(),
            max(1, cores // workers))
    processes = [context.Process(target=_worker, args=args, name=f"lsllm-study-worker-{i}") for i in range(workers)]
    for process in processes:
        process.start()
    try:
        for process in processes:
            process.join()
    finally:
        for process in processes:
            process.join(timeout=60)  # Ctrl-C: each worker stops on its own (it got the signal too)
    codes = [process.exitcode for process in processes]
    if any(code in (130, -2) for code in codes):
        raise KeyboardInterrupt
    failed = [code for code in codes if code]
    if failed:
        raise LsllmError(f"{len(failed)} of {workers} study workers stopped with an error (above); the cells finished are "
                         f"kept: lsllm study --output {output} --resume continues")


def _worker(output: str, level: int, filters: list, command: list[str] | None, threads: int) -> None:
    """One --workers process: `work` on the study's cells, logging and warnings as in the process that started it."""
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    warnings.filters[:] = filters  # the CLI's: third-party deprecation notices hidden unless -v
    runs.COMMAND.set(command)  # each cell's run.json records the study's command line
    try:
        from lsllm.hardware import configure_threads

        configure_threads(threads)
        spec = load_spec(Path(output))
        work(Path(output), plan(spec["sizes"], spec["methods"], spec["seeds"]), trainer(spec), spec)
    except LsllmError as err:
        sys.stderr.write(f"error: {err}\n")
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


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
    metric, unit = study["metric"], _unit(study)
    methods = [m for m in study["methods"] if any(s["method"] == m for s in study["summary"])]
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


def _unit(study: dict[str, Any]) -> str:
    """How the study's metric is shown x100: "%" when the family prints it as a percentage (not a correlation)."""
    return "%" if study["metric"] in family(study.get("task"), study.get("problem")).percent else "x100"


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
    ax.set_ylabel(f"test {study['metric']} ({_unit(study)})")
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


def check_methods(kind: Problem, methods: list[str]) -> None:
    """Refuse methods the data's family member does not offer (SFT for NER) and an empty list."""
    if kind.sft_refusal and "sft" in methods:
        raise ConfigError(f"--methods sft: {kind.sft_refusal}; compare ls unls repeat instead")
    if not methods:
        raise ConfigError("--methods: name at least one of " + ", ".join(METHODS))
