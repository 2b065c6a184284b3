"""Half-precision training on CUDA: finite losses, an fp32 head and fp32 adapters over a bf16/fp16 backbone.

The original LS-LLaMA QLoRA code filled its head with NaNs in half precision; lsllm keeps the head
(and PEFT the LoRA weights) in fp32 whatever the backbone's dtype. These tests take real optimizer
steps on packed batches, the path `lsllm train` uses, on the GPU.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from tests.gpu.conftest import DEVICE, GPU, llama_config

from lsllm.config import LoraSettings
from lsllm.models.adapters import apply_lora
from lsllm.models.classifiers import LSForSequenceClassification, LSForTokenClassification

pytestmark = GPU

PACKED = {  # two rows of packed examples (lengths 5+3 and 4+2+2), a padding tail on the second row
    "input_ids": torch.tensor([[5, 6, 7, 8, 9, 10, 11, 12], [13, 14, 15, 16, 17, 18, 19, 20]]),
    "seq_index": torch.tensor([[0, 0, 0, 0, 0, 1, 1, 1], [2, 2, 2, 2, 3, 3, 4, 4]]),
    "position_ids": torch.tensor([[0, 1, 2, 3, 4, 0, 1, 2], [0, 1, 2, 3, 0, 1, 0, 1]]),
}


def lora_model(task: str, dtype: torch.dtype, mode: str = "causal"):
    torch.manual_seed(0)
    cls = LSForSequenceClassification if task == "seq" else LSForTokenClassification
    model = cls(llama_config(64, num_labels=3))
    if mode != "causal":
        model.set_attention(True, 1 if mode == "top1" else None)
    model = model.to(DEVICE, dtype)
    return apply_lora(model, LoraSettings(r=4, alpha=8, dropout=0.1, target_modules=["q_proj", "v_proj", "down_proj"]))


def batch(task: str) -> dict[str, torch.Tensor]:
    out = {k: v.to(DEVICE) for k, v in PACKED.items()}
    if task == "seq":
        out["labels"] = torch.tensor([0, 1, 2, 1, 0], device=DEVICE)
    else:
        labels = torch.arange(16, device=DEVICE).reshape(2, 8) % 3
        labels[:, 0] = -100  # a position without a loss, as first-subword labelling leaves them
        out["labels"] = labels
    return out


@pytest.mark.parametrize("mode", ["causal", "bidirectional", "top1"])
@pytest.mark.parametrize("task", ["seq", "token"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_half_precision_steps_have_finite_losses_and_fp32_head_and_adapters(dtype, task, mode):
    model = lora_model(task, dtype, mode).train()
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(p.dtype == torch.float32 for p in trainable.values()), \
        {n: p.dtype for n, p in trainable.items() if p.dtype != torch.float32}
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    assert {p.dtype for n, p in frozen.items() if "score" not in n} == {dtype}  # the backbone (PEFT keeps a frozen copy of the head)
    start = {n: p.detach().clone() for n, p in trainable.items()}
    optimizer = torch.optim.AdamW(trainable.values(), lr=1e-3)
    losses = []
    for _ in range(3):
        out = model(**batch(task))
        assert out.logits.dtype == torch.float32  # the head ran in fp32 on a half-precision backbone
        out.loss.backward()
        grads = [p.grad for p in trainable.values() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(out.loss.item())
    assert all(torch.isfinite(torch.tensor(losses))), losses
    assert losses[-1] < losses[0]  # lr 1e-3 on one fixed batch: the steps fit it
    moved = [n for n, p in trainable.items() if not torch.equal(p, start[n])]
    assert any("score" in n for n in moved) and any("lora_B" in n for n in moved)
    for name, before in frozen.items():  # the base never changes
        assert torch.equal(dict(model.named_parameters())[name], before), name


@pytest.mark.parametrize("run", ["seq_run", "token_run"])
def test_lsllm_train_on_cuda_in_bf16_saves_a_finite_fp32_head(run, request):
    folder = request.getfixturevalue(run)  # trains now unless another test already did
    metrics = json.loads((folder / "metrics.json").read_text())
    key = "accuracy" if run == "seq_run" else "f1"
    assert {"validation", "test"} <= metrics.keys() and 0.0 <= metrics["test"][key] <= 1.0
    [weights] = list((folder / "model").glob("adapter_model.safetensors"))
    tensors = load_file(weights)
    head = [t for n, t in tensors.items() if "score" in n]
    lora = [t for n, t in tensors.items() if "lora_" in n]
    assert head and lora
    assert all(t.dtype == torch.float32 and torch.isfinite(t).all() for t in head + lora)
