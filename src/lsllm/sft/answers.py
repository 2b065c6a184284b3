"""Writing labels as answers, reading a generated answer back, and counting the ones that name no label.

A generative classifier can answer anything. The SFT study this baseline reproduces reports
such "irregular outputs" next to accuracy, so parsing is deliberately strict: after
normalising case, whitespace and surrounding punctuation the whole answer must equal one label
name. "Positive." is `positive`; "positive review" or "I think positive" is irregular and counts
as wrong in accuracy and F1. Multi-label answers list label names ("joy, optimism" or "none"),
regression answers are one number ("3.8"); the task family member names its `Answers` class
(`Problem.sft_answer_format()`).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable
from typing import Any, ClassVar

from lsllm.errors import ConfigError, DataError

_SPACE = re.compile(r"\s+")
_EDGE_PUNCT = string.punctuation + "“”‘’«»…"


def normalize(text: str) -> str:
    """Lower-case, collapse whitespace, strip punctuation at both ends ("Sci/Tech" keeps its slash)."""
    return _SPACE.sub(" ", text).strip().strip(_EDGE_PUNCT).strip().lower()


class AnswerParser:
    """Maps normalised answers to label names.

    Args:
        labels: the label names in id order.

    Raises:
        ConfigError: two labels normalise to the same answer, or one normalises to nothing, so
            a generated answer could not be told apart.

    Example:
        >>> AnswerParser(["negative", "positive"]).parse(" Positive.")
        'positive'
    """

    def __init__(self, labels: list[str]) -> None:
        self.labels = list(labels)
        self._by_answer: dict[str, str] = {}
        for label in self.labels:
            key = normalize(label)
            if not key:
                raise ConfigError(f"label {label!r} is empty after normalisation: give the labels word names (labels.txt)")
            if key in self._by_answer:
                raise ConfigError(f"labels {self._by_answer[key]!r} and {label!r} read the same as answers: rename one")
            self._by_answer[key] = label

    def parse(self, raw: str) -> str | None:
        """The label `raw` names, or None for an irregular output."""
        return self._by_answer.get(normalize(raw))


def irregular_summary(raw_outputs: Iterable[str], parsed: Iterable[Any | None], top: int = 10) -> tuple[int, list[list]]:
    """Number of irregular outputs and the `top` most frequent ones as [text, count] pairs.

    Outputs are counted by their whitespace-stripped text, so the list shows what the model wrote.
    """
    counts = Counter(raw.strip() for raw, label in zip(raw_outputs, parsed, strict=True) if label is None)
    return sum(counts.values()), [[text, n] for text, n in counts.most_common(top)]


# ----------------------------------------------------------------------------- answers per problem type
#
# What the model is taught to write and how a generated answer is read back depends on the
# data's problem type, and on nothing else: the task family member names its answer format
# (`lsllm.problems.Problem.sft_answer_format()`, one of the classes below), and one `Answers` object
# per run (`Answers.of`) says it for training (`answer`), for the prompt (`prompt_fields`, the
# default `system_prompt`), for the generation budget (`longest`), for reading (`parse`: None means
# irregular), for scoring (`score`, `record`, `check_scoring`) and for the model card. Its `state` is
# saved in lsllm-sft.json, so `lsllm sft eval` reads answers the same way. This module imports
# nothing of lsllm.problems (which imports it).

NONE_ANSWER = "none"  # the multi-label answer for an empty label set
MAX_DECIMALS = 3  # regression answers carry at most this many decimals
_IRREGULAR = "<irregular>"  # stands for "no label" in single-label y_pred (made unique against the label set)
DEFAULT_SYSTEM_PROMPT = "Classify the text. Answer with exactly one of these labels: {labels}."
"""--system-prompt's default: the single-label answers' prompt; a run of another problem type left at it gets its own."""


class Answers:
    """How one problem type's labels become answers, and answers become predictions and metrics."""

    problem: ClassVar[str] = "single-label"  # the problem type, as lsllm-sft.json records it and messages name it
    system_prompt: ClassVar[str] = DEFAULT_SYSTEM_PROMPT  # the default instruction ({labels}; regression: {min}, {max})
    likelihood: ClassVar[bool] = False  # --scoring likelihood can read them (each answer is one label word)
    heading: ClassVar[str] = ""  # the model card's title says the problem type after the data (single-label: nothing)
    writes: ClassVar[str]  # the model card: what the model is taught to answer with
    irregular_note: ClassVar[str]  # the model card: which answers are irregular and how they are scored

    def __init__(self, labels: list[str]) -> None:
        self.labels = list(labels)

    @classmethod
    def of(cls, labels: list[str], state: dict[str, Any] | None = None, train_targets: Iterable[Any] | None = None) -> Answers:
        """The answers of a run over `labels`, from a saved run's `state` or fitted on the training targets (regression)."""
        return cls(labels)

    @classmethod
    def check_scoring(cls, scoring: str) -> None:
        """Refuse `--scoring likelihood` for answers that are not one of a fixed set of label words."""
        if scoring == "likelihood" and not cls.likelihood:
            raise ConfigError(f"--scoring likelihood picks one label word and cannot score {cls.problem} answers: "
                              "use --scoring generate")

    @classmethod
    def default_system_prompt(cls, system_prompt: str) -> str:
        """This problem type's default where `system_prompt` is the (single-label) default; else it unchanged."""
        return cls.system_prompt if system_prompt == DEFAULT_SYSTEM_PROMPT else system_prompt

    def answer(self, label: Any) -> str:
        """The completion the model is trained to write for a gold label."""
        raise NotImplementedError

    def parse(self, raw: str) -> Any | None:
        """The prediction an answer names, or None for an irregular output."""
        raise NotImplementedError

    def longest(self) -> list[str]:
        """Answers at least as long as any the model should write (the default generation budget)."""
        raise NotImplementedError

    def prompt_fields(self) -> dict[str, str]:
        """Placeholders of the system prompt: {labels} (and, for regression, {min} / {max})."""
        return {"labels": ", ".join(self.labels)}

    def record(self, parsed: Any | None) -> dict[str, Any]:
        """The prediction's keys in a predictions.jsonl row (null when irregular)."""
        raise NotImplementedError

    def score(self, gold: list[Any], parsed: list[Any | None], n_truncated: int = 0) -> dict[str, Any]:
        """The problem type's metrics; irregular outputs are scored as documented per type."""
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        """What lsllm-sft.json must keep for a saved run to be read the same way."""
        return {}


class SingleLabelAnswers(Answers):
    """One label name per answer; an irregular answer is wrong for its gold class."""

    problem = "single-label"
    likelihood = True
    writes = "the label word"
    irregular_note = "An answer that names no label is irregular and counts as wrong."

    def __init__(self, labels: list[str]) -> None:
        super().__init__(labels)
        self.parser = AnswerParser(self.labels)

    def answer(self, label):
        return str(label)

    def parse(self, raw):
        return self.parser.parse(raw)

    def longest(self):
        return list(self.labels)

    def record(self, parsed):
        return {"label": parsed}

    def score(self, gold, parsed, n_truncated=0):
        from lsllm.evaluation import seq_metrics

        none = _IRREGULAR
        while none in self.labels:
            none += "_"
        return seq_metrics([str(g) for g in gold], [p if p is not None else none for p in parsed], self.labels,
                           n_truncated=n_truncated)


class MultiLabelAnswers(Answers):
    """Every label that applies, in label order, joined by ", "; "none" for the empty set.

    Reading an answer: after `normalize`, "none" is the empty set; otherwise it is split on commas
    and on " and " ("joy, love and optimism", "joy, love, and optimism"), and every part must be a
    label name (normalised), else the whole answer is irregular. Irregular answers are scored as
    the empty set. Labels containing " and " parse whole ("rock and roll").

    Raises:
        ConfigError: a label contains a comma or reads as "none", or two labels read the same.
    """

    problem = "multi-label"
    system_prompt = ("Classify the text. Answer with every one of these labels that applies, separated by commas, "
                     "or none: {labels}.")
    heading = " (multi-label)"
    writes = 'every label that applies, comma-separated, or "none"'
    irregular_note = "An answer with any part that is not a label is irregular and scored as the empty set."

    def __init__(self, labels: list[str]) -> None:
        super().__init__(labels)
        AnswerParser(self.labels)  # empty or indistinguishable labels
        for label in self.labels:
            if "," in label:
                raise ConfigError(f"label {label!r} contains a comma, which separates labels in a multi-label answer: rename it")
            if normalize(label) == NONE_ANSWER:
                raise ConfigError(f"label {label!r} reads as {NONE_ANSWER!r}, the answer for no label: rename it")
        self._by_answer = {normalize(label): label for label in self.labels}
        self._order = {label: i for i, label in enumerate(self.labels)}

    def _ordered(self, names) -> list[str]:
        return sorted(set(names), key=self._order.__getitem__)

    def answer(self, label):
        unknown = [name for name in label if name not in self._order]
        if unknown:
            raise DataError(f"label(s) {', '.join(map(repr, unknown))} not among the run's labels ({', '.join(self.labels)})")
        return ", ".join(self._ordered(label)) or NONE_ANSWER

    def _segment(self, pieces: list[str]) -> list[str] | None:
        """Pieces split at " and " grouped into label names (a label may itself contain " and ")."""
        if not pieces:
            return []
        for k in range(len(pieces), 0, -1):
            name = self._by_answer.get(" and ".join(pieces[:k]))
            if name is not None:
                rest = self._segment(pieces[k:])
                if rest is not None:
                    return [name, *rest]
        return None

    def parse(self, raw):
        text = normalize(raw)
        if text == NONE_ANSWER:
            return []
        if not text:
            return None
        names: list[str] = []
        for i, part in enumerate(text.split(",")):
            part = normalize(part)
            if i and part.startswith("and "):  # the serial comma: "joy, love, and optimism"
                part = part[4:]
            pieces = [normalize(piece) for piece in part.split(" and ")]
            if not all(pieces):
                return None
            found = self._segment(pieces)
            if found is None:
                return None
            names += found
        return self._ordered(names)

    def longest(self):
        return [", ".join(self.labels), NONE_ANSWER]

    def record(self, parsed):
        return {"labels": parsed}

    def score(self, gold, parsed, n_truncated=0):
        from lsllm.evaluation import _multi_hot, multilabel_metrics

        truth = _multi_hot([list(g) for g in gold], self.labels)
        predicted = _multi_hot([p if p is not None else [] for p in parsed], self.labels)
        metrics = multilabel_metrics(truth, predicted, self.labels, n_truncated)
        metrics.pop("thresholds", None)  # answers are label words: there is no threshold
        return metrics


def decimals_of(values: Iterable[float], cap: int = MAX_DECIMALS) -> int:
    """The most decimals any value needs (3.8 -> 1, 5.0 -> 0, 2.6667 -> 4), at most `cap`."""
    most = 0
    for value in values:
        d = next((d for d in range(cap + 1) if abs(round(value, d) - value) < 1e-9), cap)
        most = max(most, d)
        if most == cap:
            break
    return most


_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_LEADING = "".join(c for c in _EDGE_PUNCT if c not in "+-.")


def parse_number(raw: str) -> float | None:
    """The one number an answer consists of ("3.8", " 3.80.", "-1", ".5"), else None ("3.8/5", "about 3", "3,8")."""
    text = raw.strip().rstrip(_EDGE_PUNCT).strip().lstrip(_LEADING).strip()
    return float(text) if _NUMBER.fullmatch(text) else None


class RegressionAnswers(Answers):
    """The gold number written with the training targets' precision ("3.8", or "3.800" when any target has 3 decimals).

    Reading an answer: the whole answer must be one number (surrounding spaces, quotes and a final
    period allowed), else it is irregular. Irregular answers are scored as the training mean.

    Args:
        labels: the bundle's labels (the score's name).
        decimals, train_mean, train_min, train_max: from `fit` on the training targets, or a saved run's state.
    """

    problem = "regression"
    system_prompt = "Rate the text. Answer with a score from {min} to {max}."
    heading = " (regression)"
    writes = "the score as a number"
    irregular_note = "An answer that is not one number is irregular and scored as the training mean."

    def __init__(self, labels: list[str], decimals: int = MAX_DECIMALS, train_mean: float | None = None,
                 train_min: float | None = None, train_max: float | None = None) -> None:
        super().__init__(labels)
        self.decimals = int(decimals)
        self.train_mean, self.train_min, self.train_max = train_mean, train_min, train_max

    @classmethod
    def of(cls, labels, state=None, train_targets=None):
        if train_targets is not None:
            return cls(labels).fit(train_targets)
        state = state or {}
        return cls(labels, **{k: state[k] for k in ("decimals", "train_mean", "train_min", "train_max") if k in state})

    def fit(self, targets: Iterable[Any]) -> RegressionAnswers:
        """Decimals, mean and range of the training targets."""
        values = [float(t) for t in targets]
        if not values:
            raise DataError("no training targets to learn the answers' precision and range from")
        self.decimals = decimals_of(values)
        self.train_mean = sum(values) / len(values)
        self.train_min, self.train_max = min(values), max(values)
        return self

    def _fitted(self) -> None:
        if self.train_mean is None or self.train_min is None or self.train_max is None:
            raise ConfigError("regression answers need the training targets' mean and range: fit them first "
                              "(a saved run keeps them in model/lsllm-sft.json)")

    def answer(self, label):
        return f"{float(label):.{self.decimals}f}"

    def parse(self, raw):
        return parse_number(raw)

    def longest(self):
        self._fitted()
        assert self.train_min is not None and self.train_max is not None
        widest = max(abs(self.train_min), abs(self.train_max)) * (-1 if self.train_min < 0 else 1)
        return [self.answer(self.train_min), self.answer(self.train_max), self.answer(widest)]

    def _short(self, value: float) -> str:
        text = f"{value:.{self.decimals}f}"
        return text.rstrip("0").rstrip(".") if "." in text else text

    def prompt_fields(self):
        self._fitted()
        assert self.train_min is not None and self.train_max is not None
        return {**super().prompt_fields(), "min": self._short(self.train_min), "max": self._short(self.train_max)}

    def record(self, parsed):
        return {"value": parsed}

    def score(self, gold, parsed, n_truncated=0):
        from lsllm.evaluation import regression_metrics

        self._fitted()
        return regression_metrics([float(g) for g in gold], [p if p is not None else self.train_mean for p in parsed],
                                  n_truncated)

    def state(self):
        return {"decimals": self.decimals, "train_mean": self.train_mean, "train_min": self.train_min,
                "train_max": self.train_max}

