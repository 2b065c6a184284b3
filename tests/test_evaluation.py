"""Metrics against hand-computed examples, in the schema of docs/metrics.md."""

from __future__ import annotations

import json

import pytest

from lsllm.evaluation import seq_metrics, seq_report_text, token_metrics, token_report_text


def test_seq_metrics_by_hand():
    # gold a a b c / pred a b b b, labels a b c
    #   a: TP 1, FP 0, FN 1 -> P 1,   R 1/2, F1 2/3   (support 2)
    #   b: TP 1, FP 2, FN 0 -> P 1/3, R 1,   F1 1/2   (support 1)
    #   c: TP 0, FP 0, FN 1 -> P 0,   R 0,   F1 0     (support 1; 0/0 precision counts as 0)
    #   accuracy 2/4; macro F1 (2/3 + 1/2 + 0) / 3 = 7/18; weighted (2*2/3 + 1/2 + 0) / 4 = 11/24
    m = seq_metrics(["a", "a", "b", "c"], ["a", "b", "b", "b"], ["a", "b", "c"], n_truncated=3)
    assert m["accuracy"] == pytest.approx(0.5)
    assert m["f1_macro"] == pytest.approx(7 / 18)
    assert m["f1_weighted"] == pytest.approx(11 / 24)
    assert m["per_class"]["a"] == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2})
    assert m["per_class"]["b"] == pytest.approx({"precision": 1 / 3, "recall": 1.0, "f1": 0.5, "support": 1})
    assert m["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert m["confusion_matrix"] == {"labels": ["a", "b", "c"], "matrix": [[1, 1, 0], [0, 1, 0], [0, 1, 0]]}
    assert (m["n_examples"], m["n_truncated"]) == (4, 3)
    json.dumps(m)  # plain Python types only


def test_seq_macro_counts_classes_never_seen():
    # "c" is in the label set but neither gold nor predicted: its F1 0 pulls the macro average down
    m = seq_metrics(["a", "b"], ["a", "b"], ["a", "b", "c"])
    assert m["accuracy"] == 1.0 and m["f1_macro"] == pytest.approx(2 / 3)
    assert set(m) == {"accuracy", "f1_macro", "f1_weighted", "per_class", "confusion_matrix", "n_examples", "n_truncated"}


def test_token_metrics_by_hand():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "O"], ["I-ORG", "O"]]
    # default mode: predicted entities PER(0-1) and ORG(0) (an I- after nothing starts one) are both
    # right; gold has 3 -> P 2/2, R 2/3, F1 0.8
    # strict IOB2: "I-ORG" at the start is no entity -> P 1/1, R 1/3, F1 0.5
    # token accuracy: 4 of 6 tags right
    m = token_metrics(gold, pred, n_truncated=0)
    assert m["precision"] == pytest.approx(1.0)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(0.8)
    assert m["f1_strict"] == pytest.approx(0.5)
    assert m["token_accuracy"] == pytest.approx(4 / 6)
    assert m["per_type"] == {
        "LOC": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1},
        "ORG": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1},
        "PER": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1},
    }
    assert (m["n_examples"], m["n_truncated"]) == (2, 0)
    json.dumps(m)


def test_all_values_are_fractions():
    m = token_metrics([["B-X", "I-X", "O"]], [["B-X", "O", "B-Y"]])
    for key in ("f1", "precision", "recall", "f1_strict", "token_accuracy"):
        assert 0.0 <= m[key] <= 1.0
    s = seq_metrics(["a", "b", "b"], ["b", "b", "a"], ["a", "b"])
    assert all(0.0 <= s[k] <= 1.0 for k in ("accuracy", "f1_macro", "f1_weighted"))


def test_mismatched_inputs_raise():
    with pytest.raises(ValueError, match="2 gold labels but 1 predictions"):
        seq_metrics(["a", "b"], ["a"], ["a", "b"])
    with pytest.raises(ValueError, match="sentence 0: 2 gold tags but 1 predicted"):
        token_metrics([["O", "O"]], [["O"]])
    with pytest.raises(ValueError, match="no examples"):
        token_metrics([], [])


def test_classification_reports():
    seq = seq_report_text(["a", "a"], ["a", "a"], ["a", "b"])
    assert "a" in seq and "\n           b     0.0000    0.0000    0.0000         0" in seq
    tok = token_report_text([["B-PER", "O"]], [["B-PER", "O"]])
    assert "PER     1.0000    1.0000    1.0000         1" in tok


def test_token_f1_is_conlleval_span_f1_for_i_starts_and_type_changes():
    # conlleval: an I- tag after O starts a chunk; a type change inside a span ends one chunk and starts another.
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "I-ORG", "I-ORG"]]
    pred = [["I-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "I-LOC", "I-LOC"]]
    m = token_metrics(gold, pred)
    # gold chunks PER(0-1) LOC(3) ORG(0-2); predicted PER(0-1) LOC(3) ORG(0) LOC(1-2): 2 of 4 right, 2 of 3 found
    assert m["precision"] == pytest.approx(2 / 4) and m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 * (1 / 2) * (2 / 3) / (1 / 2 + 2 / 3))
    assert m["per_type"]["PER"]["f1"] == pytest.approx(1.0) and m["per_type"]["ORG"]["f1"] == pytest.approx(0.0)
    # IOB2 strict (f1_strict) takes no entity from an I- start: predicted LOC(3) ORG(0), 1 right of 2, 1 of 3 found
    assert m["f1_strict"] == pytest.approx(2 * (1 / 2) * (1 / 3) / (1 / 2 + 1 / 3))
