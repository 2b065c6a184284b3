"""Causal, bidirectional and top-k attention on CUDA, per family: CUDA's SDPA kernels (flash, memory-efficient)
take the `is_causal` fast path and the masks differently from the CPU's, so the behaviour is checked again here.

fp32 runs with TF32 off; bf16 uses the same thresholds scaled to its precision (a changed token moves
position 0 by O(1e-2) when it can see it; "cannot see" must stay exactly 0 either way).
"""

from __future__ import annotations

import pytest
import torch
from tests.conftest import bidirectional_layers, tiny_config
from tests.gpu.conftest import DEVICE, GPU
from transformers import AutoModel

from lsllm.models.attention import set_attention_mode

pytestmark = GPU

IDS = torch.tensor([[5, 6, 7, 8, 9, 10]])
DTYPES = {"fp32": (torch.float32, 1e-4, 2e-5), "bf16": (torch.bfloat16, 1e-3, 2e-2)}  # dtype, "sees" threshold, padding atol


def backbone(family: str, dtype: torch.dtype, bidirectional: bool, unmask_layers: int | None = None, attn: str = "sdpa"):
    torch.manual_seed(0)
    config = tiny_config(family)
    config._attn_implementation = attn
    model = AutoModel.from_config(config).eval()
    set_attention_mode(model, bidirectional, unmask_layers)
    return model.to(DEVICE, dtype)


@torch.no_grad()
def hidden(model, ids, mask=None, layer: int = -1) -> torch.Tensor:
    out = model(input_ids=ids.to(DEVICE), attention_mask=None if mask is None else mask.to(DEVICE), output_hidden_states=True)
    return out.hidden_states[layer].float()


def changed_last(ids: torch.Tensor) -> torch.Tensor:
    other = ids.clone()
    other[:, -1] = 42
    return other


@pytest.mark.parametrize("precision", list(DTYPES))
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_first_token_sees_the_last_only_when_unmasked(family, attn, precision):
    dtype, sees, _ = DTYPES[precision]
    causal = backbone(family, dtype, bidirectional=False, attn=attn)
    delta = (hidden(causal, IDS)[0, 0] - hidden(causal, changed_last(IDS))[0, 0]).abs().max()
    assert delta == 0
    unmasked = backbone(family, dtype, bidirectional=True, attn=attn)
    delta = (hidden(unmasked, IDS)[0, 0] - hidden(unmasked, changed_last(IDS))[0, 0]).abs().max()
    assert delta > sees  # no padding, so no mask: SDPA's is_causal fast path must not make this causal


@pytest.mark.parametrize("precision", list(DTYPES))
@pytest.mark.parametrize("bidirectional", [False, True])
def test_padding_never_changes_real_tokens(family, bidirectional, precision):
    dtype, _, atol = DTYPES[precision]
    model = backbone(family, dtype, bidirectional)
    reference = hidden(model, IDS)[0]
    ids = torch.cat([IDS, torch.zeros(1, 3, dtype=torch.long)], 1)
    left = torch.cat([torch.zeros(1, 3, dtype=torch.long), IDS], 1)
    batch = torch.cat([ids, left])
    out = hidden(model, batch, (batch != 0).long())
    torch.testing.assert_close(out[0, :6], reference, atol=atol, rtol=atol * 5)
    torch.testing.assert_close(out[1, 3:], reference, atol=atol, rtol=atol * 5)


@pytest.mark.parametrize("precision", list(DTYPES))
def test_top_k_unmasking_makes_exactly_the_top_layers_bidirectional(family, precision):
    dtype, sees, _ = DTYPES[precision]
    model = backbone(family, dtype, bidirectional=True, unmask_layers=2)  # 4 layers: 2 causal, 2 bidirectional
    assert bidirectional_layers(model) == [2, 3]
    for layer in range(5):  # hidden_states[l] is layer l's input: position 0 may change only after layer 2 ran
        delta = (hidden(model, IDS, layer=layer)[0, 0] - hidden(model, changed_last(IDS), layer=layer)[0, 0]).abs().max()
        assert (delta > sees) == (layer >= 3), f"hidden state {layer}: delta {delta}"
        if layer < 3:
            assert delta == 0, f"hidden state {layer}: causal layers leaked {delta}"
