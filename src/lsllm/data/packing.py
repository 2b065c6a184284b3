"""Padding-free packing: a batch's examples laid end to end in one row.

The examples, the loss and the gradients are those of the padded batch (the model's block-diagonal
mask keeps examples apart, positions restart at 0 for each), but no compute goes to padding and
every matmul sees one long row instead of many short padded ones. Examples are laid out shortest
first: the loss does not depend on their order, and equal lengths side by side share one
attention call (see ``lsllm.models.attention``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


class PackingCollator:
    """Collate features ({input_ids, labels}) into one packed row with seq_index and position_ids."""

    def __init__(self, task: str):
        self.task = task

    def __call__(self, features: Sequence[dict]) -> dict[str, torch.Tensor]:
        features = sorted(features, key=lambda f: len(f["input_ids"]))
        ids, seq_index, positions, token_labels = [], [], [], []
        for example, feature in enumerate(features):
            n = len(feature["input_ids"])
            ids.extend(feature["input_ids"])
            seq_index.extend([example] * n)
            positions.extend(range(n))
            if self.task == "token":
                token_labels.extend(feature["labels"])
        batch = {
            "input_ids": torch.tensor([ids], dtype=torch.long),
            "seq_index": torch.tensor([seq_index], dtype=torch.long),
            "position_ids": torch.tensor([positions], dtype=torch.long),
        }
        if self.task == "token":
            batch["labels"] = torch.tensor([token_labels], dtype=torch.long)
        else:
            batch["labels"] = torch.tensor([f["labels"] for f in features], dtype=torch.long)
        return batch
