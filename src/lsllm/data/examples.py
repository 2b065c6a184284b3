"""The data layer's currency: examples with string labels, and the bundle of splits.

Labels stay strings until encoding (`label2id` is derived from `DatasetBundle.labels`), so a
bundle means the same thing whatever model reads it and predictions come back as names.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SeqExample:
    """One input and its label; `label=None` marks an unlabelled (predict) input.

    Attributes:
        text: the input; with several fields, their display form (`fields` is what is encoded).
        label: a class name (single-label), a list of names, possibly empty (multi-label), or
            a number (regression).
        fields: several text columns kept apart (sentence pairs: premise, hypothesis), in column
            order; None for one text.
    """

    text: str
    label: str | list[str] | float | None = None
    fields: dict[str, str] | None = None


def fields_text(fields: dict[str, str]) -> str:
    """The display form of several text fields (`SeqExample.text`): one "name: value" line each."""
    return "\n".join(f"{name}: {value}" for name, value in fields.items())


@dataclass
class TokenExample:
    """One sentence as words and one BIO tag per word; `tags=None` marks an unlabelled input."""

    tokens: list[str]
    tags: list[str] | None = None


@dataclass
class DatasetBundle:
    """Splits of one dataset with the label set they are scored against.

    Attributes:
        name: "sst2", "conll03", the file/folder stem of user data, or "hf:<id>".
        task: "seq" (one label per text) or "token" (one BIO tag per word).
        labels: label names in id order; token tasks: the full BIO tag list with "O" first.
        splits: "train", "validation" and, when labelled data exists for it, "test".
        notes: how the splits were made (carving, scheme conversion, limits), for reports.
        scheme: token tasks: the tag scheme found in the input (BIO, IOB1 or IOBES); the
            examples always carry BIO.
        fingerprint: hash of the sources' content and the settings that shaped the examples;
            it keys tokenization caches, so a changed file is never served stale.
    """

    name: str
    task: str
    labels: list[str]
    splits: dict[str, list]
    notes: list[str] = field(default_factory=list)
    scheme: str | None = None
    fingerprint: str = ""
    problem: str | None = "single-label"  # seq: single-label | multi-label | regression (labels: [the score's name]); token: None

    @property
    def label2id(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.labels)}

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.labels))

    def sizes(self) -> dict[str, int]:
        """Number of examples per split, e.g. for a log line or a model card."""
        return {name: len(examples) for name, examples in self.splits.items()}
