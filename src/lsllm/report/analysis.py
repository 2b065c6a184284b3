"""What a person reads off a run, computed from its files: header facts, errors, NER span alignment.

Everything here is plain data for the HTML template (strings, numbers, lists); nothing is
rendered. NER spans are read from the BIO tags with seqeval's ``get_entities`` (default mode,
an ``I-X`` after ``O`` starts an entity), the reading ``metrics.json``'s entity F1 uses, so a
span shown as correct is one the metric counted as a true positive.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any

from seqeval.metrics.sequence_labeling import get_entities

from lsllm import describe
from lsllm.report.collect import Run

MAX_ERRORS = 2000  # wrong examples listed per run (sorted by confidence, most confident first)
MAX_REGRESSION_ERRORS = 200  # regression: the predictions furthest from gold listed per run (every one is off a little)
MAX_SENTENCES = 1000  # NER sentences listed per run (those with mistakes first)
IRREGULAR = "(irregular)"  # what an SFT answer that names no label is shown as


def percent(value: Any) -> str:
    """A fraction as the report shows it: 0.58333 -> "58.33"; anything else -> "-"."""
    return f"{100 * value:.2f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "-"


def shown(value: Any, as_percent: bool) -> str:
    """A metric as the report shows it: a percentage (the family's `percent` ones), or a number for correlations and errors."""
    if not as_percent:
        return f"{value:.4f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "-"
    return percent(value)


def duration(seconds: Any) -> str:
    """231.4 -> "3 min 51 s"; 5400 -> "1 h 30 min"; None -> "-"."""
    if not isinstance(seconds, (int, float)):
        return "-"
    s = round(seconds)
    if s < 60:
        return f"{seconds:.1f} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60} min"


# ----------------------------------------------------------------------------- header


def weights(run: Run) -> str:
    source = (run.info.weights if run.info else None) or {}
    if not source:
        return "-"
    where = source.get("id") or source.get("file") or source.get("path") or "?"
    detail = f"revision {source['revision']}" if source.get("revision") else (f"sha256 {source['sha256'][:12]}…" if source.get("sha256") else "")
    return f"{where} ({source.get('kind', '?')}{', ' + detail if detail else ''})"


def sizes(run: Run) -> str:
    """train / validation / test example counts, from run.json, else the metrics."""
    recorded = run.record.get("examples") or {}
    counts = {}
    for split in ("train", "validation", "test"):
        n = recorded.get(split)
        if n is None:
            n = (run.metrics.get(split) or {}).get("n_examples")
        if n is None and split == "train" and (run.config.get("data") or {}).get("train_limit"):
            n = f"≤ {run.config['data']['train_limit']}"
        counts[split] = n
    return " · ".join(f"{split} {n if n is not None else '-'}" for split, n in counts.items())


def reproduce(run: Run) -> str:
    if run.record.get("reproduce"):
        return str(run.record["reproduce"])
    command = "lsllm sft train" if run.kind == "sft" else "lsllm train"
    return f"{command} --config {shlex.quote(str(run.root / 'config.yaml'))} --output NEW_DIR"


def versions(run: Run) -> str:
    found = (run.info.versions if run.info else None) or {}
    shown = [f"{name} {found[name]}" for name in ("lsllm", "transformers", "torch", "peft", "trl") if name in found]
    if not shown and run.config.get("lsllm_version"):
        shown = [f"lsllm {run.config['lsllm_version']}"]
    return ", ".join(shown) or "-"


def header_facts(run: Run) -> list[tuple[str, str]]:
    """(label, value) rows of the run's header, "-" for what the run directory does not say."""
    model = run.config.get("model") or {}
    data = run.config.get("data") or {}
    command = run.record.get("command")
    labels = run.labels
    started = run.record.get("started") or "-"
    ls = run.ls_info
    pooling = run.family.saved_pooling(str((ls.pooling if ls else None) or model.get("pooling") or "last")) if run.kind == "ls" else None
    return [
        ("method", f"{run.method} — {run.family.describe()}"),
        ("model", str(model.get("name") or (run.info.base_model if run.info else None) or "-")),
        ("weights", weights(run)),
        ("attention", describe.attention(run.config, ls)),
        ("pooling", pooling or "-"),
        ("data", f"{data.get('data', '-')}" + (f" ({ls.data})" if ls and ls.data else "")),
        ("labels", f"{len(labels)}: {', '.join(labels)}" if labels else "-"),
        ("examples", sizes(run)),
        ("recipe", describe.recipe(run.config)),
        ("command", shlex.join(command) if isinstance(command, list) else (str(command) if command else "-")),
        ("reproduce", reproduce(run)),
        ("wall-clock", duration(run.record.get("seconds")) + (f", started {started}" if started != "-" else "")),
        ("versions", versions(run)),
    ]


# ----------------------------------------------------------------------------- sequence errors


@dataclass
class SeqError:
    index: int  # line in predictions.jsonl (0-based)
    text: str
    gold: str
    predicted: str
    confidence: float | None  # the probability of the predicted label (None for SFT); multi-label: see `multi_label_confidence`
    probabilities: list[tuple[str, float]]  # highest first
    raw_output: str | None = None  # SFT: the answer as generated
    error: float | None = None  # regression: |predicted - gold|
    gold_labels: tuple[str, ...] = ()  # multi-label: the gold label set (`gold` is its display form)


def seq_errors(run: Run) -> list[SeqError]:
    """The wrong predictions, most confident first (the ones that say most about the model)."""
    errors = []
    if run.family.numeric:
        return regression_errors(run)
    for i, record in enumerate(run.predictions):
        gold = record.get("gold")
        predicted = record.get("label")
        score, gold_labels = record.get("score"), ()
        if run.family.label_sets:  # wrong when the label sets differ
            if not isinstance(gold, list) or not isinstance(record.get("labels"), list) or set(gold) == set(record["labels"]):
                continue
            score = multi_label_confidence(gold, record["labels"], record.get("probabilities") or {})
            gold_labels = tuple(str(label) for label in gold)
            gold, predicted = ", ".join(gold) or "(none)", ", ".join(record["labels"]) or "(none)"
        if gold is None or predicted == gold:
            continue
        probabilities = sorted((record.get("probabilities") or {}).items(), key=lambda kv: -kv[1])
        errors.append(SeqError(i, str(record.get("text", "")), str(gold), IRREGULAR if predicted is None else str(predicted),
                               float(score) if isinstance(score, (int, float)) else None, probabilities,
                               record.get("raw_output"), gold_labels=gold_labels))
    errors.sort(key=lambda e: -(e.confidence if e.confidence is not None else 0.0))
    return errors


def multi_label_confidence(gold: list[str], predicted: list[str], probabilities: dict[str, float]) -> float | None:
    """How sure a multi-label model was of its most confident wrong decision: p of a label given wrongly, 1 - p of one missed."""
    wrong = [probabilities[label] for label in set(predicted) - set(gold) if isinstance(probabilities.get(label), (int, float))]
    wrong += [1.0 - probabilities[label] for label in set(gold) - set(predicted) if isinstance(probabilities.get(label), (int, float))]
    return max(wrong) if wrong else None


def regression_errors(run: Run) -> list[SeqError]:
    """Regression: every scored prediction, furthest from gold first (predicted and gold shown as numbers).

    A regression prediction is never exactly right, so "wrong" means nothing here: the report lists
    the largest absolute errors (`MAX_REGRESSION_ERRORS`) instead of "N of N are wrong".
    """
    errors = []
    for i, record in enumerate(run.predictions):
        gold, value = record.get("gold"), record.get("value")
        if isinstance(gold, (int, float)) and isinstance(value, (int, float)):
            errors.append(SeqError(i, str(record.get("text", "")), f"{gold:.3f}", f"{value:.3f}", None, [],
                                   record.get("raw_output"), abs(float(value) - float(gold))))
    errors.sort(key=lambda e: (-(e.error or 0.0), e.index))
    return errors


def scatter_points(run: Run) -> list[tuple[float, float]]:
    """(gold, predicted) of a regression run's predictions."""
    return [(float(r["gold"]), float(r["value"])) for r in run.predictions
            if isinstance(r.get("gold"), (int, float)) and isinstance(r.get("value"), (int, float))]


def confusion(metrics: dict[str, Any]) -> dict[str, Any] | None:
    """The confusion matrix with a shade per cell and row/column totals; None when not in the metrics."""
    from lsllm.report.plots import heat_colour

    matrix = (metrics or {}).get("confusion_matrix")
    if not matrix or not matrix.get("labels"):
        return None
    labels, rows = matrix["labels"], matrix["matrix"]
    peak = max((max(row) for row in rows if row), default=0) or 1
    cells = [[{"count": n, "shade": heat_colour(n / peak), "diagonal": i == j, "gold": labels[i], "predicted": labels[j]}
              for j, n in enumerate(row)] for i, row in enumerate(rows)]
    return {"labels": labels, "cells": cells, "row_totals": [sum(r) for r in rows],
            "column_totals": [sum(r[j] for r in rows) for j in range(len(labels))], "total": sum(map(sum, rows))}


# ----------------------------------------------------------------------------- NER spans


@dataclass
class Span:
    type: str
    start: int  # first word
    end: int  # word after the last (exclusive)
    status: str  # "correct" | "missed" (gold) | "spurious" (predicted) | "wrong-type"
    other: str | None = None  # wrong-type: the type on the other side


@dataclass
class Piece:
    """A run of words on one line of a sentence: plain, or one entity span."""

    text: str
    span: Span | None = None


@dataclass
class Sentence:
    index: int
    gold: list[Piece]
    predicted: list[Piece]
    types: list[str]  # every entity type present on either line
    statuses: list[str]  # every span status present
    mistakes: int = 0

    @property
    def wrong(self) -> bool:
        return self.mistakes > 0


@dataclass
class NerView:
    sentences: list[Sentence]
    types: list[str]
    counts: dict[str, int] = field(default_factory=dict)  # status -> spans
    total: int = 0  # sentences in the split
    with_mistakes: int = 0


def spans(tags: list[str]) -> list[tuple[str, int, int]]:
    """(type, start, end exclusive) of the entities in a BIO tag list (seqeval default mode)."""
    return [(kind, start, last + 1) for kind, start, last in get_entities(list(tags))]


def align(gold: list[tuple[str, int, int]], predicted: list[tuple[str, int, int]]) -> tuple[list[Span], list[Span]]:
    """Each gold and predicted span marked correct, missed/spurious, or wrong-type (same words, other type)."""
    gold_set, predicted_set = set(gold), set(predicted)
    gold_bounds = {(s, e): t for t, s, e in gold}
    predicted_bounds = {(s, e): t for t, s, e in predicted}

    def mark(items, same, bounds, unmatched):
        out = []
        for t, s, e in items:
            if (t, s, e) in same:
                out.append(Span(t, s, e, "correct"))
            elif (s, e) in bounds:
                out.append(Span(t, s, e, "wrong-type", bounds[(s, e)]))
            else:
                out.append(Span(t, s, e, unmatched))
        return out

    return mark(gold, predicted_set, predicted_bounds, "missed"), mark(predicted, gold_set, gold_bounds, "spurious")


def _pieces(words: list[str], marked: list[Span]) -> list[Piece]:
    pieces, position = [], 0
    for span in sorted(marked, key=lambda s: s.start):
        if span.start > position:
            pieces.append(Piece(" ".join(words[position:span.start])))
        pieces.append(Piece(" ".join(words[span.start:span.end]), span))
        position = span.end
    if position < len(words):
        pieces.append(Piece(" ".join(words[position:])))
    return pieces


def ner_view(run: Run) -> NerView:
    """The sentences of the reported split with gold and predicted spans aligned, mistakes first."""
    sentences, counts, types = [], {"correct": 0, "missed": 0, "spurious": 0, "wrong-type": 0}, set()
    for i, record in enumerate(run.predictions):
        words, gold_tags, predicted_tags = record.get("tokens") or [], record.get("gold"), record.get("tags") or []
        if gold_tags is None or len(gold_tags) != len(words):
            continue
        gold, predicted = align(spans(gold_tags), spans(predicted_tags[:len(words)]))
        for span in gold + predicted:
            counts[span.status] += 1
            types.add(span.type)
        # A wrong-type span is one mistake, shown on both lines; count it on the predicted side only.
        mistakes = sum(s.status != "correct" for s in predicted) + sum(s.status == "missed" for s in gold)
        present = {s.type for s in gold + predicted}
        sentences.append(Sentence(i, _pieces(words, gold), _pieces(words, predicted), sorted(present),
                                  sorted({s.status for s in gold + predicted}), mistakes))
    total = len(sentences)
    with_mistakes = sum(s.wrong for s in sentences)
    sentences.sort(key=lambda s: (not s.wrong, s.index))
    return NerView(sentences[:MAX_SENTENCES], sorted(types), counts, total, with_mistakes)


# ----------------------------------------------------------------------------- several runs


def headline(run: Run, split: str, keys: tuple[str, ...] | None = None, as_percent: frozenset[str] | None = None) -> dict[str, str]:
    """Metric name -> shown value (percent for the ``as_percent`` metrics, default the run's `Problem.percent`;
    a number for correlations and errors; a count for SFT's irregular answers)."""
    keys = keys or run.family.headline + (("irregular",) if run.kind == "sft" else ())
    as_percent = run.family.percent if as_percent is None else as_percent
    metrics = run.metrics.get(split) or {}
    return {key: (str(metrics[key]) if key == "irregular" and key in metrics else shown(metrics.get(key), key in as_percent))
            for key in keys}


def comparison(runs: list[Run]) -> dict[str, Any]:
    """One row per run: what it is, its reported split's main metrics and the validation selection metric."""
    keys: list[str] = []
    for run in runs:
        for key in run.family.compared + (("irregular",) if run.kind == "sft" else ()):
            if key not in keys:
                keys.append(key)
    as_percent = frozenset().union(*(run.family.percent for run in runs))  # a metric is a fraction in every member that has it
    rows = []
    for number, run in enumerate(runs):
        data = run.config.get("data") or {}
        train = run.config.get("train") or {}
        kind = run.family
        selection = kind.selection
        rows.append({
            "anchor": f"run-{number + 1}", "name": run.name, "method": run.method,
            "model": str((run.config.get("model") or {}).get("name", "-")).rsplit("/", 1)[-1],
            "data": str(data.get("data", "-")).rsplit("/", 1)[-1], "seed": train.get("seed", "-"),
            "split": run.predictions_split if run.metrics else "-",
            "values": headline(run, run.predictions_split, tuple(keys), as_percent),
            "validation": f"{selection} {shown((run.metrics.get('validation') or {}).get(selection), selection in kind.percent)}",
            "seconds": duration(run.record.get("seconds")),
        })
    return {"keys": keys, "rows": rows}
