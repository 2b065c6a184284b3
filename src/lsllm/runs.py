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

import copy
import hashlib
import json
import logging
import os
import re
import shutil
import time
import types
import typing
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from lsllm.config import TASKS, read_mapping
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


# ----------------------------------------------------------------------------- the saved info files, typed

SCHEMA_KEY = "schema_version"  # in every info file lsllm writes; files saved before it existed are version 0
Info = typing.TypeVar("Info", bound="SavedInfo")


def _matches(value: Any, hint: Any) -> bool:
    """Whether a JSON value fits a field's annotation (str | None, list[str], dict[str, Any], int, bool ...)."""
    if hint is Any:
        return True
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in args)
    if hint is type(None):
        return value is None
    if origin is list:
        return isinstance(value, list) and all(_matches(item, args[0]) for item in value)
    if origin is dict:
        return isinstance(value, dict)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


@dataclass(frozen=True, kw_only=True)
class SavedInfo:
    """One info file of a saved model, typed and versioned: the base of `RunInfo`, `SFTInfo` and `ExportInfo`.

    Files are versioned by ``schema_version``; one without it (every file saved before this class
    existed) is version 0 and is upgraded on reading: the keys older lsllm did not write get
    `V0_DEFAULTS`, the values the readers gave a missing key before. A file of a newer version is
    refused in one line (this lsllm cannot know what it means). Keys this lsllm does not know
    stay in ``extra`` and are written back, so reading and rewriting a file loses nothing.
    """

    FILE: ClassVar[str]
    SCHEMA_VERSION: ClassVar[int] = 1
    V0_DEFAULTS: ClassVar[dict[str, Any]] = {}
    task: str  # "seq" | "token": the name files hold (problems.family turns it into the object)
    labels: list[str]
    extra: dict[str, Any] = field(default_factory=dict)  # keys this lsllm does not know, kept as they were

    def __post_init__(self) -> None:
        clash = set(self.extra) & ({f.name for f in fields(self)} | {SCHEMA_KEY})
        if clash:
            raise ValueError(f"extra repeats a field of {type(self).__name__}: {', '.join(sorted(clash))}")

    @classmethod
    def from_dict(cls: type[Info], data: dict[str, Any], path: str | Path) -> Info:
        """The record of a file's mapping, upgraded from an older version; ``path`` names the file in errors.

        Raises:
            ConfigError: one line naming the file: a newer version ("upgrade lsllm"), or a key
                missing or of the wrong type ("damaged").
        """
        version = data.get(SCHEMA_KEY, 0)
        if not _matches(version, int) or version < 0:
            raise ConfigError(f"{path}: damaged ({SCHEMA_KEY} {version!r} is not a version number); {DAMAGED_FIX}")
        if version > cls.SCHEMA_VERSION:
            versions = data.get("versions")
            saved_by = versions.get("lsllm") if isinstance(versions, dict) else None
            raise ConfigError(f"{path}: written by a newer lsllm{f' ({saved_by})' if saved_by else ''} (schema version "
                              f"{version}; this lsllm {__version__} reads up to {cls.SCHEMA_VERSION}); upgrade lsllm to read it")
        values = {k: v for k, v in data.items() if k != SCHEMA_KEY}
        if version == 0:
            values = {**copy.deepcopy(cls.V0_DEFAULTS), **values}
        hints = typing.get_type_hints(cls)
        known = {f.name for f in fields(cls)} - {"extra"}
        for name in sorted(known):
            if name not in values or not _matches(values[name], hints[name]):
                what = "missing" if name not in values else "of the wrong type"
                raise ConfigError(f"{path}: damaged ({name} {what}); {DAMAGED_FIX}")
        record = cls(**{k: values[k] for k in known}, extra={k: v for k, v in values.items() if k not in known})
        fault = record.fault()
        if fault:
            raise ConfigError(f"{path}: damaged ({fault}); {DAMAGED_FIX}")
        return record

    def fault(self) -> str | None:
        """What is wrong beyond a value's type (a task lsllm does not know, no labels), or None."""
        if self.task not in TASKS:
            return f"task {self.task!r} is not one of {', '.join(TASKS)}"
        if not self.labels:
            return "no labels"
        return None

    def to_dict(self) -> dict[str, Any]:
        """The file's mapping, current version first, the unknown keys read with it kept."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        return {SCHEMA_KEY: self.SCHEMA_VERSION, **values, **self.extra}


@dataclass(frozen=True, kw_only=True)
class RunInfo(SavedInfo):
    """model/lsllm.json of an LS run: what rebuilds its classifier (labels, task, encoding, problem and its state).

    Version 0 (no schema_version) is every file saved before it; the oldest lack ``prompt``,
    ``attention``, ``finetune``, ``problem``, ``problem_state`` and ``fields`` (added in that
    order), which read as the readers took a missing key: no prompt, the attention told by
    ``bidirectional``, LoRA, single-label, no state, one text field. Only ``task``, ``labels``,
    ``max_length`` and ``label_all_subtokens`` were ever required.
    """

    FILE: ClassVar[str] = RUN_INFO
    V0_DEFAULTS: ClassVar[dict[str, Any]] = {
        "base_model": None, "weights": {}, "finetune": "lora", "bidirectional": False, "unmask_layers": None,
        "attention": None, "pooling": None, "prompt": None, "problem": None, "problem_state": None, "fields": None,
        "data": None, "versions": {}}
    base_model: str | None  # the --model the run was trained on
    weights: dict[str, Any]  # where the base weights came from (models.backbones' source record)
    finetune: str  # "lora" (adapter + head saved) | "full" (--no-lora: every weight saved)
    bidirectional: bool
    unmask_layers: int | None
    attention: str | None  # causal | bidirectional | repeat (None: saved before --attention)
    pooling: str | None  # seq: last | mean | max
    max_length: int
    label_all_subtokens: bool
    prompt: str | None
    problem: str | None  # seq: single-label | multi-label | regression (None: single-label); token: None
    problem_state: dict[str, Any] | None  # what the problem needs to decide as validated (thresholds, scale)
    fields: list[str] | None  # the input's text fields when it has several (sentence pairs)
    data: str | None  # the dataset's name
    versions: dict[str, Any]  # lsllm and library versions that saved it

    def fault(self) -> str | None:
        if self.finetune not in WEIGHT_FILES:
            return f"finetune {self.finetune!r} is neither lora nor full"
        return super().fault()

    @property
    def repeat(self) -> bool:
        """Trained with --attention repeat (the input fed twice, read on the second copy)."""
        return self.attention == "repeat"


@dataclass(frozen=True, kw_only=True)
class SFTInfo(SavedInfo):
    """model/lsllm-sft.json of an SFT run: labels, the answers' problem type and state, template, base weights.

    Version 0 files from before problem types lack ``problem`` and ``problem_state`` (the run is
    single-label; `lsllm sft eval` falls back to the run's config), those from before --no-lora
    lack ``finetune`` (LoRA).
    """

    FILE: ClassVar[str] = SFT_INFO
    V0_DEFAULTS: ClassVar[dict[str, Any]] = {
        "method": "sft", "task": "seq", "problem": None, "problem_state": None, "template": None, "base_model": None,
        "weights": {}, "finetune": "lora", "versions": {}}
    method: str  # "sft"
    problem: str | None
    problem_state: dict[str, Any] | None
    template: str | None
    base_model: str | None
    weights: dict[str, Any]
    finetune: str
    versions: dict[str, Any]

    def fault(self) -> str | None:
        if self.finetune not in WEIGHT_FILES:
            return f"finetune {self.finetune!r} is neither lora nor full"
        return super().fault()


@dataclass(frozen=True, kw_only=True)
class ExportInfo(SavedInfo):
    """lsllm-export.json of an `lsllm export` folder: what a runner needs besides the graph and the tokenizer.

    Version 0 files need only what ONNX Runtime's reader always required (the graph's file, task,
    labels, max_length); the rest read as the readers defaulted them (exports from before
    2026-12-02's throughput work lack ``max_position_embeddings``).
    """

    FILE: ClassVar[str] = EXPORT_INFO
    V0_DEFAULTS: ClassVar[dict[str, Any]] = {
        "format": "onnx", "int8_model": None, "inputs": {}, "outputs": {}, "problem": None, "problem_state": None,
        "outputs_from_logits": None, "prompt": None, "fields": None, "label_all_subtokens": False, "pad_token_id": None,
        "max_position_embeddings": None, "attention": None, "attention_description": None, "unmask_layers": None,
        "pooling": None, "run": None, "base_model": None, "exporter": None, "opset": None, "verification": {},
        "versions": {}}
    format: str  # "onnx"
    model: str  # the fp32 graph's file name
    int8_model: str | None  # the int8 graph's (--int8), else None
    inputs: dict[str, Any]  # the graph's inputs, described for a runner
    outputs: dict[str, Any]
    problem: str | None
    problem_state: dict[str, Any] | None
    outputs_from_logits: str | None
    prompt: str | None
    fields: list[str] | None
    max_length: int
    label_all_subtokens: bool
    pad_token_id: int | None
    max_position_embeddings: int | None
    attention: str | None  # causal | bidirectional | top-k | repeat (export.attention_mode)
    attention_description: str | None
    unmask_layers: int | None
    pooling: str | None
    run: str | None  # the run exported (absolute path)
    base_model: str | None
    exporter: str | None
    opset: int | None
    verification: dict[str, Any]
    versions: dict[str, Any]

    @property
    def bidirectional(self) -> bool:
        return self.attention in ("bidirectional", "top-k")

    @property
    def repeat(self) -> bool:
        return self.attention == "repeat"


def write_info(folder: Path, info: SavedInfo) -> Path:
    """An info file (``info.FILE``) written atomically into ``folder``, at its current version; returns its path."""
    path = Path(folder) / info.FILE
    atomic_write_json(path, info.to_dict())
    return path


def read_info(path: Path, kind: type[Info]) -> Info:
    """An info file read strictly as ``kind``: a one-line ConfigError naming the file when it cannot be."""
    return kind.from_dict(read_json_object(path), path)


def read_info_noting(path: Path, kind: type[Info], notes: list[str] | None, missing: str = "") -> Info | None:
    """An info file read tolerantly (reports, hints before loading): None, with a note, when it cannot be."""
    data = read_json_noting(path, notes, missing)
    if not isinstance(data, dict):
        if data is not None and notes is not None:
            notes.append(f"{path.name}: damaged (not a JSON object)")
        return None
    try:
        return kind.from_dict(data, path)
    except ConfigError as err:
        if notes is not None:
            notes.append(str(err).replace(str(path), path.name, 1))
        return None


def peek_info(path: str | Path) -> RunInfo | ExportInfo | None:
    """The info of a run (model/lsllm.json) or an export folder (lsllm-export.json) without checking the model,
    or None when it is missing or damaged: for what is said before loading (loading says why it cannot)."""
    folder = Path(path)
    if is_export_dir(folder):
        return read_info_noting(folder / EXPORT_INFO, ExportInfo, None)
    return read_info_noting(folder / MODEL_DIR / RUN_INFO, RunInfo, None)


def read_export_info(folder: str | Path) -> ExportInfo:
    """lsllm-export.json of an `lsllm export` folder, or a one-line ConfigError."""
    folder = Path(folder)
    if not is_export_dir(folder):
        raise ConfigError(f"{folder}: not an `lsllm export` folder (no {EXPORT_INFO}); export a run with lsllm export")
    return read_info(folder / EXPORT_INFO, ExportInfo)


def read_model_info(folder: Path, kind: type[Info]) -> Info:
    """A saved model folder's info file (``kind``: RunInfo or SFTInfo), after proving the folder whole.

    The folder is checked first (`check_model_dir`: the files its finetune mode needs, the
    manifest), so a damaged weight file is named even when the info file is damaged too.
    """
    path = folder / kind.FILE
    data = read_json_object(path)
    check_model_dir(folder, model_files(kind.FILE, data, folder))
    return kind.from_dict(data, path)



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

    def run_info(self) -> RunInfo:
        """model/lsllm.json of a finished LS run, after checking that model/ is complete and undamaged (`check_model_dir`)."""
        self.require_trained()
        return read_model_info(self.model, RunInfo)

    def sft_info(self) -> SFTInfo:
        """model/lsllm-sft.json of a finished SFT run (the model is checked when `sft.loading` loads it)."""
        if not (self.model / SFT_INFO).is_file():
            raise ConfigError(f"{self.root}: not a finished SFT run (no {MODEL_DIR}/{SFT_INFO}); train it with `lsllm sft train`")
        return read_info(self.model / SFT_INFO, SFTInfo)

    def info_noting(self, kind: type[Info], notes: list[str], missing: str) -> Info | None:
        """model/'s info file (``kind``: RunInfo or SFTInfo) read tolerantly, for reports: None, with a note, when it cannot be."""
        return read_info_noting(self.model / kind.FILE, kind, notes, missing)


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


def model_fingerprint(path: str | Path) -> str:
    """What identifies a run's (or an export's) model: its manifest of file hashes, or its files' names and sizes."""
    folder = Path(path) if is_export_dir(path) else RunDir(Path(path)).model
    digest = hashlib.sha256()
    if (folder / MANIFEST).is_file():
        digest.update((folder / MANIFEST).read_bytes())
    else:
        info = folder / EXPORT_INFO
        digest.update(info.read_bytes() if info.is_file() else b"")
        for file in sorted(p for p in folder.rglob("*") if p.is_file()):
            digest.update(f"{file.relative_to(folder)}\t{file.stat().st_size}\n".encode())
    return digest.hexdigest()


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


def save_model(run: RunDir, write: Callable[[Path], None], info: RunInfo | SFTInfo) -> None:
    """Write model/ atomically: ``write(folder)`` fills a staging folder, ``info`` goes in as its file (``info.FILE``).

    The staging folder replaces model/ only once complete, so a kill leaves the previous model
    (or none) plus a hidden staging folder that the next `open_run` removes. The folder's
    manifest.json, written last, lets every later load prove the folder whole (`check_manifest`).
    """
    staging = staging_dir(run.model)
    write(staging)
    write_info(staging, info)
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
