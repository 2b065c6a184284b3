"""Classifiers: equal to stock heads when causal, padding/packing invariant, exact save/load."""

from __future__ import annotations

import pytest
import torch
import transformers

from lsllm import (
    LlamaForSequenceClassification,
    LSForSequenceClassification,
    LSForTokenClassification,
    UnmaskingLlamaForSequenceClassification,
    UnmaskingLlamaForTokenClassification,
)
from tests.conftest import tiny_config

IDS = torch.tensor([[5, 6, 7, 8, 9, 10], [11, 12, 13, 0, 0, 0]])
MASK = (IDS != 0).long()


def seq_model(family="llama", cls=LSForSequenceClassification, **kw):
    torch.manual_seed(0)
    return cls(tiny_config(family, num_labels=3, **kw)).eval()


def test_causal_last_pooling_equals_stock_llama_head():
    ours = seq_model()
    stock = transformers.LlamaForSequenceClassification(tiny_config("llama", num_labels=3)).eval()
    assert not stock.load_state_dict(ours.state_dict()).missing_keys
    torch.testing.assert_close(ours(input_ids=IDS, attention_mask=MASK).logits, stock(input_ids=IDS, attention_mask=MASK).logits)


def test_token_head_equals_stock_llama_token_head():
    torch.manual_seed(0)
    ours = LSForTokenClassification(tiny_config("llama", num_labels=5)).eval()
    stock = transformers.LlamaForTokenClassification(tiny_config("llama", num_labels=5)).eval()
    assert not stock.load_state_dict(ours.state_dict()).missing_keys
    torch.testing.assert_close(ours(input_ids=IDS, attention_mask=MASK).logits, stock(input_ids=IDS, attention_mask=MASK).logits)


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("pooling", ["last", "mean", "max"])
def test_pooled_logits_do_not_depend_on_padding_side_or_amount(family, bidirectional, pooling):
    model = seq_model(family)
    model.set_attention(bidirectional)
    model.set_pooling(pooling)
    alone = model(input_ids=IDS[1:, :3]).logits
    right = model(input_ids=IDS, attention_mask=MASK).logits[1]
    left_ids = torch.tensor([[0, 0, 0, 0, 11, 12, 13]])
    left = model(input_ids=left_ids, attention_mask=(left_ids != 0).long()).logits[0]
    torch.testing.assert_close(right, alone[0], atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(left, alone[0], atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("mode", ["causal", "bidirectional", "top1"])
def test_packed_rows_give_the_same_logits_as_padded_batches(family, mode):
    seq = seq_model(family)
    torch.manual_seed(0)
    tok = LSForTokenClassification(tiny_config(family, num_labels=4)).eval()
    for model in (seq, tok):
        model.set_attention(mode != "causal", 1 if mode == "top1" else None)
    packed_ids = torch.tensor([[5, 6, 7, 8, 9, 10, 11, 12, 13, 0]])
    seq_index = torch.tensor([[0, 0, 0, 0, 0, 0, 1, 1, 1, -1]])
    positions = torch.tensor([[0, 1, 2, 3, 4, 5, 0, 1, 2, 0]])
    padded = seq(input_ids=IDS, attention_mask=MASK).logits
    packed = seq(input_ids=packed_ids, seq_index=seq_index, position_ids=positions).logits
    torch.testing.assert_close(packed, padded, atol=2e-5, rtol=1e-4)
    padded_tok = tok(input_ids=IDS, attention_mask=MASK).logits
    packed_tok = tok(input_ids=packed_ids, seq_index=seq_index, position_ids=positions).logits
    torch.testing.assert_close(packed_tok[0, :6], padded_tok[0], atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(packed_tok[0, 6:9], padded_tok[1, :3], atol=2e-5, rtol=1e-4)


def test_save_and_load_restore_identical_logits_pooling_and_attention(tmp_path):
    model = seq_model(cls=UnmaskingLlamaForSequenceClassification)
    model.set_pooling("max")
    model.config.id2label = {0: "a", 1: "b", 2: "c"}
    model.save_pretrained(tmp_path)
    loaded = LSForSequenceClassification.from_pretrained(tmp_path).eval()
    assert loaded.pooling == "max" and loaded.config.lsllm_bidirectional
    assert loaded.config.id2label == {0: "a", 1: "b", 2: "c"}
    assert loaded.config.lsllm_source["kind"] == "local"
    torch.testing.assert_close(loaded(input_ids=IDS, attention_mask=MASK).logits, model(input_ids=IDS, attention_mask=MASK).logits)


def test_original_api_from_pretrained_with_label_maps(tmp_path):
    torch.manual_seed(0)
    transformers.LlamaModel(tiny_config("llama")).save_pretrained(tmp_path)  # a plain backbone checkpoint
    id2label = {0: "negative", 1: "positive"}
    model = UnmaskingLlamaForSequenceClassification.from_pretrained(
        tmp_path, num_labels=2, id2label=id2label, label2id={v: k for k, v in id2label.items()}
    ).bfloat16()
    assert model.pooling == "mean" and not model.config.is_causal
    assert model.score.weight.dtype == torch.float32 and model.model.embed_tokens.weight.dtype == torch.bfloat16
    logits = model(input_ids=IDS, attention_mask=MASK).logits
    assert logits.dtype == torch.float32 and torch.isfinite(logits).all() and logits.shape == (2, 2)
    tokens = UnmaskingLlamaForTokenClassification.from_pretrained(tmp_path, num_labels=9)
    assert not tokens.config.is_causal and tokens.score.out_features == 9
    causal = LlamaForSequenceClassification.from_pretrained(tmp_path, num_labels=2)
    assert causal.pooling == "last" and causal.config.is_causal


def test_constructing_from_a_config_leaves_the_callers_config_alone():
    config = tiny_config("llama", num_labels=2)
    LSForSequenceClassification(config)
    unmasked = UnmaskingLlamaForSequenceClassification(config)
    assert unmasked.config.lsllm_bidirectional and not hasattr(config, "lsllm_bidirectional")
