"""Pool per-token hidden states into one vector per example, over real tokens only.

All three poolings work from ``seq_index``: the example id of every token, -1 for padding.
One representation serves right padding, left padding, no padding at all (no pad token), and
packed rows that hold several examples, so the fast and the plain paths pool identically.
"""

from __future__ import annotations

import torch

from lsllm.config import POOLINGS
from lsllm.errors import ConfigError


def seq_index_from_mask(attention_mask: torch.Tensor | None, shape: tuple[int, int], device) -> torch.Tensor:
    """(B, T) example ids for an ordinary padded batch: row b -> b, padding -> -1."""
    batch, length = shape
    rows = torch.arange(batch, device=device).unsqueeze(1).expand(batch, length)
    if attention_mask is None:
        return rows
    return rows.masked_fill(attention_mask == 0, -1)


def pool(hidden: torch.Tensor, seq_index: torch.Tensor, mode: str, n_examples: int | None = None) -> torch.Tensor:
    """Pool hidden states per example.

    Args:
        hidden: (B, T, H) final hidden states.
        seq_index: (B, T) example id per token, -1 for padding.
        mode: ``last`` (last real token: what a causal model has read everything by),
            ``mean`` or ``max`` over the example's real tokens.
        n_examples: number of examples (default: max id + 1).

    Returns:
        (N, H) pooled vectors in example-id order.
    """
    if mode not in POOLINGS:
        raise ConfigError(f"pooling must be one of {', '.join(POOLINGS)}, got {mode!r}")
    flat_hidden = hidden.reshape(-1, hidden.shape[-1])  # (B*T, H)
    flat_index = seq_index.reshape(-1)
    real = flat_index >= 0
    positions = torch.nonzero(real).squeeze(1)
    ids = flat_index[positions]
    n = int(ids.max().item()) + 1 if n_examples is None else n_examples
    if mode == "last":
        last = torch.full((n,), -1, dtype=torch.long, device=hidden.device)
        last = last.scatter_reduce(0, ids, positions, reduce="amax", include_self=True)
        return flat_hidden[last]
    tokens = flat_hidden[positions]  # (R, H) real tokens only
    if mode == "mean":
        summed = torch.zeros(n, tokens.shape[1], dtype=tokens.dtype, device=tokens.device).index_add(0, ids, tokens)
        counts = torch.bincount(ids, minlength=n).clamp(min=1).unsqueeze(1)
        return summed / counts.to(tokens.dtype)
    empty = torch.full((n, tokens.shape[1]), float("-inf"), dtype=tokens.dtype, device=tokens.device)
    index = ids.unsqueeze(1).expand_as(tokens)
    return empty.scatter_reduce(0, index, tokens, reduce="amax", include_self=True)
