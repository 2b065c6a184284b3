"""The result files a finished LS run writes beside model/: metrics.json, predictions, report.txt, plots, the model card.

Not to be confused with `lsllm.report` (report.html, the page that reads any run or study
folder): these files are written once, at the end of `lsllm train`; SFT runs share the card's
facts and `metrics_table` (sft/rundir.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from lsllm import describe, runs  # noqa: E402
from lsllm.files import atomic_save_figure, atomic_write_json, atomic_write_jsonl, atomic_write_text  # noqa: E402
from lsllm.problems import Problem, family  # noqa: E402


def metrics_table(results: dict[str, dict], task: str | None, problem: str | None = None) -> str:
    """`problem_table` of a run whose files name its ``task`` and ``problem`` (config.yaml, lsllm.json)."""
    return problem_table(results, family(task, problem))


def problem_table(results: dict[str, dict], kind: Problem) -> str:
    """A small fixed-width table of the family member's headline metrics per split (its `percent` ones as
    percentages, correlations and errors as numbers)."""
    keys = kind.headline
    lines = [f"{'split':<12}" + "".join(f"{k:>15}" for k in keys) + f"{'n':>8}"]
    for split, metrics in results.items():
        row = "".join((f"{100 * metrics[k]:>14.2f}%" if k in kind.percent else f"{metrics[k]:>15.4f}")
                      if isinstance(metrics.get(k), float) else f"{'-':>15}" for k in keys)
        lines.append(f"{split:<12}{row}{metrics.get('n_examples', 0):>8}")
    return "\n".join(lines)


def write_reports(run: runs.RunDir, cfg, bundle, classifier, results: dict[str, dict], records: dict[str, list],
                  history: list[dict], source: dict, extra: dict | None = None) -> None:
    """metrics.json (``results`` per split, plus ``extra`` keys such as step0), predictions, report, plots, card."""
    atomic_write_json(run.metrics, {**results, **(extra or {})})
    shown = "test" if "test" in records else "validation"
    atomic_write_jsonl(run.predictions, records[shown])
    sections = []
    problem = classifier.problem
    for split, split_records in records.items():
        gold = [r["gold"] for r in split_records]
        table = problem.report_text(gold, [problem.prediction(r) for r in split_records], bundle.labels)
        sections.append(f"== {split} ({len(split_records)} examples) ==\n" + table)
    atomic_write_text(run.report, "\n\n".join(sections) + "\n")
    if shown in results and "confusion_matrix" in results[shown]:
        plot_confusion(results[shown]["confusion_matrix"], run.confusion, f"{bundle.name} {shown}")
    plot_learning_curve(history, run.curve, problem.selection)
    atomic_write_text(run.card, model_card(cfg, bundle, problem, results, source, run.root))


def plot_confusion(confusion: dict[str, Any], path: Path, title: str) -> None:
    labels, matrix = confusion["labels"], confusion["matrix"]
    size = 2.5 + 0.6 * len(labels)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    peak = max((max(row) for row in matrix), default=1) or 1
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            ax.text(j, i, str(value), ha="center", va="center", color="white" if value > peak / 2 else "black")
    ax.set_title(title)
    atomic_save_figure(fig, path)
    plt.close(fig)


def plot_learning_curve(history: list[dict], path: Path, metric: str) -> None:
    losses = [(h["step"], h["loss"]) for h in history if "loss" in h and "step" in h]
    dev = [(h["step"], h[f"eval_{metric}"]) for h in history if f"eval_{metric}" in h and "step" in h]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if losses:
        ax.plot(*zip(*losses, strict=True), label="training loss", color="tab:blue")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    if dev:
        right = ax.twinx()
        right.plot(*zip(*dev, strict=True), marker="o", label=f"validation {metric}", color="tab:orange")
        right.set_ylabel(f"validation {metric}")
    ax.set_title("learning curve")
    fig.legend(loc="upper right")
    atomic_save_figure(fig, path)
    plt.close(fig)


def card_facts(cfg, bundle, source: dict) -> list[str]:
    """The model card's bullet lines shared by LS and SFT runs: weights, labels, data, recipe (`describe.recipe`)."""
    weights = source.get("id") or source.get("file") or source.get("path")
    detail = f"revision {source['revision']}" if "revision" in source else f"sha256 {source.get('sha256', '-')}"
    return [
        f"- base model: `{cfg.model.name}` — weights `{weights}` ({source.get('kind')}, {detail})",
        f"- labels ({len(bundle.labels)}): {', '.join(bundle.labels)}",
        f"- data: {cfg.data.data} — " + ", ".join(f"{k}: {len(v)}" for k, v in bundle.splits.items()),
        *[f"  - {note}" for note in bundle.notes],
        f"- recipe: {describe.recipe(cfg.to_dict())}",
    ]


def model_card(cfg, bundle, problem: Problem, results: dict[str, dict], source: dict, root: Path) -> str:
    config = cfg.to_dict()
    pooling = problem.saved_pooling(cfg.model.resolved_pooling)
    lines = [
        f"# lsllm run: {bundle.name} ({problem.describe()})",
        "",
        *card_facts(cfg, bundle, source),
        f"- attention: {describe.attention(config)}" + (f"; pooling: {pooling}" if pooling else ""),
        "- selection: best checkpoint on the validation split; test reported once, never used to select",
        "",
        "## Metrics",
        "```",
        problem_table(results, problem),
        "```",
        "",
        "## Use it",
        "```bash",
        f"lsllm eval {root} --split test",
        f"lsllm predict {root} \"some text\"",
        f"lsllm serve {root}",
        "```",
        "```python",
        "from lsllm.pipeline import load_run",
        f"classifier, config = load_run({json.dumps(str(root))})",
        "classifier.predict_texts([\"some text\"])",
        "```",
    ]
    return "\n".join(lines) + "\n"
