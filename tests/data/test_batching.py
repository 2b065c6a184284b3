"""Collator padding, length-grouped and token-budget samplers, class weights."""

from __future__ import annotations

import pytest
import torch

from lsllm.data import Collator, LengthGroupedBatchSampler, TokenBudgetBatchSampler, class_weights


def test_right_padding_with_eos_fallback_and_token_labels(bpe_tokenizer):
    collate = Collator.from_tokenizer(bpe_tokenizer)  # no pad token: pads with EOS
    assert collate.pad_token_id == bpe_tokenizer.eos_token_id
    batch = collate([
        {"input_ids": [5, 6, 7], "labels": [1, -100, 2], "word_ids": [0, 0, 1], "example_id": 0},
        {"input_ids": [8], "labels": [3], "word_ids": [0], "example_id": 1},
    ])  # fmt: skip
    eos = bpe_tokenizer.eos_token_id
    assert set(batch) == {"input_ids", "attention_mask", "labels"}
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, eos, eos]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[1, -100, 2], [3, -100, -100]]


def test_left_padding_multiple_of_and_position_ids():
    collate = Collator(0, padding_side="left", pad_to_multiple_of=4, position_ids=True)
    batch = collate([{"input_ids": [5, 6, 7], "labels": 1}, {"input_ids": [8], "labels": 0}])
    assert batch["input_ids"].tolist() == [[0, 5, 6, 7], [0, 0, 0, 8]]
    assert batch["attention_mask"].tolist() == [[0, 1, 1, 1], [0, 0, 0, 1]]
    assert batch["labels"].tolist() == [1, 0]
    assert batch["position_ids"].tolist() == [[0, 0, 1, 2], [0, 0, 0, 0]]
    assert batch["input_ids"].dtype == torch.long


def test_unlabelled_batch_has_no_labels():
    assert "labels" not in Collator(0)([{"input_ids": [1]}, {"input_ids": [1, 2]}])


LENGTHS = [3, 50, 7, 7, 49, 12, 3, 30, 31, 2, 48, 8, 9, 10, 11, 40, 41, 5, 6, 20, 21, 22, 23]


def test_length_grouped_batches_are_seeded_complete_and_homogeneous():
    sampler = LengthGroupedBatchSampler(LENGTHS, batch_size=4, seed=1)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(len(LENGTHS)))
    assert len(batches) == len(sampler) == 6
    assert list(LengthGroupedBatchSampler(LENGTHS, 4, seed=1)) == batches
    sampler.set_epoch(1)
    assert list(sampler) != batches  # a new order each epoch
    # grouping: padded tokens far below a random batching of the same data
    padded = sum(max(LENGTHS[i] for i in b) * len(b) for b in batches)
    random_order = torch.randperm(len(LENGTHS), generator=torch.Generator().manual_seed(0)).tolist()
    baseline = sum(max(LENGTHS[i] for i in random_order[k : k + 4]) * len(random_order[k : k + 4]) for k in range(0, 23, 4))
    assert padded < 0.8 * baseline
    small = list(LengthGroupedBatchSampler(LENGTHS, 4, seed=1, mega_batch_mult=2))  # groups within 8 examples
    assert sorted(i for b in small for i in b) == list(range(len(LENGTHS)))


def test_length_grouped_eval_order_and_drop_last():
    batches = list(LengthGroupedBatchSampler(LENGTHS, 5, shuffle=False, drop_last=True))
    assert len(batches) == 4 and all(len(b) == 5 for b in batches)
    assert [LENGTHS[i] for i in batches[0]] == sorted(LENGTHS, reverse=True)[:5]


@pytest.mark.parametrize("budget", [50, 64, 200])
def test_token_budget_batches_respect_the_budget(budget):
    sampler = TokenBudgetBatchSampler(LENGTHS, max_tokens=budget, seed=3)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(len(LENGTHS)))
    assert all(max(LENGTHS[i] for i in b) * len(b) <= budget for b in batches)
    assert len(batches) == len(sampler)
    sampler.set_epoch(2)
    assert len(list(sampler)) == len(sampler)


def test_token_budget_max_batch_size_and_too_long_example():
    batches = list(TokenBudgetBatchSampler([1] * 10, max_tokens=100, max_batch_size=3, shuffle=False))
    assert [len(b) for b in batches] == [3, 3, 3, 1]
    with pytest.raises(ValueError, match="an example has 50 tokens, over the token budget 40"):
        TokenBudgetBatchSampler(LENGTHS, max_tokens=40)


def test_class_weights_balanced():
    # 6 examples: class 0 x4, class 1 x2, class 2 absent -> n / (2 classes * count)
    assert class_weights([0, 0, 0, 0, 1, 1], 3) == pytest.approx([6 / 8, 6 / 4, 1.0])
    # token labels: -100 ignored
    assert class_weights([[0, -100, 1], [1, 1, -100]], 2) == pytest.approx([4 / 2, 4 / 6])
    with pytest.raises(ValueError, match=r"label ids must be in \[0, 2\)"):
        class_weights([0, 2], 2)
