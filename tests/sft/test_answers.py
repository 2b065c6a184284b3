"""Answer parsing: normalisation, strict label matching, irregular outputs counted."""

from __future__ import annotations

import pytest

from lsllm.errors import ConfigError
from lsllm.sft.answers import AnswerParser, irregular_summary, normalize


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(" Positive.", "positive"), ("POSITIVE\n", "positive"), ('"negative"', "negative"), ("positive!!", "positive"),
     ("  Sci/Tech ", "sci/tech"), ("very   negative", "very negative")],
)
def test_normalize(raw, expected):
    assert normalize(raw) == expected


def test_parser_maps_answers_to_label_names_and_rejects_anything_else():
    parser = AnswerParser(["World", "Sports", "Business", "Sci/Tech"])
    assert parser.parse("sci/tech.") == "Sci/Tech"
    assert parser.parse(" world") == "World"
    assert parser.parse("Sports news") is None
    assert parser.parse("") is None
    assert parser.parse("I think Business") is None


def test_multiword_labels_parse_whole():
    parser = AnswerParser(["very negative", "negative", "neutral", "positive", "very positive"])
    assert parser.parse("Very  Negative") == "very negative"
    assert parser.parse("negative") == "negative"


def test_labels_that_read_the_same_are_refused():
    with pytest.raises(ConfigError, match="read the same"):
        AnswerParser(["Positive", "positive."])


def test_irregular_summary_counts_and_ranks_outputs():
    raws = ["positive", "pos", " pos", "neutral", "negative", "neutral ", "neutral"]
    parsed = ["positive", None, None, None, "negative", None, None]
    count, top = irregular_summary(raws, parsed, top=2)
    assert count == 5
    assert top == [["neutral", 3], ["pos", 2]]
