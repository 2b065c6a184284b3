"""The problem type of a sequence task, as one small object: single-label, multi-label or regression.

The loss, the head's width, the decision, the metrics, the prediction records and what a saved
model must remember all differ by problem type, and by nothing else. Each layer asks the
run's `Problem` instead of testing a name (the way transformers' `problem_type` picks a loss):

    problem = make_problem("multi-label", state=info.get("problem_state"))
    loss = problem.loss(logits, targets)                  # CE | BCE | MSE on standardised targets
    outputs = problem.outputs(logits)                     # softmax | sigmoid | values in the original scale
    record = problem.record(outputs[i], labels)           # {"label"...} | {"labels"...} | {"value"}
    metrics = problem.metrics(gold, outputs, labels)      # accuracy/F1 | Jaccard/F1 | Pearson/Spearman

Token tasks (NER) are single-label per word and keep their own metrics (evaluation.token_metrics).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from lsllm.config import PROBLEMS
from lsllm.config import THRESHOLD_MODES as THRESHOLDS
from lsllm.errors import ConfigError, DataError
from lsllm.evaluation import classification_report_text, seq_metrics


class Problem:
    """What one problem type means for the head, the loss, the decision and the metrics."""

    name: ClassVar[str]
    hf_problem_type: ClassVar[str]  # transformers' config.problem_type, so a merged model runs in a stock pipeline
    selection: ClassVar[str]  # the validation metric that selects the checkpoint
    headline: ClassVar[tuple[str, ...]]  # the metrics of the terminal table and the model card

    def n_outputs(self, labels: Sequence[str]) -> int:
        return len(labels)

    def target(self, label: Any, label2id: dict[str, int]) -> Any:
        """The model's training target for one example's label (ints, multi-hot floats, or a number)."""
        raise NotImplementedError

    def loss(self, logits: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def outputs(self, logits: torch.Tensor) -> torch.Tensor:
        """(N, K) logits -> what predictions are made of: probabilities, or values in the original scale."""
        raise NotImplementedError

    def record(self, output: torch.Tensor, labels: Sequence[str]) -> dict[str, Any]:
        raise NotImplementedError

    def prediction(self, record: dict[str, Any]) -> Any:
        """The decided value of a record (compared with the gold label)."""
        raise NotImplementedError

    def metrics(self, gold: Sequence[Any], outputs: Sequence[torch.Tensor], labels: Sequence[str],
                n_truncated: int = 0) -> dict[str, Any]:
        raise NotImplementedError

    def report_text(self, gold: Sequence[Any], predicted: Sequence[Any], labels: Sequence[str]) -> str:
        """The human-readable table of report.txt for gold vs decided values."""
        raise NotImplementedError

    def fit(self, train_targets: Sequence[Any]) -> None:
        """Learn what the problem needs from the training targets (regression: their scale)."""

    def tune(self, gold: Sequence[Any], outputs: Sequence[torch.Tensor], labels: Sequence[str]) -> None:
        """Choose decision settings on validation (multi-label: the thresholds)."""

    def state(self) -> dict[str, Any]:
        """What a saved model must remember to decide as it was validated (in lsllm.json)."""
        return {}


class SingleLabel(Problem):
    """One class per input: softmax over the labels, cross-entropy, argmax."""

    name = "single-label"
    hf_problem_type = "single_label_classification"
    selection = "accuracy"
    headline = ("accuracy", "f1_macro", "f1_weighted")

    def target(self, label: Any, label2id: dict[str, int]) -> int:
        return label2id[label]

    def loss(self, logits, targets, weight=None):
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), weight=weight, ignore_index=-100)

    def outputs(self, logits):
        return logits.float().softmax(-1)

    def record(self, output, labels):
        best = int(output.argmax())
        return {"label": labels[best], "score": round(float(output[best]), 6),
                "probabilities": {label: round(float(v), 6) for label, v in zip(labels, output.tolist(), strict=True)}}

    def prediction(self, record):
        return record["label"]

    def metrics(self, gold, outputs, labels, n_truncated=0):
        predicted = [labels[int(o.argmax())] for o in outputs]
        return seq_metrics(list(gold), predicted, labels, n_truncated=n_truncated)

    def report_text(self, gold, predicted, labels):
        return classification_report_text("seq", list(gold), list(predicted), labels)


class MultiLabel(Problem):
    """Any number of labels per input (none included): a sigmoid per label, BCE, thresholds tuned on validation."""

    name = "multi-label"
    hf_problem_type = "multi_label_classification"
    selection = "jaccard"
    headline = ("jaccard", "f1_micro", "f1_macro", "subset_accuracy")

    def __init__(self, thresholds: list[float] | None = None, mode: str = "global") -> None:
        if mode not in THRESHOLDS:
            raise ConfigError(f"--thresholds must be {' or '.join(THRESHOLDS)}, got {mode!r}")
        self.thresholds = thresholds  # one per label; None: 0.5 (no validation data to tune on)
        self.mode = mode

    def target(self, label, label2id):
        hot = [0.0] * len(label2id)
        for name in label:
            hot[label2id[name]] = 1.0
        return hot

    def loss(self, logits, targets, weight=None):
        return F.binary_cross_entropy_with_logits(logits.float(), targets.float(), pos_weight=weight)

    def outputs(self, logits):
        return logits.float().sigmoid()

    def _cut(self, n: int) -> torch.Tensor:
        return torch.tensor(self.thresholds if self.thresholds is not None else [0.5] * n)

    def record(self, output, labels):
        chosen = output >= self._cut(len(labels))
        return {"labels": [label for label, on in zip(labels, chosen.tolist(), strict=True) if on],
                "probabilities": {label: round(float(v), 6) for label, v in zip(labels, output.tolist(), strict=True)}}

    def prediction(self, record):
        return record["labels"]

    def metrics(self, gold, outputs, labels, n_truncated=0):
        probs = torch.stack(list(outputs)) if outputs else torch.zeros((0, len(labels)))
        predicted = (probs >= self._cut(len(labels))).numpy().astype(int)
        return multilabel_metrics(_multi_hot(gold, labels), predicted, labels, n_truncated,
                                  thresholds=list(self.thresholds) if self.thresholds is not None else [0.5] * len(labels))

    def report_text(self, gold, predicted, labels):
        from sklearn.metrics import classification_report

        return classification_report(_multi_hot(gold, labels), _multi_hot(predicted, labels), target_names=list(labels),
                                     digits=4, zero_division=0)

    def tune(self, gold, outputs, labels):
        """The threshold(s) that maximise validation Jaccard: one for all labels, or one per label (--thresholds)."""
        if not outputs:
            return
        probs = torch.stack(list(outputs)).numpy()
        truth = _multi_hot(gold, labels)
        grid = np.round(np.arange(0.05, 0.951, 0.025), 3)
        if self.mode == "global":
            scores = [jaccard(truth, (probs >= t).astype(int)) for t in grid]
            self.thresholds = [float(grid[int(np.argmax(scores))])] * len(labels)
            return
        cuts = np.full(len(labels), 0.5)
        for _ in range(2):  # coordinate ascent: each label's threshold given the others'
            for k in range(len(labels)):
                best, best_score = cuts[k], -1.0
                for t in grid:
                    cuts[k] = t
                    score = jaccard(truth, (probs >= cuts).astype(int))
                    if score > best_score:
                        best, best_score = t, score
                cuts[k] = best
        self.thresholds = [float(c) for c in cuts]

    def state(self):
        return {"thresholds": self.thresholds, "threshold_mode": self.mode}


class Regression(Problem):
    """One number per input: MSE on standardised targets, predictions in the original scale.

    Targets are scaled by the training set's standard deviation, not centred: transformers'
    stock sequence heads have no bias, and a merged model must give the same values in a stock
    pipeline, so the scale is folded into the head's weights when the model is saved
    (`fold_scale`) and the saved model outputs the original scale directly.
    """

    name = "regression"
    hf_problem_type = "regression"
    selection = "pearson"
    headline = ("pearson", "spearman", "mse", "mae")

    def __init__(self, scale: float = 1.0, mean: float | None = None, std: float | None = None) -> None:
        self.scale = scale  # model output x scale = value; 1 once folded into the head
        self.mean, self.std = mean, std  # of the training targets, for the record

    def n_outputs(self, labels):
        return 1

    def target(self, label, label2id):
        return float(label)

    def fit(self, train_targets):
        values = np.asarray([float(t) for t in train_targets], dtype=np.float64)
        if values.size == 0:
            return
        self.mean, self.std = float(values.mean()), float(values.std())
        self.scale = self.std if self.std > 0 else 1.0

    def loss(self, logits, targets, weight=None):
        return F.mse_loss(logits.float().reshape(-1), targets.float().reshape(-1) / self.scale)

    def outputs(self, logits):
        return logits.float() * self.scale

    def record(self, output, labels):
        return {"value": round(float(output.reshape(-1)[0]), 6)}

    def prediction(self, record):
        return record["value"]

    def metrics(self, gold, outputs, labels, n_truncated=0):
        values = [float(o.reshape(-1)[0]) for o in outputs]
        return regression_metrics([float(g) for g in gold], values, n_truncated)

    def report_text(self, gold, predicted, labels):
        m = regression_metrics([float(g) for g in gold], [float(p) for p in predicted])
        return "\n".join(f"{k:<10}{m[k]:.4f}" for k in self.headline) + f"\n{'n':<10}{m['n_examples']}\n"

    def fold_scale(self, model: torch.nn.Module) -> None:
        """Multiply the trained head `score` by the target scale, so the model itself outputs the original scale."""
        if self.scale == 1.0:
            return
        with torch.no_grad():
            for name, param in model.named_parameters():
                if ".score." in f".{name}." and param.requires_grad:
                    param.mul_(self.scale)
        self.scale = 1.0

    def state(self):
        return {"scale": self.scale, "train_mean": self.mean, "train_std": self.std}


def make_problem(name: str | None, state: dict[str, Any] | None = None, threshold_mode: str = "global") -> Problem:
    """The `Problem` of a name (None: single-label), restored from a saved model's state when given."""
    state = state or {}
    if name in (None, "single-label"):
        return SingleLabel()
    if name == "multi-label":
        return MultiLabel(state.get("thresholds"), state.get("threshold_mode", threshold_mode))
    if name == "regression":
        return Regression(float(state.get("scale", 1.0)), state.get("train_mean"), state.get("train_std"))
    raise ConfigError(f"--problem must be one of {', '.join(PROBLEMS)}, got {name!r}")


# ----------------------------------------------------------------------------- metrics


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
