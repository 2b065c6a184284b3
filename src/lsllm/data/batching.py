"""Padded batches from encoded features (`--no-pack`, and the stock recipes' way).

The default, padding-free packing, is `lsllm.data.packing`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from lsllm.data.encoding import IGNORE_INDEX
from lsllm.data.packing import is_float_list, seq_targets


class Collator:
    """Pad a list of features on the right to the longest one (`--no-pack`).

    Written here rather than `DataCollatorForTokenClassification` so that padding never
    mutates the tokenizer, one collator serves both tasks, and bookkeeping keys (`example_id`,
    `word_ids`) are dropped.

    Returns tensors: input_ids (B, T), attention_mask (B, T), labels (B,) for seq or (B, T)
    padded with -100 for token tasks.
    """

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        lengths = [len(f["input_ids"]) for f in features]
        width = max(lengths)
        batch = len(features)
        input_ids = torch.full((batch, width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((batch, width), dtype=torch.long)
        labelled = "labels" in features[0]
        # token tags: a list of ints per position; a multi-label target is a list of floats per example
        token_labels = labelled and isinstance(features[0]["labels"], (list, tuple)) and not is_float_list(features[0]["labels"])
        labels = torch.full((batch, width), IGNORE_INDEX, dtype=torch.long) if token_labels else None
        for row, (feature, n) in enumerate(zip(features, lengths, strict=True)):
            input_ids[row, :n] = torch.as_tensor(feature["input_ids"], dtype=torch.long)
            attention_mask[row, :n] = 1
            if labels is not None:
                labels[row, :n] = torch.as_tensor(feature["labels"], dtype=torch.long)
        out = {"input_ids": input_ids, "attention_mask": attention_mask}
        if labelled:
            out["labels"] = labels if labels is not None else seq_targets([f["labels"] for f in features])
        return out

