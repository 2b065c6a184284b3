"""`load_data`: resolve `--data` to a Source, then build a DatasetBundle with one set of rules.

Resolution order for a name:
  1. `hf:<name>[:<config>]` -> the Hugging Face hub (or a local `save_to_disk` / data folder);
  2. a built-in name -> packaged resource, else `<data_dir>/<name>/`, else the hub copies;
  3. an existing folder (train.* + optional validation.*/dev.* + test.*) or train file;
  4. a folder `<data_dir>/<name>/` that is not a built-in (generic folder loading).

Split rules (the same for every source): a dataset without a labelled test split reports its
official validation split as "test" and carves the selection split "validation" from train
(seed `split_seed`, the size of the official validation), so nothing is selected on what is
reported; a dataset without validation carves it from train (10%, or the spec's size).
`train_per_class` then samples N training examples per label (seeded), and `train_limit` /
`eval_limit` keep the first N examples.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lsllm.config import DataConfig
from lsllm.data import carving
from lsllm.data.examples import DatasetBundle
from lsllm.data.hub import HubUnreachable, hub_source, hub_task, load_hub
from lsllm.data.readers import (
    CONLL_SUFFIXES,
    JSONL_SUFFIXES,
    TABLE_SUFFIXES,
    ReadSplit,
    paused_gc,
    read_label_names,
    read_text,
    sniff_task,
)
from lsllm.data.registry import REGISTRY, DatasetSpec
from lsllm.data.source import SPLIT_ALIASES, SPLITS, Source
from lsllm.errors import ConfigError, DataError
from lsllm.problems import family

logger = logging.getLogger(__name__)

READER_VERSION = 2  # bump when reading/conversion changes what examples a file yields (2: fields, label lists, numbers)
CARVE_FRACTION = 0.1
_SUFFIXES = TABLE_SUFFIXES + JSONL_SUFFIXES + CONLL_SUFFIXES


class MissingSplit(DataError):
    """A split the request needs is not in the source (e.g. agnews train offline)."""


def data_dir(cfg: DataConfig) -> Path | None:
    """`DataConfig.data_dir`, else env `LSLLM_DATA_DIR`, else None (no default location)."""
    value = cfg.data_dir or os.environ.get("LSLLM_DATA_DIR")
    return Path(value).expanduser() if value else None


def resources_dir() -> Path:
    """Data shipped inside the package (sst2-sample)."""
    return Path(__file__).resolve().parent.parent / "resources"


def load_data(cfg: DataConfig, splits: Sequence[str] = SPLITS) -> DatasetBundle:
    """Load a dataset as a DatasetBundle with string labels.

    Args:
        cfg: what to load (`cfg.data`) and how (columns, labels, limits, seed).
        splits: which of train / validation / test to return; only the files these need are
            read (an eval of `test` does not read train when the label set is known).

    Returns:
        The bundle; `splits` holds the requested splits that exist ("test" may be absent).

    Raises:
        DataError: unknown name, missing file/column/split, bad label or tag (one line).

    Example:
        >>> bundle = load_data(DataConfig(data="sst2-sample"))
        >>> bundle.sizes()
        {'train': 5500, 'validation': 500, 'test': 872}
    """
    unknown = [s for s in splits if s not in SPLITS]
    if unknown:
        raise ValueError(f"unknown split(s) {unknown}; choose from {SPLITS}")
    source = resolve_source(cfg)
    try:
        with paused_gc():
            return build_bundle(source, cfg, splits)
    except MissingSplit as missing:
        if source.fallback is None:
            raise
        logger.info("%s; trying the hub", missing)
        hub = source.fallback(str(missing))
        with paused_gc():
            return build_bundle(hub, cfg, splits)


# ---------------------------------------------------------------------------------------------
# resolution


def resolve_source(cfg: DataConfig) -> Source:
    """Find what `cfg.data` names (see the module docstring for the order)."""
    # Where the config meets the data: label settings the asked-for problem type cannot read (`--task token` with
    # `--problem`, `--problem regression` with `--label-columns`, ...) are refused before anything is read.
    family(cfg.task, cfg.problem).refuse_label_settings(cfg.problem, cfg.label_columns, cfg.label_separator)
    name = cfg.data.strip()
    if not name:
        raise DataError(f"no data given: pass --data with a built-in ({', '.join(REGISTRY)}), hf:<id>, a folder or a train file")
    if (cfg.validation_file or cfg.test_file) and not Path(name).expanduser().is_file():
        raise DataError("--validation-file/--test-file go with --data FILE (a train file); a folder or dataset name brings its own splits")
    if name.startswith("hf:"):
        return _hf_source(name[3:], cfg)
    if name in REGISTRY:
        return _builtin_source(REGISTRY[name], cfg)
    path = Path(name).expanduser()
    if path.is_dir():
        return folder_source(path, path.name, cfg)
    if path.is_file():
        return file_source(path, cfg)
    root = data_dir(cfg)
    if root is not None and "/" not in name and (root / name).is_dir():
        return folder_source(root / name, name, cfg)
    if "/" in name or os.sep in name or path.suffix:
        raise DataError(f"{name}: no such file or folder")
    extra = ""
    if root is not None and root.is_dir():
        folders = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name not in REGISTRY)
        extra = f"; folders in {root}: {', '.join(folders) or '(none)'}"
    raise DataError(
        f"unknown dataset {name!r}; built-ins: {', '.join(REGISTRY)}{extra}; or pass a folder, a train file or hf:<id>"
    )


def _split_files(folder: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for split, aliases in SPLIT_ALIASES.items():
        found = [p for alias in aliases for p in sorted(folder.glob(f"{alias}.*")) if p.suffix.lower() in _SUFFIXES]
        if len(found) > 1:
            raise DataError(f"{folder}: several {split} files ({', '.join(p.name for p in found)}); keep one")
        if found:
            files[split] = found[0]
    return files


def folder_source(folder: Path, name: str, cfg: DataConfig, spec: DatasetSpec | None = None) -> Source:
    """A folder with train.* and optional validation.* (or dev.*) and test.*, plus labels.txt."""
    files = _split_files(folder)
    if not files:
        raise DataError(f"{folder}: no train/validation/test file ({' '.join(_SUFFIXES)})")
    if spec is not None and cfg.task is not None and not family(spec.task).is_task(cfg.task):
        raise DataError(f"{spec.name} is a {spec.task} task, not {cfg.task}; drop --task")
    task = spec.task if spec else cfg.task or sniff_task(files.get("train") or next(iter(files.values())), _first(cfg.text_column))
    source = Source(name=name, task=task, where=str(folder))
    settings = read_settings(cfg, spec)
    _label_format(source, settings)
    labels_txt = folder / "labels.txt"
    if labels_txt.is_file():
        source.names = read_label_names(labels_txt)
        source.identity.append(read_text(labels_txt)[1])
    source.order = list(spec.labels) if spec else source.names
    source.order_from = f"the {spec.name} label list" if spec else "labels.txt" if source.names else ""
    for split, path in files.items():
        source.readers[split] = _file_reader(path, task, cfg, settings)
    return source


def file_source(path: Path, cfg: DataConfig) -> Source:
    """`--data FILE` with optional `--validation-file` / `--test-file`."""
    task = cfg.task or sniff_task(path, _first(cfg.text_column))
    source = Source(name=path.stem, task=task, where=str(path))
    settings = read_settings(cfg)
    _label_format(source, settings)
    splits = {"train": path, "validation": cfg.validation_file, "test": cfg.test_file}
    for split, file in splits.items():
        if file:
            source.readers[split] = _file_reader(Path(file).expanduser(), task, cfg, settings)
    return source


def read_settings(cfg: DataConfig, spec: DatasetSpec | None = None) -> dict:
    """How to read a seq source's columns and labels: the text/label settings `_file_reader` and `hub_source` take.

    The flags win over a built-in's own columns; `problem` None means "detect" (a JSON label
    list makes the data multi-label). `--label-column` or `--label-separator` replace a
    built-in's 0/1 label columns.
    """
    spec_columns = spec.label_columns if spec and not (cfg.label_column or cfg.label_separator) else None
    label_columns = cfg.label_columns or (list(spec_columns) if spec_columns else None)
    return {
        "text_columns": cfg.text_column or (list(spec.text_columns) if spec and spec.text_columns else None),
        "label_column": cfg.label_column or (spec.label_column if spec and not label_columns else None),
        "label_columns": label_columns,
        "label_separator": cfg.label_separator,
        "problem": cfg.problem or (spec.problem if spec else None),
    }


def _label_format(source: Source, settings: dict) -> None:
    """Record on the source what was fixed before reading: the problem and the label columns."""
    if settings["label_columns"] and settings["label_separator"]:
        raise ConfigError("--label-columns (one 0/1 column per label) and --label-separator (one column of joined "
                          "names) exclude each other; keep one")
    source.problem = settings["problem"]
    source.label_columns = list(settings["label_columns"]) if settings["label_columns"] else None
    source.label_separator = settings["label_separator"]


def _file_reader(path: Path, task: str, cfg: DataConfig, settings: dict) -> Callable[[], ReadSplit]:
    """The reader of one split file: the task family member of `task` and `settings` (`problem` None: detect) read it."""
    return functools.partial(
        family(task, settings["problem"]).read_file, path, settings["text_columns"], settings["label_column"], cfg.tag_column,
        label_columns=settings["label_columns"], label_separator=settings["label_separator"], detect=settings["problem"] is None,
    )


def _first(columns: list[str] | None) -> str | None:
    return columns[0] if columns else None


def _hf_source(ref: str, cfg: DataConfig) -> Source:
    name, _, config = ref.partition(":")
    try:
        dd = load_hub(name, config or None)
    except HubUnreachable as err:
        raise DataError(
            f"{err}; go online, or pass a local copy: hf:<folder written by save_to_disk or holding parquet/csv/json "
            "split files>, or --data <folder> with train/validation/test files"
        ) from None
    settings = read_settings(cfg)
    task = cfg.task or hub_task(dd, f"hf:{ref}", settings["text_columns"])
    source = hub_source(
        dd, f"hf:{ref}", family(task, settings["problem"]), settings["text_columns"], settings["label_column"],
        label_columns=settings["label_columns"], label_separator=settings["label_separator"], detect=settings["problem"] is None,
    )
    _label_format(source, settings)
    source.name = Path(name).name + (f"_{config}" if config else "")
    return source


def _builtin_source(spec: DatasetSpec, cfg: DataConfig) -> Source:
    if spec.problem is not None and cfg.problem is not None and not family(spec.task, spec.problem).is_problem(cfg.problem):
        raise DataError(f"{spec.name} is a {spec.problem} dataset, not {cfg.problem}; drop --problem")
    if spec.resource:
        source = folder_source(resources_dir() / spec.resource, spec.name, cfg, spec)
    else:
        root = data_dir(cfg)
        local = root / spec.name if root is not None else None
        if local is not None and local.is_dir():
            source = folder_source(local, spec.name, cfg, spec)
            source.fallback = functools.partial(_builtin_hub_source, spec, cfg)
        else:
            why = f"{spec.name}: {local} does not exist" if local is not None else f"{spec.name}: no --data-dir / LSLLM_DATA_DIR given"
            source = _builtin_hub_source(spec, cfg, why)
    source.carve_size = spec.carve_size
    source.notes.extend(spec.notes)
    return source


def _builtin_hub_source(spec: DatasetSpec, cfg: DataConfig, why: str) -> Source:
    """The first hub copy of a built-in that loads; a DataError naming both ways out otherwise."""
    files = family(spec.task, spec.problem).folder_files(spec.name)
    if not spec.hub:
        raise DataError(f"{why}; {spec.name} has no hub copy, it is read from a data folder: pass --data-dir DIR with {files}")
    settings = read_settings(cfg, spec)
    errors = []
    for hub in spec.hub:
        try:
            dd = load_hub(hub.path, hub.config)
        except HubUnreachable as err:
            errors.append(str(err))
            break  # offline: the other copies are unreachable too (and each try can cost ~25 s of retries)
        except DataError as err:
            errors.append(str(err))
            continue
        ref = f"hf:{hub.path}" + (f":{hub.config}" if hub.config else "")
        source = hub_source(
            dd, ref, family(spec.task, settings["problem"]), cfg.text_column or hub.text_columns, cfg.label_column or hub.label_column,
            hub.label_names, label_columns=settings["label_columns"], label_separator=settings["label_separator"],
            detect=settings["problem"] is None,
        )
        _label_format(source, settings)
        source.name, source.order, source.order_from = spec.name, list(spec.labels), f"the {spec.name} label list"
        return source
    raise DataError(f"{why}, and the hub failed ({errors[0] if errors else 'no hub copy known'}); pass --data-dir DIR with {files}, "
                    "or go online")


# ---------------------------------------------------------------------------------------------
# building the bundle


def build_bundle(source: Source, cfg: DataConfig, splits: Sequence[str] = SPLITS) -> DatasetBundle:
    """Read the splits `splits` needs from `source`, map and check labels, carve, limit."""
    if source.task is None:
        raise DataError(f"{source.name}: cannot tell seq from token task; pass --task")
    has_val, has_test = "validation" in source.readers, "test" in source.readers
    carve = not (has_val and has_test)
    test_from = "test" if has_test else "validation" if has_val else None
    problem = family(source.task, source.problem)  # the one asked for (None: single-label until the labels say)
    problem.refuse_label_settings(source.problem, source.label_columns, source.label_separator, data=source.name)
    read = _read_needed(source, cfg, splits, carve, test_from, problem)
    problem = problem.detected(read, source)
    labels, scheme, label_notes = problem.label_set(read, source, cfg)
    notes = list(source.notes) + label_notes
    out: dict[str, ReadSplit] = {}
    carved = 0
    if "train" in read:
        out["train"] = read["train"]
        if carve:
            official = read.get("validation")
            n = len(out["train"].examples)
            carved = source.carve_size or (len(official.examples) if official else max(1, round(n * CARVE_FRACTION)))
            out["train"], out["validation"], how = carving.carve(out["train"], carved, cfg.split_seed, cfg.carve)
            if official is not None:
                notes.append(
                    f"no labelled test split: the official validation ({official.origin}, {len(official.examples)} examples) "
                    f"is reported as test; validation carved from train (seed {cfg.split_seed}, {carved} examples)"
                )
            else:
                notes.append(f"no validation split: validation carved from train (seed {cfg.split_seed}, {carved} of {n} examples)")
            if how:
                notes.append(how)
    if not carve and "validation" in read:
        out["validation"] = read["validation"]
    if "test" in splits and test_from in read:
        out["test"] = read[test_from]
        if test_from == "validation" and "train" not in read:
            notes.append(f"no labelled test split: the official validation ({read['validation'].origin}) is reported as test")
    final: dict[str, list] = {}
    for split in (s for s in splits if s in out):
        examples = out[split].examples
        if split == "train" and cfg.train_per_class is not None:  # N of each label, before any shuffle or limit
            seed = cfg.subset_seed if cfg.subset_seed is not None else cfg.split_seed
            examples, note = problem.per_class(examples, cfg.train_per_class, seed)
            notes.append(note)
        if split == "train" and cfg.subset_seed is not None:  # a seeded subset, the same for every method
            examples = list(examples)
            random.Random(cfg.subset_seed).shuffle(examples)
            notes.append(f"train shuffled with seed {cfg.subset_seed} before the limit")
        limit = cfg.train_limit if split == "train" else cfg.eval_limit
        if limit is not None and limit < len(examples):
            notes.append(f"{split} limited to the first {limit} of {len(examples)} examples")
            examples = examples[:limit]
        final[split] = examples
    fingerprint = _fingerprint(source, cfg, source.task, labels, read, carved, problem.saved_problem)
    return DatasetBundle(source.name, source.task, labels, final, notes, scheme, fingerprint, problem.saved_problem)


def _read_needed(
    source: Source, cfg: DataConfig, splits: Sequence[str], carve: bool, test_from: str | None, problem: Any
) -> dict[str, ReadSplit]:
    """Read the official splits the request needs, and only those.

    Train is needed to return it, to carve validation from it, or to infer the label set; the
    official validation when returned as such, reported as test, or sizing a carve.
    """
    need: set[str] = set()
    if "train" in splits or ("validation" in splits and carve) or not problem.labels_known(source, cfg):
        need.add("train")
    if "validation" in source.readers and ((carve and "train" in need) or (not carve and "validation" in splits)):
        need.add("validation")
    if "test" in splits and test_from is not None:
        need.add(test_from)
    for split in sorted(need):
        if split not in source.readers:
            have = ", ".join(source.readers) or "none"
            raise MissingSplit(f"{source.name}: {source.where or source.name} has no {split} split (has: {have})")
    read: dict[str, ReadSplit] = {}
    for split in (s for s in SPLITS if s in need):
        read[split] = source.readers[split]()
        if not read[split].examples:
            raise DataError(f"{read[split].origin}: no examples")
    return read


def _fingerprint(source: Source, cfg: DataConfig, task: str, labels: list[str], read: dict[str, ReadSplit], carved: int,
                 problem: str | None = "single-label") -> str:
    """Hash of everything that shapes the examples: contents, label set, settings, reader version."""
    payload = {
        "reader_version": READER_VERSION,
        "name": source.name,
        "task": task,
        "identity": source.identity,  # hub ids, labels.txt digest: file contents are in "content"
        "content": {split: rs.digest for split, rs in read.items()},
        "labels": labels,
        "problem": problem,
        "settings": {
            "label_columns": source.label_columns, "label_separator": source.label_separator,
            "text_column": cfg.text_column, "label_column": cfg.label_column, "tag_column": cfg.tag_column,
            "train_limit": cfg.train_limit, "eval_limit": cfg.eval_limit, "split_seed": cfg.split_seed, "carved": carved,
            **({"subset_seed": cfg.subset_seed} if cfg.subset_seed is not None else {}),
            **({"train_per_class": cfg.train_per_class} if cfg.train_per_class is not None else {}),
            **({"carve": cfg.carve} if cfg.carve != "random" else {}),
        },
    }  # fmt: skip
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]
