"""Sentence pairs and the new targets through encoding and collation (bpe_tokenizer from tests/data/conftest.py)."""

from __future__ import annotations

import torch

from lsllm.data import Collator, SeqExample
from lsllm.data.encoding import apply_prompt, encode_sequences, pair_prompt, render, special_tokens
from lsllm.data.packing import PackingCollator
from lsllm.problems import MultiLabel, Regression

LABEL2ID = {"entailment": 0, "contradiction": 1}
PROMPT = "Premise: {premise}\nHypothesis: {hypothesis}\nAnswer:"


def pair(premise: str, hypothesis: str, label=None) -> SeqExample:
    fields = {"premise": premise, "hypothesis": hypothesis}
    return SeqExample("\n".join(f"{k}: {v}" for k, v in fields.items()), label, fields)


def decoded(tokenizer, feature) -> str:
    return tokenizer.decode(feature["input_ids"][len(special_tokens(tokenizer)):])


def test_fields_stay_apart_in_the_prompt_and_by_default(bpe_tokenizer):
    ex = pair("A man sleeps.", "Nobody sleeps.", "contradiction")
    [feature] = encode_sequences([ex], bpe_tokenizer, LABEL2ID, 64, PROMPT).features
    assert decoded(bpe_tokenizer, feature) == "Premise: A man sleeps.\nHypothesis: Nobody sleeps.\nAnswer:"
    assert feature["labels"] == 1
    [plain] = encode_sequences([ex], bpe_tokenizer, LABEL2ID, 64).features
    assert decoded(bpe_tokenizer, plain) == "premise: A man sleeps.\nhypothesis: Nobody sleeps."
    assert pair_prompt(["a", "b"]) == "a: {a}\nb: {b}"


def test_a_field_holding_braces_is_not_read_as_a_field():
    assert render(PROMPT, {"premise": "{hypothesis}", "hypothesis": "x"}) == "Premise: {hypothesis}\nHypothesis: x\nAnswer:"
    assert apply_prompt(PROMPT, {"premise": "p", "hypothesis": "h"}) == "Premise: p\nHypothesis: h\nAnswer:"


def test_truncation_cuts_the_longest_field_first_and_keeps_the_prompt_end(bpe_tokenizer):
    long, short = "word " * 200, "a short hypothesis"
    split = encode_sequences([pair(long.strip(), short)], bpe_tokenizer, LABEL2ID, 64, PROMPT)
    [feature] = split.features
    text = decoded(bpe_tokenizer, feature)
    assert split.n_truncated == 1 and len(feature["input_ids"]) <= 64
    assert text.endswith(f"\nHypothesis: {short}\nAnswer:") and text.startswith("Premise: word word")
    both = encode_sequences([pair(long.strip(), ("other " * 200).strip())], bpe_tokenizer, LABEL2ID, 64, PROMPT).features[0]
    text = decoded(bpe_tokenizer, both)
    assert text.endswith("\nAnswer:") and 0.5 < text.count("word") / max(1, text.count("other")) < 2  # cut evenly


def test_multi_label_and_regression_targets_collate_as_floats(bpe_tokenizer):
    label2id = {"anger": 0, "joy": 1, "love": 2}
    multi = encode_sequences([SeqExample("so happy", ["joy", "love"]), SeqExample("meh", [])], bpe_tokenizer, label2id, 32)
    assert [f["labels"] for f in multi.features] == [[0.0, 1.0, 1.0], [0.0, 0.0, 0.0]]
    for collate in (Collator(0), PackingCollator(MultiLabel().packed_targets)):
        labels = collate(multi.features)["labels"]
        assert labels.dtype == torch.float32 and labels.shape == (2, 3)
    scores = encode_sequences([SeqExample("a", 4.2), SeqExample("b", 0.0)], bpe_tokenizer, {"score": 0}, 32)
    for collate in (Collator(0), PackingCollator(Regression().packed_targets)):
        labels = collate(scores.features)["labels"]
        assert labels.dtype == torch.float32 and labels.tolist() == [4.199999809265137, 0.0]
    single = encode_sequences([SeqExample("a", "joy")], bpe_tokenizer, label2id, 32)
    assert Collator(0)(single.features)["labels"].dtype == torch.long
