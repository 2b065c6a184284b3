"""Hugging Face hub datasets (`hf:<name>[:<config>]` and built-ins' hub copies) as a `Source`.

`datasets` is imported lazily: offline runs on local files never pay for it. A name that is a
local folder written by `save_to_disk` is read with `load_from_disk`; any other name goes to
`load_dataset`, which also accepts local folders of parquet/CSV/JSON files.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lsllm.data.examples import SeqExample, TokenExample
from lsllm.data.readers import (
    LABEL_COLUMNS,
    TAG_KEYS,
    TEXT_COLUMNS,
    TOKEN_KEYS,
    LabelFormat,
    ReadSplit,
    field_names,
    flag_value,
    pick_column,
    seq_label,
    seq_text,
)
from lsllm.data.source import SPLIT_ALIASES, Source
from lsllm.errors import DataError

logger = logging.getLogger(__name__)


class HubUnreachable(DataError):
    """The hub could not be contacted (offline mode or no network): other ids would fail too."""


def load_hub(name: str, config: str | None = None) -> Any:
    """Load a hub dataset (or a local `save_to_disk` / data-file folder) as a DatasetDict.

    Raises:
        DataError: the dataset cannot be loaded (offline, unknown id, bad folder); one line.
    """
    import datasets

    path = Path(name).expanduser()
    try:
        if path.is_dir() and ((path / "dataset_dict.json").exists() or (path / "state.json").exists()):
            loaded = datasets.load_from_disk(str(path))
        else:
            loaded = datasets.load_dataset(name, config)
    except Exception as err:  # datasets raises many types (ConnectionError, FileNotFoundError, ValueError, ...)
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        error = HubUnreachable if isinstance(err, ConnectionError) else DataError
        raise error(f"hf:{name}{':' + config if config else ''}: could not load ({type(err).__name__}: {first})") from None
    if isinstance(loaded, datasets.Dataset):
        loaded = datasets.DatasetDict({"train": loaded})
    return loaded


def _inner(feature: Any) -> Any:
    """The element feature of a list feature (`List` / `Sequence` / `LargeList`), else None."""
    return getattr(feature, "feature", None)


def _class_names(feature: Any) -> list[str] | None:
    names = getattr(feature, "names", None)
    return list(names) if names else None


def _unlabelled(values: list) -> bool:
    """GLUE-style hidden test labels: every label is -1 or None (token tasks: every tag list;
    STS-B's hidden scores are -1.0). A split whose label lists are all empty is labelled: a
    multi-label example may have no label."""
    if not values:
        return True
    flat = [v for seq in values for v in seq] if isinstance(values[0], list) else values
    if not flat:
        return False
    return all(v is None or (not isinstance(v, bool) and v == -1) for v in flat)


def _our_splits(dd: Any, ref: str) -> dict[str, str]:
    """Our split name -> the dataset's (the first alias present); train is required."""
    ours: dict[str, str] = {}
    for split, aliases in SPLIT_ALIASES.items():
        for alias in aliases:
            if alias in dd:
                ours[split] = alias
                break
    if "train" not in ours:
        raise DataError(f"{ref}: no train split (has {', '.join(dd)}); lsllm needs one to train on")
    return ours


def hub_task(dd: Any, ref: str, text_columns: Sequence[str] | None = None) -> str:
    """"seq" or "token", from the train split's text column: a list feature (word lists) makes a token task."""
    first = dd[_our_splits(dd, ref)["train"]]
    columns = list(first.column_names)
    candidate = text_columns[0] if text_columns else next((c for c in TOKEN_KEYS + TEXT_COLUMNS if c in columns), None)
    return "token" if candidate in columns and _inner(first.features[candidate]) is not None else "seq"


@dataclass
class HubReading:
    """How a hub dataset's splits are read for a problem type (`Problem.hub_reading`).

    Attributes:
        texts: the text column(s) (seq; several are kept apart as fields) or the word-list column (token).
        label_columns: the label column, the 0/1 label columns (`--label-columns`), or the tag-list column.
        names: the names of integer labels (a ClassLabel's), when the dataset has them.
        rows: (split, origin, the label columns' values) -> (examples, their rows, the label column read).
    """

    texts: list[str]
    label_columns: list[str]
    names: list[str] | None
    rows: Callable[[Any, str, list[list]], tuple[list, list[int], str | None]]


def hub_source(
    dd: Any,
    ref: str,
    problem: Any,
    text_columns: Sequence[str] | None = None,
    label_column: str | None = None,
    label_names: Sequence[str] | None = None,
    *,
    label_columns: Sequence[str] | None = None,
    label_separator: str | None = None,
    detect: bool = False,
) -> Source:
    """Turn a DatasetDict into a `Source` with our split names and string labels.

    Args:
        dd: the DatasetDict.
        ref: how messages name it, e.g. "hf:glue:sst2".
        problem: the task family member (`lsllm.problems.family(task, problem)`; the task from
            `hub_task` when not given), which says how the columns are read (`Problem.hub_reading`).
        text_columns: text field(s) (seq; several are kept apart as `fields`) or the token-list
            field (token); defaults as for files.
        label_column: label or tag-list field; defaults as for files.
        label_names: names of integer labels when the column is not a ClassLabel.
        label_columns / label_separator / detect: how seq labels are held (see
            `readers.LabelFormat`; ``detect``: no problem type asked for); a list-valued label
            column (e.g. a list of ClassLabel ids) is multi-label.
    """
    ours = _our_splits(dd, ref)
    reading = problem.hub_reading(dd[ours["train"]], ref, text_columns, label_column, label_columns, label_separator, detect)
    names = reading.names or (list(label_names) if label_names else None)
    source = Source(name=ref, task=problem.task, names=names, order=names, identity=[ref])
    for split, theirs in ours.items():
        ds = dd[theirs]
        missing = [c for c in reading.texts + reading.label_columns if c not in ds.column_names]
        if missing:
            raise DataError(f"{ref}/{theirs}: no column {missing[0]!r}; columns present: {', '.join(ds.column_names)}")
        labels = [list(ds[c]) for c in reading.label_columns]
        if all(_unlabelled(values) for values in labels):
            source.notes.append(f"{ref} split {theirs!r} has no labels (all -1): not used")
            continue
        source.readers[split] = _reader(ds, f"{ref}/{theirs}", labels, reading)
    return source


def seq_reading(first: Any, ref: str, text_columns: Sequence[str] | None, label_column: str | None,
                fmt: LabelFormat) -> HubReading:
    """A sequence task's columns: text column(s), and one label column or the 0/1 label columns."""
    columns = list(first.column_names)
    texts = [pick_column(columns, c, TEXT_COLUMNS, "text", "--text-column", ref) for c in (text_columns or [None])]
    field_names(texts)
    if fmt.columns:
        missing = [c for c in fmt.columns if c not in columns]
        if missing:
            raise DataError(f"{ref}: no label column {missing[0]!r} (--label-columns); columns present: "
                            f"{', '.join(columns)}; name the dataset's 0/1 label columns")
        label_cols = list(fmt.columns)
        names = None
    else:
        label_cols = [pick_column(columns, label_column, LABEL_COLUMNS, "label", "--label-column", ref)]
        feature = first.features[label_cols[0]]
        names = _class_names(feature) or _class_names(_inner(feature))
    return HubReading(texts, label_cols, names, functools.partial(_seq_rows, texts=texts, label_cols=label_cols, fmt=fmt))


def token_reading(first: Any, ref: str, text_columns: Sequence[str] | None, label_column: str | None) -> HubReading:
    """A token task's columns: the word-list column and the tag-list column (ClassLabel ids named)."""
    columns = list(first.column_names)
    texts = [pick_column(columns, text_columns[0] if text_columns else None, TOKEN_KEYS, "tokens", "--text-column", ref)]
    label_cols = [pick_column(columns, label_column, TAG_KEYS, "tags", "--label-column", ref)]
    return HubReading(texts, label_cols, _class_names(_inner(first.features[label_cols[0]])),
                      functools.partial(_token_rows, texts=texts))


def _seq_rows(ds: Any, origin: str, labels: list[list], texts: list[str], label_cols: list[str],
              fmt: LabelFormat) -> tuple[list, list[int], str | None]:
    examples: list = []
    rows: list[int] = []
    columns = [list(ds[c]) for c in texts]
    for row, parts in enumerate(zip(*columns, strict=True), 1):
        where = f"{origin} row {row}"
        values = ["" if p is None else str(p) for p in parts]
        text, fields = seq_text(values, texts, where, "filter the row out of the dataset, or pick another --text-column")
        if fmt.columns:
            label = [c for c, values in zip(label_cols, labels, strict=True) if flag_value(values[row - 1], c, where)]
        else:
            value = labels[0][row - 1]
            if value is None:
                raise DataError(f"{where}: no label; every training/evaluation row needs one")
            label = seq_label(value, fmt, where)
        examples.append(SeqExample(text, label, fields))
        rows.append(row)
    return examples, rows, None if fmt.columns else label_cols[0]


def _token_rows(ds: Any, origin: str, labels: list[list], texts: list[str]) -> tuple[list, list[int], str | None]:
    examples: list = []
    rows: list[int] = []
    for row, (tokens, tags) in enumerate(zip(ds[texts[0]], labels[0], strict=True), 1):
        if len(tokens) != len(tags):
            raise DataError(f"{origin} row {row}: {len(tokens)} tokens but {len(tags)} tags")
        if not tokens:
            continue  # some hub copies keep empty sentences; there is nothing to tag
        examples.append(TokenExample([str(t) for t in tokens], [str(t) for t in tags]))
        rows.append(row)
    return examples, rows, None


def _reader(ds: Any, origin: str, labels: list[list], reading: HubReading) -> Callable[[], ReadSplit]:
    def read() -> ReadSplit:
        examples, rows, label_column = reading.rows(ds, origin, labels)
        return ReadSplit(examples, origin, rows, ds._fingerprint, line_prefix=" row ", label_column=label_column)

    return read
