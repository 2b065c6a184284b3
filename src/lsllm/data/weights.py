"""Class weights for an imbalanced label distribution (`--class-weights balanced`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.utils.class_weight import compute_class_weight


def class_weights(label_ids: Sequence[int] | Sequence[Sequence[int]], n_labels: int) -> list[float]:
    """sklearn's "balanced" weights, n_samples / (n_present_classes * count), one per label id.

    Args:
        label_ids: label ids of the training examples, or per-example lists of ids for token
            tasks; -100 (ignored positions) is skipped.
        n_labels: size of the label set; labels absent from the data get weight 1.0 (they
            never appear as a target, so their weight does not change the loss).
    """
    flat: list[int] = []
    for item in label_ids:
        if isinstance(item, (list, tuple, np.ndarray)):
            flat.extend(int(x) for x in item if x != -100)
        elif item != -100:
            flat.append(int(item))
    y = np.asarray(flat, dtype=np.int64)
    if y.size == 0:
        raise ValueError("no labels to weight")
    if y.min() < 0 or y.max() >= n_labels:
        raise ValueError(f"label ids must be in [0, {n_labels}), got {y.min()}..{y.max()}")
    present = np.unique(y)
    weights = [1.0] * n_labels
    for cls, weight in zip(present, compute_class_weight("balanced", classes=present, y=y), strict=True):
        weights[int(cls)] = float(weight)
    return weights
