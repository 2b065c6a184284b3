"""Packed inference gives each input exactly the probabilities it gets alone; raw text splits PTB-style."""

from __future__ import annotations

import pytest
import torch

from lsllm.inference.prediction import feature_probabilities, packed_batches, split_words
from lsllm.models.classifiers import LSForSequenceClassification, LSForTokenClassification
from tests.conftest import tiny_config

FEATURES = [{"input_ids": list(range(5, 5 + n))} for n in (3, 9, 1, 17, 6, 6, 40)]


@pytest.mark.parametrize("cls", [LSForSequenceClassification, LSForTokenClassification])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_packed_inference_equals_one_input_at_a_time(cls, bidirectional):
    torch.manual_seed(0)
    model = cls(tiny_config("llama", num_labels=3)).eval()
    model.set_attention(bidirectional)
    packed = feature_probabilities(model, FEATURES, pad_id=0, max_tokens=48, row_tokens=20)
    for feature, probs in zip(FEATURES, packed, strict=True):
        with torch.no_grad():
            alone = model(input_ids=torch.tensor([feature["input_ids"]])).logits.softmax(-1)[0]
        torch.testing.assert_close(probs, alone, atol=1e-5, rtol=1e-4)


def test_packing_respects_the_row_and_batch_budgets():
    batches = packed_batches(FEATURES, pad_id=0, max_tokens=48, row_tokens=20)
    assert sorted(i for b in batches for i in b.indices) == list(range(len(FEATURES)))
    for batch in batches:
        rows, width = batch.inputs["input_ids"].shape
        assert rows == 1 or rows * width <= 48
        real_per_row = (batch.inputs["seq_index"] >= 0).sum(1)
        assert all(n <= 20 or rows == 1 for n in real_per_row.tolist())


def test_raw_text_splits_like_the_ptb_training_data():
    words, spans = split_words("EU rejects German call to boycott British lamb. It's U.S. 1,000!")
    assert words == ["EU", "rejects", "German", "call", "to", "boycott", "British", "lamb", ".", "It's", "U.S", ".", "1,000", "!"]
    assert all(text == "EU rejects German call to boycott British lamb. It's U.S. 1,000!"[a:b] for text, (a, b) in zip(words, spans, strict=True))
