"""Metrics in one schema for every task, computed by scikit-learn and seqeval.

Schema (fractions in [0, 1], no `eval_` prefix; see docs/metrics.md):
  seq:   accuracy, f1_macro, f1_weighted, per_class {label: {precision, recall, f1, support}},
         confusion_matrix {labels, matrix}  (rows = gold, columns = predicted)
  token: f1, precision, recall (seqeval entity-level micro, default mode), f1_strict (IOB2
         strict mode), token_accuracy, per_type {type: {precision, recall, f1, support}}
  both:  n_examples, n_truncated
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from seqeval import metrics as seqeval_metrics
from seqeval.scheme import IOB2
from sklearn import metrics as sk_metrics

_AVERAGES = ("micro avg", "macro avg", "weighted avg")


def _check_lengths(y_true: Sequence, y_pred: Sequence) -> None:
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} gold labels but {len(y_pred)} predictions")
    if not y_true:
        raise ValueError("no examples to score")


def seq_metrics(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str], n_truncated: int = 0) -> dict[str, Any]:
    """Sequence-classification metrics.

    Macro and weighted F1 average over `labels` (the whole label set, so a class the model
    never predicts counts as F1 0 rather than disappearing); undefined precision/recall are 0.

    Args:
        y_true: gold label names.
        y_pred: predicted label names.
        labels: the label set in id order (row/column order of the confusion matrix).
        n_truncated: inputs cut by max_length (from encoding), reported alongside.

    Example:
        >>> seq_metrics(["a", "b"], ["a", "a"], ["a", "b"])["accuracy"]
        0.5
    """
    _check_lengths(y_true, y_pred)
    labels = list(labels)
    precision, recall, f1, support = sk_metrics.precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average=None, zero_division=0
    )
    matrix = sk_metrics.confusion_matrix(y_true, y_pred, labels=labels)
    return {
        "accuracy": float(sk_metrics.accuracy_score(y_true, y_pred)),
        "f1_macro": float(sk_metrics.f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "f1_weighted": float(sk_metrics.f1_score(y_true, y_pred, labels=labels, average="weighted", zero_division=0)),
        "per_class": {
            label: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for label, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)
        },
        "confusion_matrix": {"labels": labels, "matrix": matrix.tolist()},
        "n_examples": len(y_true),
        "n_truncated": int(n_truncated),
    }


def token_metrics(y_true: Sequence[Sequence[str]], y_pred: Sequence[Sequence[str]], n_truncated: int = 0) -> dict[str, Any]:
    """Token-classification (NER) metrics over BIO tag sequences, one list per sentence.

    `f1`/`precision`/`recall` are seqeval's entity-level micro averages in its default
    (CoNLL-eval compatible) mode, where an I- tag after O starts an entity; `f1_strict` uses
    mode="strict" with scheme IOB2, where such an entity does not count. `token_accuracy`
    is the fraction of words whose tag is right (O included).

    Args:
        y_true: gold tags per sentence.
        y_pred: predicted tags per sentence (same lengths).
        n_truncated: words without a prediction of their own (from encoding), reported.
    """
    _check_lengths(y_true, y_pred)
    y_true, y_pred = [list(s) for s in y_true], [list(s) for s in y_pred]
    for i, (gold, pred) in enumerate(zip(y_true, y_pred, strict=True)):
        if len(gold) != len(pred):
            raise ValueError(f"sentence {i}: {len(gold)} gold tags but {len(pred)} predicted")
    report = seqeval_metrics.classification_report(y_true, y_pred, output_dict=True, zero_division=0)
    return {
        "f1": float(seqeval_metrics.f1_score(y_true, y_pred, zero_division=0)),
        "precision": float(seqeval_metrics.precision_score(y_true, y_pred, zero_division=0)),
        "recall": float(seqeval_metrics.recall_score(y_true, y_pred, zero_division=0)),
        "f1_strict": float(seqeval_metrics.f1_score(y_true, y_pred, mode="strict", scheme=IOB2, zero_division=0)),
        "token_accuracy": float(seqeval_metrics.accuracy_score(y_true, y_pred)),
        "per_type": {
            kind: {
                "precision": float(row["precision"]), "recall": float(row["recall"]),
                "f1": float(row["f1-score"]), "support": int(row["support"]),
            }  # fmt: skip
            for kind, row in sorted(report.items())
            if kind not in _AVERAGES
        },
        "n_examples": len(y_true),
        "n_truncated": int(n_truncated),
    }


def seq_report_text(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str] | None = None,
                    digits: int = 4) -> str:
    """report.txt's per-class table of a sequence task: scikit-learn's report over `labels` (every class listed)."""
    _check_lengths(y_true, y_pred)
    return sk_metrics.classification_report(y_true, y_pred, labels=list(labels) if labels else None, digits=digits,
                                            zero_division=0)


def token_report_text(y_true: Sequence[Sequence[str]], y_pred: Sequence[Sequence[str]], digits: int = 4) -> str:
    """report.txt's table of a token task: seqeval's entity-level report per type, from tag sequences."""
    _check_lengths(y_true, y_pred)
    return seqeval_metrics.classification_report([list(s) for s in y_true], [list(s) for s in y_pred], digits=digits,
                                                 zero_division=0)
