"""Tag schemes: detection and conversion to BIO, checked against spans encoded independently."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from seqeval.metrics.sequence_labeling import get_entities

from lsllm.data.schemes import bio_labels, scan_scheme, split_tag, to_bio

TYPES = ["PER", "LOC", "ORG"]


@st.composite
def spans(draw):
    """A sentence length and non-overlapping typed spans [start, end) in it."""
    n = draw(st.integers(1, 20))
    out, pos = [], 0
    while pos < n:
        gap = draw(st.integers(0, 3))
        length = draw(st.integers(1, 4))
        start, end = pos + gap, min(pos + gap + length, n)
        if start >= n:
            break
        out.append((draw(st.sampled_from(TYPES)), start, end))
        pos = end
    return n, out


def encode(n: int, entities, scheme: str) -> list[str]:
    """Spans -> tags, written independently of the library (the test's oracle)."""
    tags = ["O"] * n
    prev_end, prev_type = -1, None
    for kind, start, end in entities:
        for i in range(start, end):
            tags[i] = f"I-{kind}"
        if scheme == "BIO":
            tags[start] = f"B-{kind}"
        elif scheme == "IOB1":
            if prev_end == start and prev_type == kind:  # B- only where two same-type spans touch
                tags[start] = f"B-{kind}"
        elif scheme == "IOBES":
            if end - start == 1:
                tags[start] = f"S-{kind}"
            else:
                tags[start], tags[end - 1] = f"B-{kind}", f"E-{kind}"
        prev_end, prev_type = end, kind
    return tags


@given(spans(), st.sampled_from(["BIO", "IOB1", "IOBES"]))
def test_conversion_keeps_spans(sample, scheme):
    n, entities = sample
    source = encode(n, entities, scheme)
    assert to_bio(source) == encode(n, entities, "BIO")


@given(spans())
def test_bio_is_a_fixed_point_and_spans_match_seqeval(sample):
    n, entities = sample
    bio = encode(n, entities, "BIO")
    assert to_bio(bio) == bio
    assert [(k, s, e - 1) for k, s, e in entities] == get_entities(bio)


@given(st.lists(st.sampled_from(["O", "B-PER", "I-PER", "I-LOC", "B-LOC"]), max_size=15))
def test_output_is_always_valid_bio(tags):
    out = to_bio(tags)
    prev = "O"
    for tag in out:
        if tag.startswith("I-"):
            assert prev != "O" and prev[2:] == tag[2:]
        prev = tag
    assert get_entities(out) == get_entities(tags)  # the spans seqeval's default mode reads


def test_detection():
    assert scan_scheme([["B-PER", "I-PER", "O", "B-LOC"]]).scheme == "BIO"
    assert scan_scheme([["I-PER", "I-PER", "O", "I-LOC", "B-LOC"]]).scheme == "IOB1"
    assert scan_scheme([["S-PER", "O", "B-LOC", "E-LOC"]]).scheme == "IOBES"
    assert scan_scheme([["U-PER", "O", "B-LOC", "L-LOC"]]).scheme == "BILOU"


def test_mostly_bio_with_a_few_i_starts_is_bio_with_repairs():
    # e.g. the CoNLL-2003 copy in ../shared/data: BIO with a few hundred entities begun by I-
    scan = scan_scheme([["B-PER", "I-PER", "O", "B-LOC"], ["O", "I-MISC", "B-PER"], ["B-ORG"]])
    assert (scan.scheme, scan.i_starts, scan.needs_conversion) == ("BIO", 1, True)


def test_split_tag_and_labels():
    assert split_tag("B-WORK_OF_ART") == ("B", "WORK_OF_ART")
    with pytest.raises(ValueError, match="neither O nor"):
        split_tag("PER")
    assert bio_labels(["PER", "LOC"]) == ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
