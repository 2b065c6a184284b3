"""Metrics in one schema for every task, computed by scikit-learn and seqeval.

Schema (fractions in [0, 1], no `eval_` prefix; see docs/metrics.md):
  seq:   accuracy, f1_macro, f1_weighted, per_class {label: {precision, recall, f1, support}},
         confusion_matrix {labels, matrix}  (rows = gold, columns = predicted)
  token: f1, precision, recall (seqeval entity-level micro, default mode), f1_strict (IOB2
         strict mode), token_accuracy, per_type {type: {precision, recall, f1, support}}
  multi-label: jaccard, f1_micro, f1_macro, subset_accuracy, per_label, thresholds
  regression:  pearson, spearman, mse, mae
  all:   n_examples, n_truncated
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from seqeval import metrics as seqeval_metrics
from seqeval.scheme import IOB2
from sklearn import metrics as sk_metrics

from lsllm.errors import DataError

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


# ----------------------------------------------------------------------------- multi-label and regression


def _multi_hot(gold: Sequence[Sequence[str]], labels: Sequence[str]) -> np.ndarray:
    index = {label: i for i, label in enumerate(labels)}
    out = np.zeros((len(gold), len(labels)), dtype=int)
    for row, names in enumerate(gold):
        for name in names:
            if name not in index:
                raise DataError(f"label {name!r} is not one of the run's labels ({', '.join(labels)})")
            out[row, index[name]] = 1
    return out


def jaccard(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Mean over examples of |gold ∩ predicted| / |gold ∪ predicted|; an example with both empty scores 1 (SemEval-2018 E-c)."""
    inter = (truth & predicted).sum(1)
    union = (truth | predicted).sum(1)
    return float(np.where(union == 0, 1.0, inter / np.maximum(union, 1)).mean()) if len(truth) else 0.0


def multilabel_metrics(truth: np.ndarray, predicted: np.ndarray, labels: Sequence[str], n_truncated: int = 0,
                       thresholds: list[float] | None = None) -> dict[str, Any]:
    """Jaccard (the E-c metric), micro/macro F1, subset accuracy and per-label precision/recall/F1/support."""
    from sklearn import metrics as sk

    if len(truth) == 0:
        raise ValueError("no examples to score")
    precision, recall, f1, support = sk.precision_recall_fscore_support(truth, predicted, average=None, zero_division=0,
                                                                        labels=list(range(len(labels))))
    return {
        "jaccard": jaccard(truth, predicted),
        "f1_micro": float(sk.f1_score(truth, predicted, average="micro", zero_division=0)),
        "f1_macro": float(sk.f1_score(truth, predicted, average="macro", zero_division=0)),
        "subset_accuracy": float((truth == predicted).all(1).mean()),
        "per_label": {label: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
                      for label, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)},
        "thresholds": thresholds,
        "n_examples": int(len(truth)),
        "n_truncated": n_truncated,
    }


def regression_metrics(gold: Sequence[float], predicted: Sequence[float], n_truncated: int = 0) -> dict[str, Any]:
    """Pearson and Spearman correlation, MSE and MAE (0 correlation where either side is constant)."""
    from scipy import stats

    if not gold:
        raise ValueError("no examples to score")
    g, p = np.asarray(gold, dtype=np.float64), np.asarray(predicted, dtype=np.float64)
    constant = len(g) < 2 or float(g.std()) == 0.0 or float(p.std()) == 0.0
    pearson = 0.0 if constant else float(stats.pearsonr(g, p)[0])
    spearman = 0.0 if constant else float(stats.spearmanr(g, p)[0])
    return {
        "pearson": pearson if math.isfinite(pearson) else 0.0,
        "spearman": spearman if math.isfinite(spearman) else 0.0,
        "mse": float(((g - p) ** 2).mean()),
        "mae": float(np.abs(g - p).mean()),
        "n_examples": int(len(g)),
        "n_truncated": n_truncated,
    }
