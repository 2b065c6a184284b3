"""Label sets: map integer labels to names, check every label, fix the id order.

Seq: `--labels` > labels.txt / ClassLabel / spec > sorted train labels (numbers numerically).
Token: tags are validated, the scheme detected and converted to BIO, and the label list is
"O" then B-/I- of each entity type (types from `--labels`, the source, or sorted train types).
Work is done on the set of distinct labels; sentences are rewritten only when a tag changes.

Without an explicit label set, train defines it, so a typo ("positve") would silently become a
class: a label of validation/test that train lacks is an error, and a train label (entity type)
seen once while the median one is seen at least RARE_MEDIAN times is a loud warning. Both name
the file:line and `--labels`, which makes any label outside the given set an error. So is a
train label (entity type) that holds an invisible character ("B-PER\u200b") or differs from
another only by case or invisible characters ("Positive" / "positive").

Seq problem types (`seq_problem`): `--problem` or a built-in's wins; else `--label-columns`,
`--label-separator` or a JSON label list make the data multi-label; else it is single-label.
Regression is never guessed. Multi-label: each label is a list of names, the label set is
`--labels`, else the label columns, else labels.txt / the spec, else the sorted union of the
train labels. Regression: each label is a number and the label list is one name, the label
column's. The task family member picks which of these applies (`Problem.label_set`, `Problem.detected`);
the functions here get the member's data and never import lsllm.problems (it imports them).
"""

from __future__ import annotations

import json
import logging
import re
import statistics
from collections import Counter
from collections.abc import Sequence
from itertools import chain

from lsllm.config import DataConfig
from lsllm.data.readers import ReadSplit
from lsllm.data.schemes import bio_labels, entity_types, scan_scheme, split_tag, to_bio
from lsllm.data.source import Source
from lsllm.data.text import escaped, invisible_characters, label_key
from lsllm.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

_INT = re.compile(r"-?\d{1,18}")  # a class id; longer digit strings are names (int() of 5000 digits raises)
RARE_MEDIAN = 20  # warn about labels seen < RARE_BELOW times when the median label is seen this often
RARE_BELOW = 2


def explicit_labels(source: Source, cfg: DataConfig) -> list[str] | None:
    """The label order fixed before reading data (`--labels`, else the label columns, else the
    source's), or None."""
    if cfg.labels:
        return list(cfg.labels)
    if source.label_columns:
        return list(source.label_columns)
    return list(source.order) if source.order else None


def seq_problem(read: dict[str, ReadSplit], source: Source) -> str:
    """The problem type: fixed before reading (`--problem`, a built-in's), else multi-label when
    the labels are lists (label columns, a separator, JSON lists), else single-label."""
    if source.problem is not None:
        return source.problem
    if source.label_columns or source.label_separator:
        return "multi-label"
    lists = [(rs, i) for rs in read.values() for i, ex in enumerate(rs.examples) if isinstance(ex.label, list)]
    if not lists:
        return "single-label"
    names = sum(isinstance(ex.label, str) for rs in read.values() for ex in rs.examples)
    if len(lists) < names:  # a stray list in a file of names is a mistake, not a multi-label file
        rs, i = lists[0]
        raise DataError(f"{rs.where(i)}: label is a list ({json.dumps(rs.examples[i].label)[:40]}) where {names} other "
                        "rows hold one name; write it as one name, or pass --problem multi-label to read every label "
                        "as a list (one name = a list of one)")
    return "multi-label"


def _label_sort_key(label: str) -> tuple:
    return (0, int(label), "") if _INT.fullmatch(label) else (1, 0, label)


def _map_int(value: str, names: list[str] | None, known: set[str]) -> str:
    """An integer label -> its name; names themselves (even "0") and unknowns pass through."""
    if value in known or names is None or not _INT.fullmatch(value):
        return value
    index = int(value)
    return names[index] if 0 <= index < len(names) else value


def single_label_set(read: dict[str, ReadSplit], source: Source, cfg: DataConfig) -> list[str]:
    """One name per example: integer ids mapped, the label list fixed (see the module docstring), every label checked."""
    names = list(cfg.labels) if cfg.labels else source.names or source.order
    known = set(names or ())
    for rs in read.values():
        for ex in rs.examples:
            ex.label = _map_int(ex.label, names, known)
    labels = explicit_labels(source, cfg)
    derived = labels is None
    if derived:
        train = read["train"]
        counts = Counter(ex.label for ex in train.examples)
        labels = sorted(counts, key=_label_sort_key)
        def where(label: str) -> str:
            return train.where(next(i for i, ex in enumerate(train.examples) if ex.label == label))

        _warn_rare(counts, where, "label")
        _warn_lookalikes(labels, where, "label")
    allowed = set(labels)
    for rs in read.values():
        for i, ex in enumerate(rs.examples):
            if ex.label not in allowed:
                raise DataError(f"{rs.where(i)}: label {ex.label!r} is not in the label set ({', '.join(labels)}); "
                                + _fix(read["train"].origin if derived else None))
    return labels


def multi_label_set(read: dict[str, ReadSplit], source: Source, cfg: DataConfig) -> tuple[list[str], list[str]]:
    """Lists of names: integer ids mapped, the label set fixed (see the module docstring), checked."""
    if cfg.labels and source.label_columns and set(cfg.labels) != set(source.label_columns):
        raise DataError(f"--labels ({', '.join(cfg.labels)}) and the label columns ({', '.join(source.label_columns)}) "
                        "name different labels; give --labels the same names (in the id order you want), or drop it")
    names = list(cfg.labels) if cfg.labels else source.names or source.order
    known = set(names or ())
    for rs in read.values():
        for ex in rs.examples:
            values = ex.label if isinstance(ex.label, list) else [ex.label]  # a name among lists: one label
            ex.label = list(dict.fromkeys(_map_int(v, names, known) for v in values))
    labels = explicit_labels(source, cfg)
    derived = labels is None
    train = read.get("train")
    if derived:
        counts = Counter(chain.from_iterable(ex.label for ex in train.examples))
        if not counts:
            raise DataError(f"{train.origin}: no train example has a label, so there is no label set; "
                            "fix the file, or pass --labels with the full set")
        labels = sorted(counts, key=_label_sort_key)
        def where(label: str) -> str:
            return train.where(next(i for i, ex in enumerate(train.examples) if label in ex.label))

        _warn_rare(counts, where, "label")
        _warn_lookalikes(labels, where, "label")
    allowed = set(labels)
    for rs in read.values():
        for i, ex in enumerate(rs.examples):
            bad = next((x for x in ex.label if x not in allowed), None)
            if bad is not None:
                raise DataError(f"{rs.where(i)}: label {bad!r} is not in the label set ({', '.join(labels)}); "
                                + _fix(train.origin if derived else None))
    origin = ("--labels" if cfg.labels else "--label-columns" if cfg.label_columns
              else f"the label columns of {source.name}" if source.label_columns
              else source.order_from or "the dataset's label list" if not derived else "the train labels")
    note = f"multi-label: {len(labels)} labels from {origin}"
    if train is not None:
        n = len(train.examples)
        none = sum(1 for ex in train.examples if not ex.label)
        note += f"; {none:,} of {n:,} train examples have none"
        if none == 0 and all(len(ex.label) == 1 for ex in train.examples):
            note += ", every one has exactly one (single-label data read as multi-label)"
    return labels, [note]


def regression_label_set(read: dict[str, ReadSplit], source: Source, cfg: DataConfig) -> tuple[list[str], list[str]]:
    """Numbers (the readers checked them): the label list is the label column's name."""
    if cfg.labels:
        raise ConfigError(f"--labels ({', '.join(cfg.labels)}) names classes, but --problem regression predicts a number; "
                          "drop --labels")
    column = next((rs.label_column for rs in read.values() if rs.label_column), None)
    column = column or (source.order[0] if source.order and len(source.order) == 1 else "label")
    if source.names and source.names != source.order:
        logger.info("%s: labels.txt names classes; a regression's labels are numbers, so it is not used", source.name)
    note = f"regression: predicting {column!r}, a number"
    train = read.get("train")
    if train is not None:
        values = [float(ex.label) for ex in train.examples]
        note += (f" (train: {len(values):,} values from {min(values):g} to {max(values):g}, "
                 f"mean {statistics.fmean(values):.3g})")
    return [column], [note]


def _fix(train_origin: str | None) -> str:
    """The fix for a label outside the set: the set came from train (`train_origin`) or was given."""
    if train_origin is None:
        return "fix the file, or pass --labels with the full set"
    return f"fix the file (train, {train_origin}, never has this label: a typo?), or pass --labels with the full set"


def _warn_rare(counts: Counter, where, what: str) -> None:
    """Log a warning for each label seen < RARE_BELOW times while the median is >= RARE_MEDIAN."""
    if len(counts) < 2 or statistics.median(counts.values()) < RARE_MEDIAN:
        return
    median = statistics.median(counts.values())
    for label, n in sorted(counts.items(), key=lambda item: item[1]):
        if n >= RARE_BELOW:
            break
        logger.warning(
            "%s: %s %r occurs %d time(s) in train while the median %s occurs %g times: a typo? "
            "Fix the file, or pass --labels with the full set so that any other label is an error",
            where(label), what, label, n, what, median,
        )


def _warn_lookalikes(labels: Sequence[str], where, what: str) -> None:
    """Warn about labels that look like another one or hold characters nobody sees.

    "B-PER\u200b" next to "B-PER", or "Positive" next to "positive", are two classes that a
    reader of the file takes for one: a warning names both forms and the line of each.
    """
    seen: dict[str, str] = {}
    for label in labels:
        key = label_key(label)
        other = seen.setdefault(key, label)
        if other != label:
            logger.warning(
                "%s: %s %r differs from %r (%s) only by case or invisible characters, so they are two classes: "
                "a typo? Fix the file, or pass --labels with the full set so that any other label is an error",
                where(label), what, label, other, where(other),
            )
            continue
        hidden = invisible_characters(label)
        if hidden:
            shown = "".join(" " if c.isspace() else c for c in label if c not in hidden or c.isspace())
            logger.warning(
                "%s: %s %r holds invisible character(s) (%s), so it is not %r; fix the file, "
                "or pass --labels with the full set so that any other label is an error",
                where(label), what, label, ", ".join(map(escaped, hidden)), shown,
            )


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


def token_labels(read: dict[str, ReadSplit], source: Source, cfg: DataConfig) -> tuple[list[str], str, list[str]]:
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
    explicit = explicit_labels(source, cfg)
    if explicit is not None:
        types = _types_from(explicit)
    else:
        types = sorted(entity_types(ex.tags for ex in read["train"].examples))
        entities = Counter(t[2:] for ex in read["train"].examples for t in ex.tags if t[0] == "B")  # BIO: one B- per entity
        def where(kind: str) -> str:
            return _locate({"train": read["train"]}, {f"B-{kind}"})[0]

        _warn_rare(entities, where, "entity type")
        _warn_lookalikes(types, where, "entity type")
    labels = bio_labels(types)
    unknown = set(chain.from_iterable(ex.tags for rs in read.values() for ex in rs.examples)) - set(labels)
    if unknown:
        where, tag = _locate(read, unknown)
        origin = read["train"].origin if explicit is None else None
        raise DataError(f"{where}: label {tag!r} is not in the label set ({', '.join(labels)}); {_fix(origin)}")
    return labels, scan.scheme, notes
