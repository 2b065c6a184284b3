"""`lsllm record RUN... --to results/NAME`: keep the evidence of a run, study or tune in the repository.

runs/, studies/ and tunes/ are not committed (their weights and checkpoints are large), so a figure
quoted in the docs from them could not be checked once the machine that made it was gone. This
copies what proves a result (metrics.json, run.json, config.yaml, eval-*.json, predictions,
report.txt, study.json, tune.json, logs/trainer_state.json, ...) into results/NAME/<folder name>,
and leaves out only what is heavy or binary: checkpoints/, weight files (safetensors, bin, pt, onnx,
gguf), the tune's SQLite database (tune.json lists its trials) and any file over a size limit. RECORD.json beside the copy lists
every file copied with its sha256 and every file left out with the reason, so a reader sees what
the record holds and what it does not; nothing is left out silently.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from lsllm import runs
from lsllm.errors import ConfigError
from lsllm.files import atomic_replace_dir, atomic_write_json, staging_dir
from lsllm.version import __version__

RECORD = "RECORD.json"
MAX_FILE_BYTES = 2_000_000
"""Default size limit per file: metrics, configs and a CoNLL03 test split's predictions fit; weights do not."""
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".onnx", ".gguf")
DATABASE_SUFFIXES = (".db", ".db-journal", ".db-wal", ".db-shm")  # a tune's Optuna study: tune.json holds its trials
SKIPPED_DIRS = {runs.CHECKPOINTS: "checkpoints"}


def kind_of(folder: Path) -> str:
    """``run``, ``study`` or ``tune``: what the folder's own result file says it is."""
    if (folder / "study.json").is_file():
        return "study"
    if (folder / "tune.json").is_file():
        return "tune"
    if (folder / runs.METRICS).is_file() or (folder / runs.RUN_RECORD).is_file():
        return "run"
    raise ConfigError(f"{folder}: not a finished run, study or tune (no {runs.METRICS}, {runs.RUN_RECORD}, study.json or "
                      "tune.json); record a folder `lsllm train`, `sft train`, `study` or `tune` wrote")


def left_out_reason(path: Path, max_bytes: int) -> str | None:
    """Why a file stays out of the record, or None when it goes in."""
    if path.is_symlink():
        return "symlink"
    if path.name.endswith(WEIGHT_SUFFIXES):
        return "weights"
    if path.name.endswith(DATABASE_SUFFIXES):
        return "database"
    size = path.stat().st_size
    if size > max_bytes:
        return f"{size} bytes, over the {max_bytes}-byte limit"
    return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _machines(folder: Path) -> list[dict[str, Any]]:
    """The machines the folder's runs recorded in their run.json (runs written before that have none)."""
    seen: list[dict[str, Any]] = []
    for path in sorted(folder.rglob(runs.RUN_RECORD)):
        if runs.CHECKPOINTS in path.relative_to(folder).parts:
            continue
        data = runs.read_json_noting(path, None) if path.is_file() else None
        machine = data.get("machine") if isinstance(data, dict) else None
        if isinstance(machine, dict) and machine not in seen:
            seen.append(machine)
    return seen


def record(source: str | Path, results: str | Path, max_bytes: int = MAX_FILE_BYTES, machine: str | None = None,
           note: str | None = None) -> dict[str, Any]:
    """Copy one run, study or tune folder's small files into ``results/<its name>``; return what RECORD.json says.

    Raises:
        ConfigError: the source is not a finished run/study/tune, or the destination exists already.
    """
    source = Path(source)
    if not source.is_dir():
        raise ConfigError(f"{source}: no such folder; give a run, study or tune folder")
    kind = kind_of(source)
    target = Path(results) / source.resolve().name
    if target.exists():
        raise ConfigError(f"{target} exists already: a record is not overwritten; choose another --to, or delete it first")
    copied: dict[str, dict[str, Any]] = {}
    left_out: dict[str, str] = {}
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = staging_dir(target)
    staging.mkdir()
    try:
        for path in sorted(source.rglob("*")):
            rel = path.relative_to(source)
            parents = [source.joinpath(*rel.parts[:i]) for i in range(1, len(rel.parts))]
            if any(p.name in SKIPPED_DIRS or p.is_symlink() for p in parents):  # inside checkpoints/ or a linked folder
                continue
            if path.is_dir() and not path.is_symlink():
                if path.name in SKIPPED_DIRS:
                    left_out[f"{rel}/"] = SKIPPED_DIRS[path.name]
                continue
            reason = left_out_reason(path, max_bytes)
            if reason:
                left_out[str(rel)] = reason
                continue
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, staging / rel)
            copied[str(rel)] = {"bytes": path.stat().st_size, "sha256": _sha256(path)}
        summary = {
            "source": str(source.resolve()),
            "kind": kind,
            "recorded": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": runs.COMMAND.get(),
            "lsllm": __version__,
            "machine": machine,  # as the recorder stated it (--machine); None when not stated
            "machines_in_runs": _machines(source),  # what the runs' own run.json recorded
            "note": note,
            "max_file_bytes": max_bytes,
            "copied": copied,
            "left_out": left_out,
        }
        atomic_write_json(staging / RECORD, summary)
        atomic_replace_dir(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return summary


def register(subparsers: argparse._SubParsersAction) -> None:
    cmd = subparsers.add_parser(
        "record", help="copy runs', studies' or tunes' small result files into results/NAME (the evidence docs cite)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Copy each folder's result files (metrics, configs, run.json, eval files, predictions, study.json, "
                    "tune.json, reports) into TO/<folder name>, leaving out checkpoints/, weight files and files over "
                    "--max-file-size; TO/<folder name>/RECORD.json lists what was copied (sha256) and what was left out.",
        epilog="example:\n  lsllm record runs/stsb studies/ec --to results/problem-types --machine 'Intel Xeon (AMX), 1 core'")
    cmd.add_argument("folders", nargs="+", metavar="FOLDER", help="run, study or tune folders")
    cmd.add_argument("--to", required=True, metavar="DIR", help="the record folder, e.g. results/sst2-4000")
    cmd.add_argument("--max-file-size", type=int, default=MAX_FILE_BYTES, metavar="BYTES",
                     help=f"files larger than this stay out (listed in RECORD.json; default {MAX_FILE_BYTES})")
    cmd.add_argument("--machine", default=None, help="the machine the runs ran on, as the docs will name it")
    cmd.add_argument("--note", default=None, help="a line kept in RECORD.json (what the record is for)")
    cmd.set_defaults(handler=cmd_record)


def cmd_record(args: argparse.Namespace) -> int:
    if args.max_file_size <= 0:
        raise ConfigError(f"--max-file-size must be a positive number of bytes, got {args.max_file_size}")
    names = [Path(f).resolve().name for f in args.folders]
    if len(set(names)) < len(names):
        raise ConfigError(f"two folders share a name ({', '.join(sorted({n for n in names if names.count(n) > 1}))}): "
                          "record them with separate --to folders")
    for folder in args.folders:  # every folder checked before anything is copied
        if not Path(folder).is_dir():
            raise ConfigError(f"{folder}: no such folder; give a run, study or tune folder")
        kind_of(Path(folder))
        if (Path(args.to) / names[args.folders.index(folder)]).exists():
            raise ConfigError(f"{Path(args.to) / Path(folder).resolve().name} exists already: a record is not overwritten; "
                              "choose another --to, or delete it first")
    for folder in args.folders:
        summary = record(folder, args.to, args.max_file_size, args.machine, args.note)
        left = f", {len(summary['left_out'])} left out" if summary["left_out"] else ""
        sys.stdout.write(f"{folder} ({summary['kind']}) -> {Path(args.to) / Path(folder).resolve().name}: "
                         f"{len(summary['copied'])} files{left} (see {RECORD})\n")
    return 0
