"""FastDropout: nn.Dropout's distribution and scaling from fewer random draws; swapped into LoRA."""

from __future__ import annotations

import torch
from torch import nn

from lsllm.config import LoraSettings
from lsllm.models.adapters import apply_lora
from lsllm.models.classifiers import LSForSequenceClassification
from lsllm.models.dropout import FastDropout
from tests.conftest import tiny_config


def test_drops_the_configured_share_and_scales_the_rest():
    torch.manual_seed(0)
    x = torch.ones(1000, 1000)
    out = FastDropout(0.1).train()(x)
    dropped = (out == 0).float().mean().item()
    assert abs(dropped - 0.1) < 0.002  # 1M Bernoulli(0.1) draws: std 0.0003
    assert torch.allclose(out[out != 0], torch.full_like(out[out != 0], 1 / 0.9))
    rows = (out == 0).float().mean(1)  # every position of the 4-lane words drops alike
    assert rows.min() > 0.05 and rows.max() < 0.15
    lanes = (out == 0).float().view(-1, 4).mean(0)
    assert torch.all((lanes - 0.1).abs() < 0.003), lanes


def test_gradient_is_the_mask_and_eval_is_the_identity():
    torch.manual_seed(0)
    dropout = FastDropout(0.25).train()
    x = torch.randn(64, 48, requires_grad=True)
    out = dropout(x)
    out.sum().backward()
    kept = out != 0
    torch.testing.assert_close(x.grad, kept.float() / 0.75)
    assert dropout.eval()(x) is x


def test_masks_follow_the_torch_seed():
    dropout = FastDropout(0.1).train()
    torch.manual_seed(3)
    first = dropout(torch.ones(50, 40))
    torch.manual_seed(3)
    assert torch.equal(dropout(torch.ones(50, 40)), first)


def test_lora_layers_get_fast_dropout_when_built():
    torch.manual_seed(0)
    model = apply_lora(LSForSequenceClassification(tiny_config("llama", num_labels=2)), LoraSettings(r=4, alpha=8, dropout=0.1))
    dropouts = [m for m in model.modules() if isinstance(m, nn.Dropout) and "lora_dropout" in _parent_names(model, m)]
    assert dropouts and all(type(d) is FastDropout and d.p == 0.1 for d in dropouts)


def _parent_names(model: nn.Module, child: nn.Module) -> str:
    return " ".join(name for name, module in model.named_modules() if module is child)
