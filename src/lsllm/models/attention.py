"""Causal, bidirectional and top-k bidirectional attention for any transformers decoder.

This is the only module that touches transformers' attention machinery, and it does so through
public hooks:

* ``config.is_causal = False`` makes transformers (5.x) build a *bidirectional* mask that still
  hides padding, for every family whose model calls ``create_causal_mask`` /
  ``create_sliding_window_causal_mask``. For sliding-window families (Mistral, Qwen2 with
  ``use_sliding_window``, Gemma 2/3 local layers) the bidirectional mask keeps the window, now
  symmetric: a token sees the tokens within ``sliding_window`` positions on either side.
* Each attention module's ``is_causal`` flag must be cleared as well: when a batch has no padding
  transformers returns no mask at all and SDPA falls back to its own ``is_causal`` fast path, which
  reads that flag. Setting only the config leaves such batches silently causal; setting only the
  flag leaks padding into real tokens. We set both.
* Top-k unmasking (``unmask_layers=k``) needs per-layer masks, but transformers builds one mask
  for all layers. We register an attention function ``lsllm_sdpa`` (``AttentionInterface``) that
  wraps SDPA and re-imposes causality on the layers whose module still says ``is_causal``.
* Packed rows (several examples end to end) need block-diagonal attention. A (T, T) mask makes
  SDPA pay for the whole row, though each token only sees its own example: on CPU that was a
  quarter of a training step. On CPU ``lsllm_sdpa`` therefore also takes the rows' segment lengths
  (``lsllm_segments``, from :func:`packed_segments`) and runs SDPA per example, examples of equal
  length stacked into one call, so attention costs what the examples need. Training on CPU
  computes it in fp32: the bf16 SDPA backward of small blocks is about 2x slower there.
  Sliding windows are kept per layer (a banded mask for examples longer than the window).

LS models use ``lsllm_sdpa`` wherever the user asked for SDPA; it is not saved in the config, so a
saved or merged model loads with plain ``sdpa`` anywhere.
"""

from __future__ import annotations

import itertools
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from lsllm.errors import ConfigError

LSLLM_SDPA = "lsllm_sdpa"


Segments = tuple[tuple[tuple[int, int], ...], ...]
"""Per row, runs of (example length, number of consecutive examples of that length)."""


def packed_segments(seq_index: torch.Tensor) -> Segments:
    """The examples of packed rows as runs of equal lengths (the row's padding tail is one more run)."""
    rows = []
    for row in seq_index.tolist():
        lengths = [len(list(group)) for _, group in itertools.groupby(row)]
        rows.append(tuple((length, len(list(group))) for length, group in itertools.groupby(lengths)))
    return tuple(rows)


def _segment_sdpa(module: nn.Module, query, key, value, segments: Segments, dropout: float, scaling, window: int | None):
    """SDPA over each example of packed rows: (B, H, T, D) in, (B, T, H, D) out as transformers expects."""
    dtype = query.dtype
    if query.device.type == "cpu" and torch.is_grad_enabled() and dtype != torch.float32:
        query, key, value = query.float(), key.float(), value.float()
    causal = bool(getattr(module, "is_causal", True))
    rows = []
    for b, runs in enumerate(segments):
        sizes = [length * count for length, count in runs]
        parts = []
        for (length, count), q, k, v in zip(runs, query[b].split(sizes, 1), key[b].split(sizes, 1), value[b].split(sizes, 1), strict=True):
            # (H, count*length, D) -> (count, H, length, D): equal-length examples in one call
            q, k, v = (x.reshape(x.shape[0], count, length, x.shape[-1]).transpose(0, 1) for x in (q, k, v))
            mask = _window_mask(length, window, causal, q.device) if window and length > window else None
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout,
                                                 is_causal=mask is None and causal and length > 1,
                                                 scale=scaling, enable_gqa=True)
            parts.append(out.permute(0, 2, 1, 3).reshape(count * length, out.shape[1], out.shape[-1]))
        rows.append(torch.cat(parts, 0))
    return torch.stack(rows).to(dtype), None


def _window_mask(length: int, window: int, causal: bool, device) -> torch.Tensor:
    """transformers' sliding windows: causal sees the last ``window`` positions, bidirectional |i-j| <= window."""
    position = torch.arange(length, device=device)
    distance = position[:, None] - position[None, :]
    return (distance >= 0) & (distance < window) if causal else distance.abs() <= window


def _lsllm_sdpa(module: nn.Module, query, key, value, attention_mask, **kwargs):
    """SDPA per packed example when segments are given; else SDPA that keeps lower layers causal
    while the mask (built bidirectional for top-k unmasking) serves the top."""
    segments = kwargs.pop("lsllm_segments", None)
    if segments is not None and query.shape[2] == key.shape[2]:
        dropout = kwargs.get("dropout", 0.0) if module.training else 0.0
        window = kwargs.get("sliding_window", getattr(module, "sliding_window", None))  # a kwarg in most families
        return _segment_sdpa(module, query, key, value, segments, dropout, kwargs.get("scaling"), window)
    config = getattr(module, "config", None)
    mask_is_bidirectional = not getattr(config, "is_causal", False)
    if getattr(module, "is_causal", True) and mask_is_bidirectional and attention_mask is not None:
        q_len, kv_len = query.shape[2], key.shape[2]
        causal = torch.ones(q_len, kv_len, dtype=torch.bool, device=query.device).tril(kv_len - q_len)
        if attention_mask.dtype == torch.bool:
            attention_mask = attention_mask & causal
        else:
            attention_mask = attention_mask.masked_fill(~causal, torch.finfo(attention_mask.dtype).min)
    kwargs.pop("is_causal", None)
    return sdpa_attention_forward(module, query, key, value, attention_mask, is_causal=module.is_causal, **kwargs)


AttentionInterface.register(LSLLM_SDPA, _lsllm_sdpa)
AttentionMaskInterface.register(LSLLM_SDPA, sdpa_mask)


def attention_modules(backbone: nn.Module) -> list[nn.Module]:
    """The self-attention modules of a decoder, in layer order (those with ``layer_idx`` and ``is_causal``)."""
    found = [m for m in backbone.modules() if hasattr(m, "is_causal") and hasattr(m, "layer_idx")]
    return sorted(found, key=lambda m: m.layer_idx)


def set_attention_mode(backbone: nn.Module, bidirectional: bool, unmask_layers: int | None = None) -> None:
    """Make a decoder causal, fully bidirectional, or bidirectional in its top ``unmask_layers`` layers.

    Args:
        backbone: a transformers decoder (``AutoModel`` output, e.g. ``LlamaModel``).
        bidirectional: remove the causal mask (padding stays masked).
        unmask_layers: with ``bidirectional``, how many of the top layers attend both ways
            (None = all).

    Raises:
        ConfigError: the family exposes no attention modules we can switch, or k is out of range.
    """
    config = backbone.config
    modules = attention_modules(backbone)
    if not modules:
        raise ConfigError(f"{type(backbone).__name__}: no attention modules with an is_causal flag; this family cannot be unmasked")
    n_layers = len(modules)
    if unmask_layers is not None and not 1 <= unmask_layers <= n_layers:
        raise ConfigError(f"unmask_layers={unmask_layers} but the model has {n_layers} layers (use 1..{n_layers})")
    k = (n_layers if unmask_layers is None else unmask_layers) if bidirectional else 0
    first_bidirectional = n_layers - k
    for module in modules:
        module.is_causal = module.layer_idx < first_bidirectional
    config.is_causal = k == 0
    implementation = attn_implementation(config)
    if implementation == "sdpa":
        backbone.set_attn_implementation(LSLLM_SDPA)
    elif 0 < k < n_layers and implementation != LSLLM_SDPA:
        raise ConfigError(f"unmask_layers needs attn_implementation=sdpa, got {implementation!r}")


def attn_implementation(model_or_config: Any) -> str:
    """The attention implementation a model runs (transformers keeps it in a private config field: read it here only)."""
    config = getattr(model_or_config, "config", model_or_config)
    return config._attn_implementation


def attend_per_example(model: nn.Module) -> bool:
    """Switch a model on plain SDPA to `lsllm_sdpa`, so packed padding-free rows attend per example on CPU.

    Not saved with the model: an adapter reloads onto plain sdpa. Returns False (and changes
    nothing) when the model runs another kernel.
    """
    if attn_implementation(model) != "sdpa":
        return False
    model.set_attn_implementation(LSLLM_SDPA)
    return True


def packed_attention_mask(seq_index: torch.Tensor, causal: bool, dtype: torch.dtype, implementation: str) -> torch.Tensor:
    """Block-diagonal 4D mask for packed rows: a token sees only tokens of its own example.

    Args:
        seq_index: (B, T) example id of every token, -1 for padding.
        causal: also forbid attending to later positions.
        dtype: float dtype of the activations (eager attention takes an additive float mask).
        implementation: the model's attention implementation.

    Returns:
        (B, 1, T, T) boolean mask (True = attend) for SDPA, or additive float mask for eager.
    """
    same = seq_index.unsqueeze(2) == seq_index.unsqueeze(1)  # (B, T, T)
    real = (seq_index >= 0).unsqueeze(1)  # (B, 1, T) keys that are real tokens
    allowed = same & real
    if causal:
        allowed = allowed & torch.ones_like(allowed[0]).tril()
    # padding queries attend to themselves so softmax never sees an empty row
    eye = torch.eye(seq_index.shape[1], dtype=torch.bool, device=seq_index.device)
    allowed = allowed | (eye & (seq_index < 0).unsqueeze(2))
    allowed = allowed.unsqueeze(1)
    if implementation == "eager":
        return torch.zeros(allowed.shape, dtype=dtype, device=seq_index.device).masked_fill(~allowed, torch.finfo(dtype).min)
    if implementation in ("sdpa", LSLLM_SDPA, "flex_attention"):
        return allowed
    raise ConfigError(f"packed batches need attn_implementation sdpa or eager, got {implementation!r}; use --no-pack")
