"""Collator padding and class weights."""

from __future__ import annotations

import pytest

from lsllm.data import Collator, class_weights


def test_right_padding_with_eos_fallback_and_token_labels(bpe_tokenizer):
    collate = Collator(bpe_tokenizer.eos_token_id)  # the tokenizer has no pad token: pad with EOS
    batch = collate([
        {"input_ids": [5, 6, 7], "labels": [1, -100, 2], "word_ids": [0, 0, 1], "example_id": 0},
        {"input_ids": [8], "labels": [3], "word_ids": [0], "example_id": 1},
    ])  # fmt: skip
    eos = bpe_tokenizer.eos_token_id
    assert set(batch) == {"input_ids", "attention_mask", "labels"}
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, eos, eos]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[1, -100, 2], [3, -100, -100]]


def test_unlabelled_batch_has_no_labels():
    assert "labels" not in Collator(0)([{"input_ids": [1]}, {"input_ids": [1, 2]}])


def test_class_weights_balanced():
    # 6 examples: class 0 x4, class 1 x2, class 2 absent -> n / (2 classes * count)
    assert class_weights([0, 0, 0, 0, 1, 1], 3) == pytest.approx([6 / 8, 6 / 4, 1.0])
    # token labels: -100 ignored
    assert class_weights([[0, -100, 1], [1, 1, -100]], 2) == pytest.approx([4 / 2, 4 / 6])
    with pytest.raises(ValueError, match=r"label ids must be in \[0, 2\)"):
        class_weights([0, 2], 2)
