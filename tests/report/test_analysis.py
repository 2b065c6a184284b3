"""What the report computes from a run's files: NER span alignment, errors, the confusion matrix, formats."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from seqeval.metrics import f1_score

from lsllm.report.analysis import IRREGULAR, align, confusion, duration, percent, seq_errors, spans
from lsllm.report.collect import Curves, Run


def test_align_marks_each_kind_of_ner_mistake():
    #        0      1      2    3      4      5
    gold = ["B-PER", "I-PER", "O", "B-LOC", "B-ORG", "O"]
    pred = ["B-PER", "I-PER", "O", "O", "B-MISC", "B-MISC"]
    gold_spans, pred_spans = align(spans(gold), spans(pred))
    assert [(s.type, s.start, s.end, s.status, s.other) for s in gold_spans] == [
        ("PER", 0, 2, "correct", None), ("LOC", 3, 4, "missed", None), ("ORG", 4, 5, "wrong-type", "MISC")]
    assert [(s.type, s.start, s.end, s.status, s.other) for s in pred_spans] == [
        ("PER", 0, 2, "correct", None), ("MISC", 4, 5, "wrong-type", "ORG"), ("MISC", 5, 6, "spurious", None)]


def test_spans_read_tags_as_the_metric_does():
    # seqeval's default mode (conlleval): an I- after O starts an entity; a boundary error is two mistakes.
    assert spans(["O", "I-ORG", "I-ORG", "O"]) == [("ORG", 1, 3)]
    gold_spans, pred_spans = align(spans(["B-PER", "I-PER"]), spans(["O", "B-PER"]))
    assert [s.status for s in gold_spans] == ["missed"] and [s.status for s in pred_spans] == ["spurious"]


TAGS = st.sampled_from(["O", "B-PER", "I-PER", "B-LOC", "I-LOC"])


@pytest.mark.filterwarnings("ignore::UserWarning")  # seqeval warns on pairs without any entity (F1 0 by definition)
@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(TAGS, min_size=1, max_size=8).flatmap(
    lambda g: st.tuples(st.just(g), st.lists(TAGS, min_size=len(g), max_size=len(g)))), min_size=1, max_size=4))
def test_the_spans_shown_as_correct_are_the_true_positives_of_the_entity_f1(pairs):
    tp = n_gold = n_pred = 0
    for gold, pred in pairs:
        gold_spans, pred_spans = align(spans(gold), spans(pred))
        assert sum(s.status == "correct" for s in gold_spans) == sum(s.status == "correct" for s in pred_spans)
        tp += sum(s.status == "correct" for s in pred_spans)
        n_gold, n_pred = n_gold + len(gold_spans), n_pred + len(pred_spans)
    expected = f1_score([g for g, _ in pairs], [p for _, p in pairs])
    assert (2 * tp / (n_gold + n_pred) if n_gold + n_pred else 0.0) == pytest.approx(expected)


def _run(predictions, kind="ls") -> Run:
    return Run(root=Path("r"), kind=kind, method="LS-LLM", task="seq", config={}, info={}, record={}, metrics={},
               predictions=predictions, predictions_split="test", curves=Curves("accuracy"))


def test_seq_errors_are_the_wrong_ones_most_confident_first():
    records = [
        {"text": "a", "label": "pos", "score": 0.6, "probabilities": {"pos": 0.6, "neg": 0.4}, "gold": "neg"},
        {"text": "b", "label": "pos", "score": 0.9, "probabilities": {"pos": 0.9, "neg": 0.1}, "gold": "pos"},
        {"text": "c", "label": "neg", "score": 0.8, "probabilities": {"pos": 0.2, "neg": 0.8}, "gold": "pos"},
    ]
    errors = seq_errors(_run(records))
    assert [(e.text, e.gold, e.predicted, e.confidence) for e in errors] == [("c", "pos", "neg", 0.8), ("a", "neg", "pos", 0.6)]
    assert errors[0].probabilities == [("neg", 0.8), ("pos", 0.2)] and errors[0].index == 2


def test_sft_irregular_answers_are_errors_with_their_raw_output():
    records = [{"text": "a", "label": None, "gold": "pos", "raw_output": "maybe?", "irregular": True},
               {"text": "b", "label": "pos", "gold": "pos", "raw_output": "pos", "irregular": False}]
    (error,) = seq_errors(_run(records, kind="sft"))
    assert (error.predicted, error.raw_output, error.confidence) == (IRREGULAR, "maybe?", None)


def test_confusion_totals_and_shades():
    cm = confusion({"confusion_matrix": {"labels": ["a", "b"], "matrix": [[5, 1], [2, 0]]}})
    assert cm["row_totals"] == [6, 2] and cm["column_totals"] == [7, 1] and cm["total"] == 8
    assert cm["cells"][0][0]["diagonal"] and not cm["cells"][0][1]["diagonal"]
    assert cm["cells"][0][0]["shade"]["fg"] == "#ffffff" and cm["cells"][1][1]["shade"]["fg"] == "#111111"
    assert confusion({}) is None


@pytest.mark.parametrize(("seconds", "shown"), [(None, "-"), (5.04, "5.0 s"), (231.4, "3 min 51 s"), (5400, "1 h 30 min")])
def test_duration(seconds, shown):
    assert duration(seconds) == shown


def test_percent():
    assert (percent(0.583333), percent(1), percent(None), percent(True)) == ("58.33", "100.00", "-", "-")
