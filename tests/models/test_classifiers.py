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


MODES = {"causal": (False, None, False), "bidirectional": (True, None, False), "top1": (True, 1, False),
         "repeat": (False, None, True)}  # (bidirectional, unmask_layers, repeat)


def set_mode(model, mode: str) -> None:
    bidirectional, unmask_layers, repeat = MODES[mode]
    model.set_attention(bidirectional, unmask_layers, repeat=repeat)


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


@pytest.mark.parametrize("mode", ["causal", "bidirectional", "repeat"])
@pytest.mark.parametrize("pooling", ["last", "mean", "max"])
def test_pooled_logits_do_not_depend_on_padding_side_or_amount(family, mode, pooling):
    model = seq_model(family)
    set_mode(model, mode)
    model.set_pooling(pooling)
    alone = model(input_ids=IDS[1:, :3]).logits
    right = model(input_ids=IDS, attention_mask=MASK).logits[1]
    left_ids = torch.tensor([[0, 0, 0, 0, 11, 12, 13]])
    left = model(input_ids=left_ids, attention_mask=(left_ids != 0).long()).logits[0]
    torch.testing.assert_close(right, alone[0], atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(left, alone[0], atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("mode", list(MODES))
def test_packed_rows_give_the_same_logits_as_padded_batches(family, mode):
    seq = seq_model(family)
    torch.manual_seed(0)
    tok = LSForTokenClassification(tiny_config(family, num_labels=4)).eval()
    for model in (seq, tok):
        set_mode(model, mode)
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


def _packed_and_padded(rows: list[list[int]], vocab: int = 90):
    """Examples of the given lengths, packed into rows (padding only at row ends) and padded one per row."""
    gen = torch.Generator().manual_seed(1)
    examples = [torch.randint(1, vocab, (n,), generator=gen) for row in rows for n in row]
    labels = [torch.randint(0, 4, (len(e),), generator=gen) for e in examples]
    width = max(sum(row) for row in rows)
    packed = {k: torch.full((len(rows), width), fill, dtype=torch.long)
              for k, fill in (("input_ids", 0), ("seq_index", -1), ("position_ids", 0), ("labels", -100))}
    example = 0
    for r, row in enumerate(rows):
        start = 0
        for n in row:
            end = start + n
            packed["input_ids"][r, start:end] = examples[example]
            packed["labels"][r, start:end] = labels[example]
            packed["seq_index"][r, start:end] = example
            packed["position_ids"][r, start:end] = torch.arange(n)
            example, start = example + 1, end
    longest = max(len(e) for e in examples)
    padded = {"input_ids": torch.zeros(len(examples), longest, dtype=torch.long),
              "attention_mask": torch.zeros(len(examples), longest, dtype=torch.long),
              "labels": torch.full((len(examples), longest), -100, dtype=torch.long)}
    for i, (e, y) in enumerate(zip(examples, labels, strict=True)):
        padded["input_ids"][i, :len(e)], padded["attention_mask"][i, :len(e)], padded["labels"][i, :len(e)] = e, 1, y
    return packed, padded


def _logits_and_grads(model, batch):
    model.zero_grad()
    out = model(**batch)
    out.loss.backward()
    return out.logits, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("mode", list(MODES))
def test_per_example_attention_of_packed_rows_gives_padded_logits_and_gradients(family, mode):
    """Several rows, runs of equal lengths (one SDPA call each), a padding tail: training on packed rows
    computes what training on padded rows computes, loss gradients included."""
    torch.manual_seed(0)
    model = LSForTokenClassification(tiny_config(family, num_labels=4, classifier_dropout=0.0)).train()
    set_mode(model, mode)
    packed, padded = _packed_and_padded([[3, 3, 3, 5, 1], [7, 2, 2]])
    packed_logits, packed_grads = _logits_and_grads(model, packed)
    padded_logits, padded_grads = _logits_and_grads(model, padded)
    real = padded["attention_mask"].bool()
    torch.testing.assert_close(packed_logits[packed["seq_index"] >= 0], padded_logits[real], atol=2e-5, rtol=1e-4)
    assert packed_grads.keys() == padded_grads.keys()
    for name, grad in packed_grads.items():
        torch.testing.assert_close(grad, padded_grads[name], atol=1e-5, rtol=1e-4, msg=name)


@pytest.mark.parametrize("mode", ["causal", "bidirectional", "repeat"])
def test_packed_rows_keep_sliding_windows_shorter_than_an_example(mode):
    torch.manual_seed(0)
    model = LSForTokenClassification(tiny_config("mistral", num_labels=4, sliding_window=2)).eval()
    set_mode(model, mode)
    packed, padded = _packed_and_padded([[6, 2, 4]])
    with torch.no_grad():
        packed_logits = model(**packed).logits
        padded_logits = model(**padded).logits
        unwindowed = LSForTokenClassification(tiny_config("mistral", num_labels=4, sliding_window=64)).eval()
        unwindowed.load_state_dict(model.state_dict())
        set_mode(unwindowed, mode)
        assert not torch.allclose(unwindowed(**padded).logits, padded_logits, atol=1e-3)  # the window matters here
    torch.testing.assert_close(packed_logits[packed["seq_index"] >= 0], padded_logits[padded["attention_mask"].bool()],
                               atol=2e-5, rtol=1e-4)


def test_bf16_packed_training_matches_padded_within_bf16_tolerance():
    """In bf16 the packed path computes attention in fp32 on CPU; logits agree to bf16 precision."""
    torch.manual_seed(0)
    model = LSForTokenClassification(tiny_config("llama", num_labels=4, classifier_dropout=0.0)).bfloat16().train()
    packed, padded = _packed_and_padded([[3, 3, 5, 4]])
    packed_logits, _ = _logits_and_grads(model, packed)
    padded_logits, _ = _logits_and_grads(model, padded)
    real = padded["attention_mask"].bool()
    torch.testing.assert_close(packed_logits[packed["seq_index"] >= 0], padded_logits[real], atol=3e-2, rtol=3e-2)
    assert torch.equal(packed_logits[packed["seq_index"] >= 0].argmax(-1), padded_logits[real].argmax(-1))


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


def test_the_loss_is_the_one_passed_in_and_otherwise_transformers_own_for_the_head():
    model = seq_model()
    labels = torch.tensor([0, 2])
    out = model(input_ids=IDS, attention_mask=MASK, labels=labels)
    torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(out.logits, labels))  # a stock head's
    model.set_loss(lambda logits, targets: (logits[:, 0] * 0 + targets.float()).sum())
    assert model(input_ids=IDS, attention_mask=MASK, labels=labels).loss.item() == 2.0
    assert model(input_ids=IDS, attention_mask=MASK).loss is None
