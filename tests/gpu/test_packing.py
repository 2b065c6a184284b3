"""Packed rows on CUDA give the padded batch's logits and gradients: SDPA (and flash-attention when installed).

On CUDA the packed path keeps one block-diagonal mask per row (many tiny per-example SDPA calls are
launch-bound there), so this is a different code path from the CPU's per-example attention.

Tolerances: fp32 (TF32 off) as on the CPU, atol 1e-4 / rtol 1e-3 (kernels may sum in another
order); bf16: atol = rtol = 3e-2 on logits (a bf16 mantissa has 8 bits: 2^-8 ~ 4e-3 per rounding,
a few roundings per layer over 2 layers) and identical argmax, loss within 2 %.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch
from tests.gpu.conftest import DEVICE, GPU, ON_CUDA, llama_config

from lsllm.models.classifiers import LSForSequenceClassification, LSForTokenClassification

pytestmark = GPU

TOLERANCE = {torch.float32: {"atol": 1e-4, "rtol": 1e-3}, torch.bfloat16: {"atol": 3e-2, "rtol": 3e-2}}
MODES = {"causal": (False, None), "bidirectional": (True, None), "top1": (True, 1)}


def packed_and_padded(rows: list[list[int]], vocab: int = 60, seed: int = 1):
    """Random examples of the given lengths, packed end to end per row and padded one example per row."""
    gen = torch.Generator().manual_seed(seed)
    examples = [torch.randint(3, vocab, (n,), generator=gen) for row in rows for n in row]
    tags = [torch.randint(0, 3, (len(e),), generator=gen) for e in examples]
    width = max(sum(row) for row in rows)
    packed = {"input_ids": torch.zeros(len(rows), width, dtype=torch.long),
              "seq_index": torch.full((len(rows), width), -1, dtype=torch.long),
              "position_ids": torch.zeros(len(rows), width, dtype=torch.long),
              "labels": torch.full((len(rows), width), -100, dtype=torch.long)}
    i = 0
    for r, row in enumerate(rows):
        start = 0
        for n in row:
            packed["input_ids"][r, start:start + n] = examples[i]
            packed["labels"][r, start:start + n] = tags[i]
            packed["seq_index"][r, start:start + n] = i
            packed["position_ids"][r, start:start + n] = torch.arange(n)
            start, i = start + n, i + 1
    longest = max(len(e) for e in examples)
    padded = {"input_ids": torch.zeros(len(examples), longest, dtype=torch.long),
              "attention_mask": torch.zeros(len(examples), longest, dtype=torch.long),
              "labels": torch.full((len(examples), longest), -100, dtype=torch.long)}
    for j, (e, y) in enumerate(zip(examples, tags, strict=True)):
        padded["input_ids"][j, :len(e)], padded["attention_mask"][j, :len(e)], padded["labels"][j, :len(e)] = e, 1, y
    seq_labels = torch.tensor([int(y[0]) for y in tags])
    return packed, padded, seq_labels


def model_for(task: str, dtype: torch.dtype, mode: str, attn: str = "sdpa"):
    torch.manual_seed(0)
    cls = LSForSequenceClassification if task == "seq" else LSForTokenClassification
    config = llama_config(64, num_labels=3, classifier_dropout=0.0)
    config._attn_implementation = attn
    model = cls(config)
    model.set_attention(*MODES[mode])
    return model.to(DEVICE, dtype).train()


def logits_loss_grads(model, inputs: dict):
    model.zero_grad(set_to_none=True)
    out = model(**{k: v.to(DEVICE) for k, v in inputs.items()})
    out.loss.backward()
    grads = {n: p.grad.float().clone() for n, p in model.named_parameters() if p.grad is not None}
    return out.logits.float(), out.loss.float().item(), grads


def compare(task: str, dtype: torch.dtype, mode: str, attn: str) -> None:
    model = model_for(task, dtype, mode, attn)
    packed, padded, seq_labels = packed_and_padded([[5, 3, 3, 7], [6, 2, 1]])
    if task == "seq":
        packed["labels"] = padded["labels"] = seq_labels
    packed_logits, packed_loss, packed_grads = logits_loss_grads(model, packed)
    padded_logits, padded_loss, padded_grads = logits_loss_grads(model, padded)
    if task == "token":  # the real positions of both layouts, in example order
        packed_logits = packed_logits[packed["seq_index"].to(DEVICE) >= 0]
        padded_logits = padded_logits[padded["attention_mask"].to(DEVICE).bool()]
    torch.testing.assert_close(packed_logits, padded_logits, **TOLERANCE[dtype])
    assert torch.equal(packed_logits.argmax(-1), padded_logits.argmax(-1))
    assert packed_loss == pytest.approx(padded_loss, rel=1e-4 if dtype == torch.float32 else 2e-2)
    assert packed_grads.keys() == padded_grads.keys()
    if dtype == torch.float32:  # bf16 gradients of a tiny random model are noise-level; fp32 must agree
        for name, grad in packed_grads.items():
            torch.testing.assert_close(grad, padded_grads[name], atol=1e-4, rtol=1e-3, msg=name)


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("task", ["seq", "token"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_rows_equal_padded_batches(attn, dtype, task, mode):
    if attn == "eager" and mode == "top1":
        pytest.skip("top-k unmasking needs sdpa (refused with a ConfigError for eager, tested on the CPU)")
    compare(task, dtype, mode, attn)


def test_packed_rows_on_cuda_use_the_block_mask_not_per_example_calls():
    """GPUs keep one masked SDPA call per layer (tiny per-example calls are launch-bound); the CPU splits."""
    from lsllm.models import attention

    calls = []
    original = attention._segment_sdpa
    attention._segment_sdpa = lambda *a, **k: calls.append(1) or original(*a, **k)
    try:
        compare("token", torch.float32, "causal", "sdpa")
    finally:
        attention._segment_sdpa = original
    assert bool(calls) is (not ON_CUDA)


@pytest.mark.skipif(importlib.util.find_spec("flash_attn") is None, reason="flash-attn is not installed")
@pytest.mark.parametrize("mode", ["causal", "bidirectional"])
@pytest.mark.parametrize("task", ["seq", "token"])
def test_packed_rows_with_flash_attention_varlen_equal_padded_batches(task, mode):
    compare(task, torch.bfloat16, mode, "flash_attention_2")
