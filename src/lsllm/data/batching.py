"""Batches from encoded features: dynamic padding, length-grouped and token-budget samplers.

Padding-free packing is not here: it needs the model's cooperation (position ids, `seq_index`)
and lives in the model layer.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from transformers.trainer_pt_utils import get_length_grouped_indices

from lsllm.data.encoding import IGNORE_INDEX

MODEL_KEYS = ("input_ids", "labels")  # what reaches the model; example_id / word_ids stay behind


class Collator:
    """Pad a list of features to the longest one (optionally a multiple of N).

    Written here rather than `DataCollatorForTokenClassification` so that padding never
    mutates the tokenizer (a missing pad token falls back to EOS here, not on the tokenizer),
    one collator serves both tasks, and bookkeeping keys (`example_id`, `word_ids`) are dropped.

    Returns tensors: input_ids (B, T), attention_mask (B, T), labels (B,) for seq or (B, T)
    padded with -100 for token tasks, and position_ids (B, T) when `position_ids=True`
    (counting real tokens only, which keeps positions right under left padding).
    """

    def __init__(
        self,
        pad_token_id: int,
        padding_side: str = "right",
        pad_to_multiple_of: int | None = None,
        position_ids: bool = False,
    ) -> None:
        if padding_side not in ("right", "left"):
            raise ValueError(f"padding_side must be right or left, got {padding_side!r}")
        self.pad_token_id = pad_token_id
        self.padding_side = padding_side
        self.pad_to_multiple_of = pad_to_multiple_of
        self.position_ids = position_ids

    @classmethod
    def from_tokenizer(cls, tokenizer: Any, **kwargs: Any) -> Collator:
        """Pad with the tokenizer's pad token, or its EOS when it has none (Llama, SmolLM2)."""
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        if pad is None:
            raise ValueError(f"{type(tokenizer).__name__} has neither a pad nor an EOS token to pad with")
        return cls(pad, **kwargs)

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        lengths = [len(f["input_ids"]) for f in features]
        width = max(lengths)
        if self.pad_to_multiple_of:
            width = math.ceil(width / self.pad_to_multiple_of) * self.pad_to_multiple_of
        batch = len(features)
        input_ids = torch.full((batch, width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((batch, width), dtype=torch.long)
        labelled = "labels" in features[0]
        token_labels = labelled and isinstance(features[0]["labels"], (list, tuple))
        labels = torch.full((batch, width), IGNORE_INDEX, dtype=torch.long) if token_labels else None
        for row, (feature, n) in enumerate(zip(features, lengths, strict=True)):
            span = slice(0, n) if self.padding_side == "right" else slice(width - n, width)
            input_ids[row, span] = torch.as_tensor(feature["input_ids"], dtype=torch.long)
            attention_mask[row, span] = 1
            if labels is not None:
                labels[row, span] = torch.as_tensor(feature["labels"], dtype=torch.long)
        out = {"input_ids": input_ids, "attention_mask": attention_mask}
        if labelled:
            out["labels"] = labels if labels is not None else torch.tensor([f["labels"] for f in features], dtype=torch.long)
        if self.position_ids:
            out["position_ids"] = (attention_mask.cumsum(dim=1) - 1).clamp(min=0)
        return out


class LengthGroupedBatchSampler:
    """Batches of similar length, in a seeded random order that changes with `set_epoch`.

    Indices come from transformers' `get_length_grouped_indices` (random mega-batches of
    `mega_batch_mult` batches, sorted by length inside), are cut into batches, and the batch
    order is shuffled so long batches are not always first. The mega-batch size is passed
    explicitly: transformers' default shrinks it to one batch on small datasets, which groups
    nothing. With `shuffle=False` (evaluation) batches are in length order.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        seed: int = 0,
        shuffle: bool = True,
        drop_last: bool = False,
        mega_batch_mult: int = 50,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.mega_batch_mult = mega_batch_mult
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self) -> list[list[int]]:
        n, size = len(self.lengths), self.batch_size
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            order = get_length_grouped_indices(self.lengths, size, self.mega_batch_mult, generator=generator)
        else:
            order = sorted(range(n), key=lambda i: -self.lengths[i])
        batches = [order[i : i + size] for i in range(0, n, size)]
        if self.drop_last and batches and len(batches[-1]) < size:
            batches.pop()
        if self.shuffle:
            perm = torch.randperm(len(batches), generator=generator).tolist()
            batches = [batches[i] for i in perm]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._batches())

    def __len__(self) -> int:
        n = len(self.lengths)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)


class TokenBudgetBatchSampler:
    """Batches whose padded size (batch size x longest length) stays within `max_tokens`.

    Examples are sorted by length (ties broken by a seeded shuffle) and packed greedily, so
    short inputs travel in large batches and long ones in small; the batch order is shuffled
    per epoch. Every example must fit the budget on its own.
    """

    def __init__(
        self, lengths: Sequence[int], max_tokens: int, seed: int = 0, shuffle: bool = True, max_batch_size: int | None = None
    ) -> None:
        self.lengths = list(lengths)
        longest = max(self.lengths, default=0)
        if longest > max_tokens:
            raise ValueError(f"an example has {longest} tokens, over the token budget {max_tokens}; raise the budget to >= max_length")
        self.max_tokens = max_tokens
        self.max_batch_size = max_batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0
        self._count = len(self._batches())

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self) -> list[list[int]]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(len(self.lengths), generator=generator).tolist() if self.shuffle else list(range(len(self.lengths)))
        order.sort(key=lambda i: self.lengths[i])  # stable: equal lengths keep the shuffled order
        batches: list[list[int]] = []
        batch: list[int] = []
        widest = 0
        for i in order:
            width = max(widest, self.lengths[i])
            full = self.max_batch_size is not None and len(batch) >= self.max_batch_size
            if batch and (width * (len(batch) + 1) > self.max_tokens or full):
                batches.append(batch)
                batch, width = [], self.lengths[i]
            batch.append(i)
            widest = width
        if batch:
            batches.append(batch)
        if self.shuffle:
            perm = torch.randperm(len(batches), generator=generator).tolist()
            batches = [batches[i] for i in perm]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._batches())

    def __len__(self) -> int:
        return self._count
