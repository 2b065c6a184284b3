"""Attention modes per family: unmasking reaches position 0, padding never leaks, top-k is exact."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModel

from lsllm.errors import ConfigError
from lsllm.models.attention import LSLLM_SDPA, attention_modules, set_attention_mode
from tests.conftest import bidirectional_layers, tiny_config

IDS = torch.tensor([[5, 6, 7, 8, 9, 10]])


def backbone(family: str, bidirectional: bool, unmask_layers: int | None = None, attn: str = "sdpa"):
    torch.manual_seed(0)
    config = tiny_config(family)
    config._attn_implementation = attn
    model = AutoModel.from_config(config).eval()
    set_attention_mode(model, bidirectional, unmask_layers)
    return model


def hidden(model, ids, mask=None, layer: int = -1):
    out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    return out.hidden_states[layer]


def changed_last(ids):
    other = ids.clone()
    other[:, -1] = 42
    return other


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_unmasked_first_token_sees_the_last_without_padding(family, attn):
    model = backbone(family, bidirectional=True, attn=attn)
    delta = (hidden(model, IDS)[0, 0] - hidden(model, changed_last(IDS))[0, 0]).abs().max()
    assert delta > 1e-4  # the SDPA is_causal fast path must not make this batch causal


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_causal_first_token_never_sees_the_last(family, attn):
    model = backbone(family, bidirectional=False, attn=attn)
    delta = (hidden(model, IDS)[0, 0] - hidden(model, changed_last(IDS))[0, 0]).abs().max()
    assert delta == 0


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("side", ["right", "left"])
def test_padding_never_changes_real_tokens(family, bidirectional, side):
    model = backbone(family, bidirectional)
    reference = hidden(model, IDS)[0]
    pads = torch.zeros(1, 3, dtype=torch.long)
    ids = torch.cat([IDS, pads], 1) if side == "right" else torch.cat([pads, IDS], 1)
    mask = (ids != 0).long()
    batch = torch.cat([ids, torch.cat([IDS[:, :4], torch.zeros(1, 5, dtype=torch.long)], 1)])  # a second, shorter row
    batch_mask = torch.cat([mask, (batch[1:] != 0).long()])
    out = hidden(model, batch, batch_mask)[0]
    real = out[:6] if side == "right" else out[3:]
    torch.testing.assert_close(real, reference, atol=2e-5, rtol=1e-4)


def test_top_k_unmasking_makes_exactly_the_top_layers_bidirectional(family):
    model = backbone(family, bidirectional=True, unmask_layers=2)  # 4 layers: 2 causal, 2 bidirectional
    assert bidirectional_layers(model) == [2, 3]
    ids, other = IDS, changed_last(IDS)
    # hidden_states[l] is the input of layer l; position 0 may change only after the first unmasked layer ran
    for layer in range(5):
        delta = (hidden(model, ids, layer=layer)[0, 0] - hidden(model, other, layer=layer)[0, 0]).abs().max()
        assert (delta > 1e-5) == (layer >= 3), f"hidden state {layer}: delta {delta}"


def test_top_k_unmasking_keeps_padding_masked(family):
    model = backbone(family, bidirectional=True, unmask_layers=1)
    reference = hidden(model, IDS)[0]
    ids = torch.cat([IDS, torch.zeros(1, 3, dtype=torch.long)], 1)
    out = hidden(model, ids, (ids != 0).long())[0, :6]
    torch.testing.assert_close(out, reference, atol=2e-5, rtol=1e-4)


def test_switching_back_to_causal_restores_causal_attention():
    model = backbone("llama", bidirectional=True, unmask_layers=2)
    set_attention_mode(model, bidirectional=False)
    assert bidirectional_layers(model) == []
    assert model.config._attn_implementation == LSLLM_SDPA  # LS models keep lsllm's SDPA (not saved in configs)
    assert all(m.is_causal for m in attention_modules(model))


def test_unmask_layers_out_of_range_is_refused():
    model = backbone("llama", bidirectional=False)
    with pytest.raises(ConfigError, match="model has 4 layers"):
        set_attention_mode(model, True, unmask_layers=5)


def test_setting_only_the_module_flags_leaks_padding():
    """Why we also set config.is_causal: flags alone make a padded batch differ from an unpadded one."""
    torch.manual_seed(0)
    model = AutoModel.from_config(tiny_config("llama")).eval()
    for module in attention_modules(model):
        module.is_causal = False
    ids = torch.cat([IDS, torch.zeros(1, 2, dtype=torch.long)], 1)
    padded = hidden(model, ids, (ids != 0).long())[0, :6]
    assert (padded - hidden(model, IDS)[0]).abs().max() > 1e-3
