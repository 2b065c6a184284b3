"""Reading a generated answer back as a label, and counting the ones that are not labels.

A generative classifier can answer anything. The SFT study this baseline reproduces reports
such "irregular outputs" next to accuracy, so parsing is deliberately strict: after
normalising case, whitespace and surrounding punctuation the whole answer must equal one label
name. "Positive." is `positive`; "positive review" or "I think positive" is irregular and counts
as wrong in accuracy and F1.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable

from lsllm.errors import ConfigError

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


def irregular_summary(raw_outputs: Iterable[str], parsed: Iterable[str | None], top: int = 10) -> tuple[int, list[list]]:
    """Number of irregular outputs and the `top` most frequent ones as [text, count] pairs.

    Outputs are counted by their whitespace-stripped text, so the list shows what the model wrote.
    """
    counts = Counter(raw.strip() for raw, label in zip(raw_outputs, parsed, strict=True) if label is None)
    return sum(counts.values()), [[text, n] for text, n in counts.most_common(top)]
