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
`train_limit` / `eval_limit` then keep the first N examples.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import random
import re
from collections.abc import Sequence
from itertools import chain
from pathlib import Path

from lsllm.config import DataConfig
from lsllm.data.examples import DatasetBundle
from lsllm.data.hub import HubUnreachable, hub_source, load_hub
from lsllm.data.readers import (
    CONLL_SUFFIXES,
    JSONL_SUFFIXES,
    TABLE_SUFFIXES,
    ReadSplit,
    paused_gc,
    read_file,
    read_label_names,
    read_text,
    sniff_task,
)
from lsllm.data.registry import REGISTRY, DatasetSpec
from lsllm.data.schemes import bio_labels, entity_types, scan_scheme, split_tag, to_bio
from lsllm.data.source import SPLIT_ALIASES, SPLITS, Source
from lsllm.errors import DataError

logger = logging.getLogger(__name__)

READER_VERSION = 1  # bump when reading/conversion changes what examples a file yields
CARVE_FRACTION = 0.1
_INT = re.compile(r"-?\d+")
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
    if spec is not None and cfg.task is not None and cfg.task != spec.task:
        raise DataError(f"{spec.name} is a {spec.task} task, not {cfg.task}; drop --task")
    task = spec.task if spec else cfg.task or sniff_task(files.get("train") or next(iter(files.values())), _first(cfg.text_column))
    source = Source(name=name, task=task, where=str(folder))
    labels_txt = folder / "labels.txt"
    if labels_txt.is_file():
        source.names = read_label_names(labels_txt)
        source.identity.append(read_text(labels_txt)[1])
    source.order = list(spec.labels) if spec else source.names
    for split, path in files.items():
        source.readers[split] = functools.partial(read_file, path, task, cfg.text_column, cfg.label_column, cfg.tag_column)
    return source


def file_source(path: Path, cfg: DataConfig) -> Source:
    """`--data FILE` with optional `--validation-file` / `--test-file`."""
    task = cfg.task or sniff_task(path, _first(cfg.text_column))
    source = Source(name=path.stem, task=task, where=str(path))
    splits = {"train": path, "validation": cfg.validation_file, "test": cfg.test_file}
    for split, file in splits.items():
        if file:
            source.readers[split] = functools.partial(
                read_file, Path(file).expanduser(), task, cfg.text_column, cfg.label_column, cfg.tag_column
            )
    return source


def _first(columns: list[str] | None) -> str | None:
    return columns[0] if columns else None


def _hf_source(ref: str, cfg: DataConfig) -> Source:
    name, _, config = ref.partition(":")
    dd = load_hub(name, config or None)
    source = hub_source(dd, f"hf:{ref}", cfg.task, cfg.text_column, cfg.label_column)
    source.name = Path(name).name + (f"_{config}" if config else "")
    return source


def _builtin_source(spec: DatasetSpec, cfg: DataConfig) -> Source:
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
            dd, ref, spec.task, cfg.text_column or hub.text_columns, cfg.label_column or hub.label_column, hub.label_names
        )
        source.name, source.order = spec.name, list(spec.labels)
        return source
    ext = "tsv" if spec.task == "seq" else "txt"
    raise DataError(
        f"{why}, and the hub failed ({errors[0] if errors else 'no hub copy known'}); "
        f"pass --data-dir DIR with {spec.name}/train.{ext} (and validation/test.{ext}"
        f"{', labels.txt' if spec.task == 'seq' else ''}), or go online"
    )


# ---------------------------------------------------------------------------------------------
# building the bundle


def build_bundle(source: Source, cfg: DataConfig, splits: Sequence[str] = SPLITS) -> DatasetBundle:
    """Read the splits `splits` needs from `source`, map and check labels, carve, limit."""
    task = source.task
    has_val, has_test = "validation" in source.readers, "test" in source.readers
    carve = not (has_val and has_test)
    test_from = "test" if has_test else "validation" if has_val else None
    explicit = _explicit_labels(source, cfg)
    need: set[str] = set()
    if "train" in splits or ("validation" in splits and carve) or explicit is None:
        need.add("train")
    if carve and has_val and ("train" in need or "test" in splits):
        need.add("validation")  # reported as test; its size is the carve size
    if "validation" in splits and not carve:
        need.add("validation")
    if "test" in splits and test_from is not None:
        need.add(test_from)
    for split in sorted(need):
        if split not in source.readers:
            have = ", ".join(source.readers) or "none"
            raise MissingSplit(f"{source.name}: {source.where or source.name} has no {split} split (has: {have})")
    read: dict[str, ReadSplit] = {}
    for split in SPLITS:
        if split in need:
            read[split] = source.readers[split]()
            if not read[split].examples:
                raise DataError(f"{read[split].origin}: no examples")
    notes = list(source.notes)
    if task is None:  # only when nothing could say it; files always can
        raise DataError(f"{source.name}: cannot tell seq from token task; pass --task")
    if task == "seq":
        labels = _seq_labels(read, source, cfg)
        scheme = None
    else:
        labels, scheme, scheme_notes = _token_labels(read, source, cfg)
        notes.extend(scheme_notes)
    out: dict[str, ReadSplit] = {}
    carved = 0
    if "train" in read:
        train = read["train"]
        if carve:
            n = len(train.examples)
            official = read.get("validation")
            carved = source.carve_size or (len(official.examples) if official and not has_test else max(1, round(n * CARVE_FRACTION)))
            if carved >= n:
                raise DataError(
                    f"{train.origin}: {n} training examples are too few to carve a validation split of {carved}; add a validation file"
                )
            chosen = sorted(random.Random(cfg.split_seed).sample(range(n), carved))
            chosen_set = set(chosen)
            out["validation"] = train.subset(chosen)
            train = train.subset([i for i in range(n) if i not in chosen_set])
            if has_val and not has_test:
                notes.append(
                    f"no labelled test split: the official validation ({official.origin}, {len(official.examples)} examples) "
                    f"is reported as test; validation carved from train (seed {cfg.split_seed}, {carved} examples)"
                )
            else:
                notes.append(f"no validation split: validation carved from train (seed {cfg.split_seed}, {carved} of {n} examples)")
        out["train"] = train
    if not carve and "validation" in read:
        out["validation"] = read["validation"]
    if test_from is not None and test_from in read and "test" in splits:
        out["test"] = read[test_from]
        if test_from == "validation" and "train" not in read:
            notes.append(f"no labelled test split: the official validation ({read['validation'].origin}) is reported as test")
    final: dict[str, list] = {}
    for split in splits:
        if split not in out:
            continue
        examples = out[split].examples
        limit = cfg.train_limit if split == "train" else cfg.eval_limit
        if limit is not None and limit < len(examples):
            examples = examples[:limit]
            notes.append(f"{split} limited to the first {limit} of {len(out[split].examples)} examples")
        final[split] = examples
    fingerprint = _fingerprint(source, cfg, task, labels, read, carved)
    return DatasetBundle(source.name, task, labels, final, notes, scheme, fingerprint)


def _explicit_labels(source: Source, cfg: DataConfig) -> list[str] | None:
    if cfg.labels:
        return list(cfg.labels)
    return list(source.order) if source.order else None


def _label_sort_key(label: str) -> tuple:
    return (0, int(label), "") if _INT.fullmatch(label) else (1, 0, label)


def _map_int(value: str, names: list[str] | None, known: set[str]) -> str:
    if value in known or names is None or not _INT.fullmatch(value):
        return value
    index = int(value)
    return names[index] if 0 <= index < len(names) else value


def _seq_labels(read: dict[str, ReadSplit], source: Source, cfg: DataConfig) -> list[str]:
    names = list(cfg.labels) if cfg.labels else source.names or source.order
    known = set(names or ())
    for rs in read.values():
        for ex in rs.examples:
            ex.label = _map_int(ex.label, names, known)
    labels = _explicit_labels(source, cfg)
    if labels is None:
        labels = sorted({ex.label for ex in read["train"].examples}, key=_label_sort_key)
    allowed = set(labels)
    for rs in read.values():
        for i, ex in enumerate(rs.examples):
            if ex.label not in allowed:
                raise DataError(
                    f"{rs.where(i)}: label {ex.label!r} is not in the label set ({', '.join(labels)}); "
                    "fix the file, or pass --labels with the full set"
                )
    return labels


def _types_from(labels: Sequence[str]) -> list[str]:
    """Entity types from a label list that is either BIO-style tags or bare type names."""
    tags = [x for x in labels if x == "O" or (len(x) > 2 and x[1] == "-" and x[0] in "BIESLU")]
    return entity_types([list(labels)]) if tags and len(tags) == len(labels) else list(labels)


def _locate(read: dict[str, ReadSplit], bad: set[str]) -> tuple[str, str]:
    """(`file:line`, tag) of the first tag in `bad`, in file order (only on the error path)."""
    for rs in read.values():
        for i, ex in enumerate(rs.examples):
            for j, tag in enumerate(ex.tags):
                if tag in bad:
                    return rs.where(i, j), tag
    return "?", sorted(bad)[0]


def _token_labels(read: dict[str, ReadSplit], source: Source, cfg: DataConfig) -> tuple[list[str], str, list[str]]:
    """Map integer tags, check and convert the scheme, fix the tag set; (labels, scheme, notes).

    Works on the set of distinct tags and rewrites sentences only when something changes, so
    OntoNotes' 1.4M tags cost a fraction of a second.
    """
    names = list(cfg.labels) if cfg.labels and "O" in cfg.labels else source.names
    known = set(names or ())
    distinct = set(chain.from_iterable(ex.tags for rs in read.values() for ex in rs.examples))
    mapping = {tag: _map_int(tag, names, known) for tag in distinct}
    invalid = set()
    for tag, mapped in mapping.items():
        try:
            split_tag(mapped)
        except ValueError:
            invalid.add(tag)
    if invalid:
        where, tag = _locate(read, invalid)
        raise DataError(
            f"{where}: bad tag {tag!r}: expected O or B-/I-/E-/S-<type>; fix the file or pick the tag column with --tag-column"
        )
    if any(tag != mapped for tag, mapped in mapping.items()):
        for rs in read.values():
            for ex in rs.examples:
                ex.tags = [mapping[t] for t in ex.tags]
    scan = scan_scheme(ex.tags for rs in read.values() for ex in rs.examples)
    notes = []
    if scan.needs_conversion:
        for rs in read.values():
            for ex in rs.examples:
                ex.tags = to_bio(ex.tags)
        if scan.scheme != "BIO":
            notes.append(f"tags converted from {scan.scheme} to BIO")
        else:
            notes.append(f"{scan.i_starts} entities began with I- (ill-formed BIO): read as B-, as seqeval does")
    explicit = _explicit_labels(source, cfg)
    if explicit is not None:
        types = _types_from(explicit)
    else:
        types = sorted(entity_types(ex.tags for ex in read["train"].examples))
    labels = bio_labels(types)
    unknown = set(chain.from_iterable(ex.tags for rs in read.values() for ex in rs.examples)) - set(labels)
    if unknown:
        where, tag = _locate(read, unknown)
        raise DataError(
            f"{where}: label {tag!r} is not in the label set ({', '.join(labels)}); "
            "fix the file, or pass --labels with the full set"
        )
    return labels, scan.scheme, notes


def _fingerprint(source: Source, cfg: DataConfig, task: str, labels: list[str], read: dict[str, ReadSplit], carved: int) -> str:
    """Hash of everything that shapes the examples: contents, label set, settings, reader version."""
    payload = {
        "reader_version": READER_VERSION,
        "name": source.name,
        "task": task,
        "identity": source.identity,  # hub ids, labels.txt digest: file contents are in "content"
        "content": {split: rs.digest for split, rs in read.items()},
        "labels": labels,
        "settings": {
            "text_column": cfg.text_column, "label_column": cfg.label_column, "tag_column": cfg.tag_column,
            "train_limit": cfg.train_limit, "eval_limit": cfg.eval_limit, "split_seed": cfg.split_seed, "carved": carved,
        },
    }  # fmt: skip
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]
