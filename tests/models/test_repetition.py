"""Sequence repetition: the second copy has read the whole input, exactly as a plain model fed [x; x]."""

from __future__ import annotations

import pytest
import torch
import transformers

from lsllm.config import ModelConfig, RunConfig, apply_preset
from lsllm.errors import ConfigError
from lsllm.models.classifiers import LSForSequenceClassification, LSForTokenClassification
from lsllm.models.repetition import repeat_layout
from tests.conftest import tiny_config

IDS = torch.tensor([[5, 6, 7, 8, 9, 10]])


def token_model(family: str = "llama", repeat: bool = True, **kw) -> LSForTokenClassification:
    torch.manual_seed(0)
    model = LSForTokenClassification(tiny_config(family, num_labels=5, **kw)).eval()
    model.set_attention(False, repeat=repeat)
    return model


def test_layout_repeats_each_example_inside_its_own_segment():
    seq_index = torch.tensor([[0, 0, 1, 1, 1, -1], [-1, -1, 2, 2, 2, 2]])  # packed row; left-padded row
    layout = repeat_layout(seq_index)
    assert layout.source.tolist() == [[0, 1, 0, 1, 2, 3, 4, 2, 3, 4, 5, 5], [0, 1, 0, 1, 2, 3, 4, 5, 2, 3, 4, 5]]
    assert layout.seq_index.tolist() == [[0, 0, 0, 0, 1, 1, 1, 1, 1, 1, -1, -1], [-1] * 4 + [2] * 8]
    assert layout.position_ids.tolist()[0][:10] == [0, 1, 2, 3, 0, 1, 2, 3, 4, 5]
    assert layout.position_ids.tolist()[1][4:] == list(range(8))
    assert layout.second.tolist() == [[2, 3, 7, 8, 9, 11], [2, 3, 8, 9, 10, 11]]


@pytest.mark.parametrize("repeat", [False, True])
def test_first_token_sees_the_last_word_only_when_repeated(family, repeat):
    model = token_model(family, repeat)
    other = IDS.clone()
    other[0, -1] = 42
    with torch.no_grad():
        delta = (model(input_ids=IDS).logits[0, 0] - model(input_ids=other).logits[0, 0]).abs().max()
    assert (delta > 1e-5) if repeat else (delta == 0)


def test_repeat_equals_a_plain_causal_model_fed_the_input_twice(family):
    repeated = token_model(family, repeat=True)
    plain = token_model(family, repeat=False)
    stock_seq = LSForSequenceClassification(tiny_config(family, num_labels=3)).eval()
    seq = LSForSequenceClassification(tiny_config(family, num_labels=3)).eval()
    seq.load_state_dict(stock_seq.state_dict())
    seq.set_attention(False, repeat=True)
    twice = torch.cat([IDS, IDS], 1)  # positions 0..2T-1, causal
    with torch.no_grad():
        torch.testing.assert_close(repeated(input_ids=IDS).logits, plain(input_ids=twice).logits[:, IDS.shape[1]:])
        torch.testing.assert_close(seq(input_ids=IDS).logits, stock_seq(input_ids=twice).logits)  # last token of copy 2


def test_repeat_matches_stock_transformers_on_the_doubled_input():
    model = token_model("llama", repeat=True)
    stock = transformers.LlamaForTokenClassification(tiny_config("llama", num_labels=5)).eval()
    stock.load_state_dict(model.state_dict())
    with torch.no_grad():
        expected = stock(input_ids=torch.cat([IDS, IDS], 1)).logits[:, 6:]
        torch.testing.assert_close(model(input_ids=IDS).logits, expected)


def test_save_and_load_keep_the_repeat_mode(tmp_path):
    model = token_model("qwen3", repeat=True)
    model.save_pretrained(tmp_path)
    loaded = LSForTokenClassification.from_pretrained(tmp_path).eval()
    assert loaded.repeat and loaded.config.is_causal
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=IDS).logits, model(input_ids=IDS).logits)
    assert not LSForTokenClassification.from_pretrained(tmp_path, repeat=False).repeat


def test_repeat_with_bidirectional_attention_is_refused():
    model = token_model(repeat=False)
    with pytest.raises(ConfigError, match="needs causal attention"):
        model.set_attention(True, repeat=True)


def test_model_config_attention_modes():
    assert ModelConfig(attention="repeat").attention == "repeat"
    legacy = ModelConfig(bidirectional=True)  # --bidirectional and old saved configs
    assert legacy.attention == "bidirectional" and legacy.resolved_pooling == "mean"
    assert ModelConfig(attention="bidirectional").bidirectional
    with pytest.raises(ConfigError, match="contradicts --bidirectional"):
        ModelConfig(attention="repeat", bidirectional=True)
    with pytest.raises(ConfigError, match="--attention must be one of"):
        ModelConfig(attention="twice")
    with pytest.raises(ConfigError, match="needs --bidirectional"):
        ModelConfig(attention="repeat", unmask_layers=1)


def test_a_bidirectional_preset_contradicting_repeat_is_refused():
    cfg = RunConfig.from_dict({"model": {"attention": "repeat"}, "train": {"preset": "ls-unllama"}})
    with pytest.raises(ConfigError, match="contradicts"):
        apply_preset(cfg, "token", {"model.attention"})


@pytest.mark.parametrize("family", ["llama", "gemma3"])
def test_packed_repeat_through_the_block_mask_equals_padded(family):
    """The mask path (GPUs, eager attention) rather than per-example SDPA: packed rows still equal padded."""
    from tests.models.test_classifiers import _packed_and_padded

    torch.manual_seed(0)
    config = tiny_config(family, num_labels=4)
    config._attn_implementation = "eager"
    model = LSForTokenClassification(config).eval()
    model.set_attention(False, repeat=True)
    assert model.model.config._attn_implementation == "eager"  # no per-example SDPA
    packed, padded = _packed_and_padded([[3, 5, 2], [4, 1]])
    with torch.no_grad():
        packed_logits = model(**packed).logits[packed["seq_index"] >= 0]
        padded_logits = model(**padded).logits[padded["attention_mask"].bool()]
    torch.testing.assert_close(packed_logits, padded_logits, atol=2e-5, rtol=1e-4)
