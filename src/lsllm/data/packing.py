"""Padding-free packing: a batch's examples laid end to end in one row.

The examples, the loss and the gradients are those of the padded batch (the model's block-diagonal
mask keeps examples apart, positions restart at 0 for each), but no compute goes to padding and
every matmul sees one long row instead of many short padded ones. Examples are laid out shortest
first: the loss does not depend on their order, and equal lengths side by side share one
attention call (see ``lsllm.models.attention``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch


def pack_rows(rows: Sequence[Sequence[Sequence[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """Token-id lists laid end to end, one packed row per inner list (training and inference alike).

    Returns:
        input_ids (R, W) padded at row ends with ``pad_id``; seq_index (R, W): the example's
        number in the batch, counted across rows, -1 on padding; position_ids (R, W) restarting
        at 0 for every example.
    """
    width = max(sum(len(ids) for ids in row) for row in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    seq_index = torch.full((len(rows), width), -1, dtype=torch.long)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    example = 0
    for r, row in enumerate(rows):
        start = 0
        for ids in row:
            end = start + len(ids)
            input_ids[r, start:end] = torch.as_tensor(ids, dtype=torch.long)
            seq_index[r, start:end] = example
            positions[r, start:end] = torch.arange(len(ids))
            example += 1
            start = end
    return {"input_ids": input_ids, "seq_index": seq_index, "position_ids": positions}


class PackingCollator:
    """Collate features ({input_ids, labels}) into one packed row with seq_index and position_ids."""

    def __init__(self, targets: Callable[[Sequence], torch.Tensor]):
        self.targets = targets  # the problem type's `Problem.packed_targets`: the features' labels -> one target tensor

    def __call__(self, features: Sequence[dict]) -> dict[str, torch.Tensor]:
        features = sorted(features, key=lambda f: len(f["input_ids"]))
        batch = pack_rows([[f["input_ids"] for f in features]], pad_id=0)  # one row: nothing is padded
        batch["labels"] = self.targets([f["labels"] for f in features])
        return batch


def is_float_list(value) -> bool:
    return isinstance(value, (list, tuple)) and bool(value) and isinstance(value[0], float)


def seq_targets(labels: Sequence) -> torch.Tensor:
    """Sequence targets as a tensor: class ids (long, (B,)), multi-hot rows or numbers (float, (B, K) or (B,))."""
    first = labels[0]
    if isinstance(first, float) or is_float_list(first):
        return torch.tensor(labels, dtype=torch.float32)
    return torch.tensor(labels, dtype=torch.long)
