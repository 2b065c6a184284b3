"""`Source`: what a resolved `--data` value offers before splits are carved and checked.

Resolution (registry, data dir, files, hub) produces a Source; `loading.build_bundle` turns any
Source into a DatasetBundle with one set of rules, so built-ins, folders, files and hub data
are carved, limited and validated the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from lsllm.data.readers import ReadSplit

SPLITS = ("train", "validation", "test")
# File stems / hub split names accepted for each of our splits, in order of preference.
SPLIT_ALIASES = {"train": ("train",), "validation": ("validation", "dev", "valid", "val"), "test": ("test",)}


@dataclass
class Source:
    """Official splits of one dataset, read lazily, plus what is known about its labels.

    Attributes:
        name: the bundle's name.
        task: "seq" / "token", or None to infer from the train file.
        readers: official split name -> function reading it (only splits that exist).
        names: label names in id order, to map integer labels (labels.txt, ClassLabel, spec).
        order: the label order to use (seq: names; token: entity types), when known.
        notes: facts to report (e.g. an unlabelled hub split that was dropped).
        identity: strings that identify the source beyond split contents (hub ids, labels.txt).
        carve_size: validation slice to carve when there is no usable validation split.
        fallback: another way to get the data when a needed split is missing (the hub for a
            built-in whose data-dir folder is incomplete).
        where: the folder or file, for messages about missing splits.
        problem: seq: the problem type fixed before reading (`--problem`, or a built-in's), None
            to detect it from the labels read.
        label_columns: multi-label: the 0/1 label columns read (`--label-columns` or a
            built-in's); they name the labels, in id order.
        label_separator: multi-label: the separator of a joined label column.
        order_from: what fixed `order`, for notes ("labels.txt", "the hub's ClassLabel", ...).
    """

    name: str
    task: str | None
    readers: dict[str, Callable[[], ReadSplit]] = field(default_factory=dict)
    names: list[str] | None = None
    order: list[str] | None = None
    notes: list[str] = field(default_factory=list)
    identity: list[str] = field(default_factory=list)
    carve_size: int | None = None
    fallback: Callable[[str], Source] | None = None
    where: str = ""
    problem: str | None = None
    label_columns: list[str] | None = None
    label_separator: str | None = None
    order_from: str = ""
