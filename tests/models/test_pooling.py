"""Pooling over real tokens only, for right/left padding, no padding and packed rows."""

from __future__ import annotations

import pytest
import torch

from lsllm.errors import ConfigError
from lsllm.models.pooling import pool, seq_index_from_mask


def test_pooling_matches_hand_computation_with_right_and_left_padding():
    hidden = torch.arange(2 * 4 * 2, dtype=torch.float32).reshape(2, 4, 2)
    mask = torch.tensor([[1, 1, 1, 0], [0, 1, 1, 1]])  # right-padded row, left-padded row
    index = seq_index_from_mask(mask, (2, 4), "cpu")
    last = pool(hidden, index, "last")
    torch.testing.assert_close(last, torch.stack([hidden[0, 2], hidden[1, 3]]))
    mean = pool(hidden, index, "mean")
    torch.testing.assert_close(mean, torch.stack([hidden[0, :3].mean(0), hidden[1, 1:].mean(0)]))
    maximum = pool(hidden, index, "max")
    torch.testing.assert_close(maximum, torch.stack([hidden[0, :3].amax(0), hidden[1, 1:].amax(0)]))


def test_no_attention_mask_means_every_token_is_real():
    hidden = torch.randn(2, 3, 4)
    index = seq_index_from_mask(None, (2, 3), "cpu")
    torch.testing.assert_close(pool(hidden, index, "last"), hidden[:, -1])


def test_packed_row_pools_each_example_separately():
    hidden = torch.randn(1, 7, 3)
    index = torch.tensor([[0, 0, 0, 1, 1, 2, -1]])
    mean = pool(hidden, index, "mean")
    torch.testing.assert_close(mean[1], hidden[0, 3:5].mean(0))
    torch.testing.assert_close(pool(hidden, index, "last")[2], hidden[0, 5])
    negative = -hidden.abs() - 1  # max must ignore the padding token even when everything is negative
    torch.testing.assert_close(pool(negative, index, "max")[0], negative[0, :3].amax(0))


def test_unknown_pooling_is_refused():
    with pytest.raises(ConfigError, match="last, mean, max"):
        pool(torch.zeros(1, 1, 1), torch.zeros(1, 1, dtype=torch.long), "first")
