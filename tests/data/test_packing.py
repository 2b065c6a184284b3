"""PackingCollator: one row, examples shortest first, labels and positions following them."""

from __future__ import annotations

from lsllm.data.packing import PackingCollator
from lsllm.problems import SingleLabel, TokenTagging

FEATURES = [
    {"input_ids": [1, 2, 3], "labels": 0},
    {"input_ids": [4], "labels": 1},
    {"input_ids": [5, 6, 7], "labels": 2},
    {"input_ids": [8, 9], "labels": 3},
]


def test_sequence_examples_are_packed_shortest_first_with_their_labels():
    batch = PackingCollator(SingleLabel().packed_targets)(FEATURES)
    assert batch["input_ids"].tolist() == [[4, 8, 9, 1, 2, 3, 5, 6, 7]]
    assert batch["seq_index"].tolist() == [[0, 1, 1, 2, 2, 2, 3, 3, 3]]
    assert batch["position_ids"].tolist() == [[0, 0, 1, 0, 1, 2, 0, 1, 2]]
    assert batch["labels"].tolist() == [1, 3, 0, 2]


def test_token_labels_stay_with_their_tokens():
    features = [{"input_ids": f["input_ids"], "labels": [10 * t for t in f["input_ids"]]} for f in FEATURES]
    batch = PackingCollator(TokenTagging().packed_targets)(features)
    assert batch["labels"].tolist() == [[10 * t for t in batch["input_ids"][0].tolist()]]
