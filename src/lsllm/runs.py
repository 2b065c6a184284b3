"""The run directory: the only module that knows its layout.

    <run>/config.yaml         resolved RunConfig (+ lsllm and format version); reloadable with --config
    <run>/model/              adapter + head (safetensors), classifier config with label map, tokenizer
    <run>/metrics.json        {"validation": {...}, "test": {...}} for the selected checkpoint
    <run>/predictions.jsonl   records of the test split (validation when there is no test)
    <run>/report.txt          classification report(s)
    <run>/confusion_matrix.png, learning_curve.png
    <run>/logs/               TensorBoard, trainer_state.json (the final Trainer state: loss and validation history)
    <run>/checkpoints/        Trainer checkpoints; a complete one holds COMPLETE_MARKER
    <run>/README.md           model card
    <run>/eval-<split>.json   written by `lsllm eval`
    <run>/run.json            the command, start time and wall-clock; written last (the run finished)
    <run>/report.html         the page `lsllm report` (and the end of training) writes

LS and SFT runs share this layout and this lifecycle (`open_run` → checkpoints → `save_model`
→ results → `record_finished`); what differs is model/ (LS: adapter + head + lsllm.json, SFT: a
causal-LM adapter + lsllm-sft.json). Every file is written atomically (`lsllm.files`), so a
killed run never leaves a half-written file under its final name.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lsllm.config import read_mapping
from lsllm.errors import ConfigError
from lsllm.files import atomic_replace_dir, atomic_write_json, atomic_write_text, remove_stale, staging_dir
from lsllm.version import __version__

log = logging.getLogger(__name__)

CONFIG = "config.yaml"
MODEL_DIR = "model"
METRICS = "metrics.json"
PREDICTIONS = "predictions.jsonl"
REPORT = "report.txt"
CONFUSION = "confusion_matrix.png"
CURVE = "learning_curve.png"
LOGS = "logs"
TRAINER_STATE = f"{LOGS}/trainer_state.json"
STEP0 = f"{LOGS}/step0.json"  # LS with --head-init labels: validation metrics before training
REPORT_HTML = "report.html"  # written by lsllm.report
CHECKPOINTS = "checkpoints"
CARD = "README.md"
RUN_RECORD = "run.json"  # command, start, wall-clock; written last: its presence means the run finished
RUN_INFO = "lsllm.json"  # inside model/ of LS runs: task, labels, base weights, versions
EXPORT_INFO = "lsllm-export.json"  # what marks a folder written by `lsllm export`
SFT_INFO = "lsllm-sft.json"  # inside model/ of SFT runs: labels, template, base weights, versions
COMPLETE_MARKER = "lsllm-complete"
MANIFEST = "manifest.json"  # inside model/: every other file's size and sha256, every tensor's shape; checked at load


def is_export_dir(path: str | Path) -> bool:
    """A folder written by `lsllm export` (it holds lsllm-export.json)."""
    return (Path(path) / EXPORT_INFO).is_file()


def check_out_dir(out: Path) -> None:
    """Refuse, in one line, an output folder that is a file or holds anything (export writes a new folder)."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} is a file; export writes a folder: choose a new folder")
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} exists and is not empty; choose a new folder")


@dataclass
class RunDir:
    """Paths inside one run directory."""

    root: Path

    def __post_init__(self) -> None:
        self.root = Path(self.root)

    def __getattr__(self, name: str) -> Path:
        names = {"config": CONFIG, "model": MODEL_DIR, "metrics": METRICS, "predictions": PREDICTIONS,
                 "report": REPORT, "confusion": CONFUSION, "curve": CURVE, "logs": LOGS,
                 "checkpoints": CHECKPOINTS, "card": CARD, "record": RUN_RECORD, "trainer_state": TRAINER_STATE,
                 "step0": STEP0, "html": REPORT_HTML}
        if name in names:
            return self.root / names[name]
        raise AttributeError(name)

    def eval_file(self, split: str) -> Path:
        return self.root / f"eval-{split}.json"

    def read_config(self) -> dict[str, Any]:
        """config.yaml as a mapping (no dataclass: runs of any method and version), or a one-line ConfigError."""
        return read_mapping(self.config, "yaml", missing=f"not a run directory ({CONFIG} is missing)", fix=DAMAGED_FIX)

    def read_metrics(self) -> dict[str, Any]:
        """metrics.json, or a one-line ConfigError (a run that has not finished has none)."""
        return read_mapping(self.metrics, "json", missing=f"no results yet (training not finished?): {METRICS} is missing",
                            fix=f"was the run interrupted while writing? {DAMAGED_FIX}")

    def read_record(self) -> dict[str, Any]:
        """run.json (written last: the run finished), or a one-line ConfigError."""
        return read_mapping(self.record, "json", missing=f"{RUN_RECORD} is missing: the run has not finished", fix=DAMAGED_FIX)

    def write_eval(self, split: str, payload: dict[str, Any]) -> Path:
        """eval-<split>.json, as `lsllm eval` / `lsllm sft eval` write it; returns its path."""
        atomic_write_json(self.eval_file(split), payload)
        return self.eval_file(split)

    def newest_trainer_state(self) -> Path | None:
        """logs/trainer_state.json of a finished run, else the newest checkpoint's (an unfinished run)."""
        if self.trainer_state.is_file():
            return self.trainer_state
        found = []
        for path in self.checkpoints.glob("checkpoint-*/trainer_state.json"):
            match = re.fullmatch(r"checkpoint-(\d+)", path.parent.name)
            if match:
                found.append((int(match.group(1)), path))
        return max(found)[1] if found else None

    def exists(self) -> bool:
        return (self.root / CONFIG).is_file()

    def finished(self) -> bool:
        """Training ended and every result file was written (run.json is written last)."""
        return (self.root / RUN_RECORD).is_file()

    def started_training(self) -> bool:
        """Anything worth resuming: a complete checkpoint or a saved model."""
        return self.model.is_dir() or any(self.checkpoints.glob(f"checkpoint-*/{COMPLETE_MARKER}"))

    def require_trained(self) -> None:
        if not (self.root / MODEL_DIR / RUN_INFO).is_file():
            hint = " (an SFT run: use `lsllm sft eval`)" if (self.root / MODEL_DIR / SFT_INFO).is_file() else ""
            raise ConfigError(f"{self.root}: not a finished lsllm run (no {MODEL_DIR}/{RUN_INFO}){hint}; train it or pass another directory")

    def run_info(self) -> dict[str, Any]:
        """model/lsllm.json, after checking that model/ is complete and undamaged (`check_model_dir`)."""
        self.require_trained()
        info = read_json_object(self.model / RUN_INFO)
        check_model_dir(self.model, model_files(RUN_INFO, info, self.model))
        labels = info.get("labels")
        if (info.get("task") not in ("seq", "token") or not isinstance(labels, list) or not labels
                or not all(isinstance(x, str) for x in labels) or not isinstance(info.get("max_length"), int)
                or not isinstance(info.get("label_all_subtokens"), bool)):
            raise ConfigError(f"{self.model / RUN_INFO}: damaged (task, labels, max_length or label_all_subtokens "
                              f"missing or of the wrong type); {DAMAGED_FIX}")
        return info


DAMAGED_FIX = "retrain or restore the run"
# model/'s weights by how the run was trained ("finetune" in its info file; runs from before --no-lora have none: LoRA)
WEIGHT_FILES = {"lora": ("adapter_config.json", "adapter_model.safetensors"), "full": ("config.json", "model.safetensors")}


def finetune_mode(info: dict[str, Any], folder: Path) -> str:
    """"lora" (adapter + head saved) or "full" (--no-lora: every weight saved) from a run's info file."""
    mode = info.get("finetune", "lora")
    if mode not in WEIGHT_FILES:
        raise ConfigError(f"{folder}: damaged (finetune {mode!r} is neither lora nor full); {DAMAGED_FIX}")
    return mode


def model_files(info_name: str, info: dict[str, Any], folder: Path) -> tuple[str, ...]:
    """The files a finished run's model/ must hold: its info file, weights, tokenizer (LS: also the classifier config)."""
    config = ("config.json",) if info_name == RUN_INFO else ()
    weights = tuple(f for f in WEIGHT_FILES[finetune_mode(info, folder)] if f not in config)
    if (folder / "model.safetensors.index.json").is_file():  # a full model above save_pretrained's shard size
        weights = tuple("model.safetensors.index.json" if f == "model.safetensors" else f for f in weights)
    return (info_name, *config, *weights, "tokenizer.json", "tokenizer_config.json")


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON object from a run's file, or a one-line ConfigError naming the file."""
    return read_mapping(path, "json", missing=f"missing; {DAMAGED_FIX}", fix=DAMAGED_FIX)


def read_json_noting(path: Path, notes: list[str] | None, missing: str = "") -> Any:
    """A run's JSON file read tolerantly (for reports of unfinished or damaged runs): None, with a note, when it cannot be."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if notes is not None and missing:
            notes.append(f"{path.name}: {missing}")
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as err:  # JSONDecodeError is a ValueError
        if notes is not None:
            notes.append(f"{path.name}: unreadable ({type(err).__name__})")
    return None


def read_jsonl_noting(path: Path, notes: list[str], missing: str) -> list[dict[str, Any]]:
    """A run's JSONL file read tolerantly: the records that parse, a note for a missing file or skipped lines."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        notes.append(f"{path.name}: {missing}")
        return []
    except (OSError, UnicodeDecodeError) as err:
        notes.append(f"{path.name}: unreadable ({type(err).__name__})")
        return []
    records, bad = [], 0
    for line in lines:
        if line.strip():
            try:
                record = json.loads(line)
            except (ValueError, RecursionError):
                record = None
            if isinstance(record, dict):
                records.append(record)
            else:
                bad += 1
    if bad:
        notes.append(f"{path.name}: {bad} unreadable line(s) skipped")
    return records


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _tensor_shapes(path: Path) -> dict[str, list[int]]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as weights:
        return {name: list(weights.get_slice(name).get_shape()) for name in weights.keys()}


def manifest(folder: Path) -> dict[str, Any]:
    """What a saved model folder holds: each file's size and sha256, each safetensors file's tensor names and shapes."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)
    return {
        "format": 1,
        "files": {str(p.relative_to(folder)): {"bytes": p.stat().st_size, "sha256": _sha256(p)} for p in files},
        "tensors": {str(p.relative_to(folder)): _tensor_shapes(p) for p in files if p.suffix == ".safetensors"},
    }


def _tensor_difference(expected: dict[str, list[int]], path: Path) -> str:
    """Which tensors differ from the manifest's, in a few words (for the damaged-file message)."""
    try:
        found = _tensor_shapes(path)
    except Exception:  # noqa: BLE001 - any unreadable file is "unreadable": check_model_dir names it precisely
        return "unreadable"
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    reshaped = sorted(n for n in set(expected) & set(found) if expected[n] != found[n])
    for what, names in (("tensor missing", missing), ("unexpected tensor", extra), ("tensor reshaped", reshaped)):
        if names:
            more = f" and {len(names) - 1} more" if len(names) > 1 else ""
            return f"{what}: {names[0]}{more}"
    return "tensor values"


def check_manifest(folder: Path) -> None:
    """Prove a saved model folder whole against its manifest.json: every file present, unchanged, no tensor renamed.

    A run saved before manifests existed has none and is checked by `check_model_dir` alone.

    Raises:
        ConfigError: one line naming the damaged file and what is wrong with it.
    """
    path = folder / MANIFEST
    if not path.is_file():
        return
    recorded = read_json_object(path)
    files, tensors = recorded.get("files"), recorded.get("tensors", {})
    if not isinstance(files, dict) or not isinstance(tensors, dict):
        raise ConfigError(f"{path}: damaged (no file list); {DAMAGED_FIX}")
    for name, expected in sorted(files.items()):
        target = folder / name
        if not target.is_file():
            raise ConfigError(f"{target}: missing; {DAMAGED_FIX}")
        if not isinstance(expected, dict):
            raise ConfigError(f"{path}: damaged (entry {name!r}); {DAMAGED_FIX}")
        if target.stat().st_size == expected.get("bytes") and _sha256(target) == expected.get("sha256"):
            continue
        what = f"{_tensor_difference(tensors.get(name) or {}, target)}; " if target.suffix == ".safetensors" else "contents "
        raise ConfigError(f"{target}: damaged ({what}changed since the run saved it); {DAMAGED_FIX}")


def check_model_dir(folder: Path, required: tuple[str, ...]) -> None:
    """Fail with one line naming the file when a saved model folder is incomplete or damaged.

    Without this, a deleted, truncated or overwritten file fails deep in transformers, peft,
    tokenizers or safetensors with a traceback, or, worse, loads: PEFT only warns about a
    renamed adapter tensor and runs the layer without it. Checked: the `required` files exist,
    every file matches the folder's manifest (`check_manifest`), every JSON file is an object
    (config.json with a model_type), text files are UTF-8, and every safetensors file has a
    valid header that covers the file (a truncated one does not).
    """
    from safetensors import SafetensorError, safe_open

    for name in required:
        if not (folder / name).is_file():
            raise ConfigError(f"{folder / name}: missing; {DAMAGED_FIX}")
    check_manifest(folder)
    for path in sorted(folder.glob("*.json")):
        data = read_json_object(path)
        if path.name == "config.json" and not isinstance(data.get("model_type"), str):
            raise ConfigError(f"{path}: damaged (no model_type); {DAMAGED_FIX}")
    for path in sorted([*folder.glob("*.jinja"), *folder.glob("*.txt")]):
        try:
            path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"{path}: damaged ({type(err).__name__}); {DAMAGED_FIX}") from None
    for path in sorted(folder.glob("*.safetensors")):
        try:
            with safe_open(str(path), framework="pt") as weights:
                weights.keys()
        except (OSError, SafetensorError) as err:
            raise ConfigError(f"{path}: damaged ({' '.join(str(err).split())[:80]}); {DAMAGED_FIX}") from None


def is_main_process() -> bool:
    """True outside torchrun/accelerate and on rank 0: the process that owns the run directory."""
    return int(os.environ.get("RANK", "0")) == 0


def open_run(cfg, prefix: str = ""):
    """Name the run directory (refusing one that holds a run), or reopen it with its saved config for --resume.

    ``cfg`` is a RunConfig or SFTRunConfig; the saved config is read back with ``type(cfg).load``.
    Under torchrun/accelerate only rank 0 checks: it owns the directory and writes its config.

    Returns:
        (RunDir, the config to run with)
    """
    if cfg.train.output is None:
        stem = Path(cfg.data.data).name.replace(":", "_") or "run"
        cfg.train.output = str(Path("runs") / f"{prefix}{stem}-{time.strftime('%Y%m%d-%H%M%S')}")
    run = RunDir(Path(cfg.train.output))
    if run.root.exists() and not run.root.is_dir():
        raise ConfigError(f"--output {run.root}: a file, not a folder; choose a new folder for the run")
    main_process = is_main_process()
    if main_process:
        for path in remove_stale(run.model):
            log.warning("removed %s, left by a run killed while saving its model", path)
    if cfg.train.resume:
        if main_process and not run.exists():
            raise ConfigError(f"--resume: {run.root} holds no run (no {CONFIG}); start it without --resume")
        saved = type(cfg).load(run.config)
        saved.train.resume = True
        saved.train.output = str(run.root)
        return run, saved
    if main_process and run.exists():
        if run.started_training():
            raise ConfigError(f"{run.root} already holds a run: pass --resume to continue it or choose another --output")
        log.warning("%s holds a run that never reached its first checkpoint: starting it again", run.root)
        for leftover in (run.checkpoints, run.logs):
            shutil.rmtree(leftover, ignore_errors=True)
        run.config.unlink()
    return run, cfg


def mark_checkpoint_complete(checkpoint: Path) -> None:
    atomic_write_text(Path(checkpoint) / COMPLETE_MARKER, "ok\n")


def last_complete_checkpoint(checkpoints: Path, remove_incomplete: bool = True) -> Path | None:
    """The newest checkpoint that finished saving; incomplete ones (killed mid-save) are removed when ``remove_incomplete``."""
    found = []
    for path in Path(checkpoints).glob("checkpoint-*"):
        match = re.fullmatch(r"checkpoint-(\d+)", path.name)
        if match and path.is_dir():
            if (path / COMPLETE_MARKER).is_file():
                found.append((int(match.group(1)), path))
            elif remove_incomplete:
                shutil.rmtree(path, ignore_errors=True)
    return max(found)[1] if found else None


def resume_point(run: RunDir) -> Path | None:
    """The checkpoint `--resume` continues from, or None (with a warning) to start from the beginning."""
    checkpoint = last_complete_checkpoint(run.checkpoints, remove_incomplete=is_main_process())  # one process deletes
    if checkpoint is None:
        log.warning("no complete checkpoint in %s: starting the run from the beginning", run.checkpoints)
    return checkpoint


def training_finished_at(checkpoint: Path | None) -> dict[str, Any] | None:
    """The Trainer state of ``checkpoint`` if it is the run's last step (training is over), else None.

    A run killed after its final checkpoint (while evaluating or writing its model) must not
    train again: the Trainer, resumed at ``max_steps`` inside an epoch, would take one more step.
    """
    if checkpoint is None or not (checkpoint / "trainer_state.json").is_file():
        return None
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    return state if state.get("max_steps") and state.get("global_step", 0) >= state["max_steps"] else None


def versions(*extra: str) -> dict[str, str]:
    """lsllm and library versions for a saved model (plus the ``extra`` packages, e.g. trl)."""
    import importlib

    found = {"lsllm": __version__}
    for name in ("torch", "transformers", "peft", *extra):
        found[name] = importlib.import_module(name).__version__
    return found


def save_model(run: RunDir, write: Callable[[Path], None], info_name: str, info: dict[str, Any]) -> None:
    """Write model/ atomically: ``write(folder)`` fills a staging folder, ``info`` goes in as ``info_name``.

    The staging folder replaces model/ only once complete, so a kill leaves the previous model
    (or none) plus a hidden staging folder that the next `open_run` removes. The folder's
    manifest.json, written last, lets every later load prove the folder whole (`check_manifest`).
    """
    staging = staging_dir(run.model)
    write(staging)
    atomic_write_json(staging / info_name, info)
    atomic_write_json(staging / MANIFEST, manifest(staging))
    atomic_replace_dir(staging, run.model)


COMMAND: ContextVar[list[str] | None] = ContextVar("lsllm_command", default=None)
"""The command line being run, set by `lsllm.cli.main`; None when lsllm is used from Python."""


def record_finished(run: RunDir, started: float, reproduce: str, **details: Any) -> None:
    """run.json, the last file of a run: how it was started, how to reproduce it, how long it took.

    ``command`` is the command line when the run came from the `lsllm` CLI (None from Python);
    ``reproduce`` always works: the run's own config.yaml holds every setting.
    """
    record = {
        "command": COMMAND.get(),
        "reproduce": reproduce,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "seconds": round(time.time() - started, 1),
        **details,
    }
    atomic_write_json(run.record, record)
