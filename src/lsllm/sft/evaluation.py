"""Evaluating a generative classifier: prompt, answer (generate and parse, or label likelihood), score.

Scores use the same metric functions as LS runs (single-label: `seq_metrics`, accuracy,
macro/weighted F1, per class, confusion matrix; multi-label: `evaluation.multilabel_metrics`;
regression: `evaluation.regression_metrics`), so `compare` can put the two side by side. With
`scoring: generate` an irregular output (one that names no label, or no number) is scored as
wrong for its gold class (single-label), as the empty label set (multi-label) or as the training
mean (regression); `irregular` / `irregular_top` say how many and which outputs fell outside.
With `scoring: likelihood` (single-label only) every prediction is a label (`irregular` is 0 by
construction, and metrics.json says so in `scoring_note`).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from lsllm.data import load_data
from lsllm.data.examples import SeqExample
from lsllm.errors import ConfigError, DataError
from lsllm.files import atomic_write_jsonl
from lsllm.models.backbones import warn_if_weights_differ
from lsllm.problems import Problem, family
from lsllm.runs import RunDir
from lsllm.sft.answers import Answers, SingleLabelAnswers, irregular_summary
from lsllm.sft.config import ANSWER_MARGIN, SFTConfig, SFTRunConfig
from lsllm.sft.generation import generate_answers, stop_token_ids
from lsllm.sft.likelihood import label_log_likelihoods
from lsllm.sft.loading import load_trained
from lsllm.sft.templates import PromptTemplate, format_system_prompt, truncate_input

log = logging.getLogger(__name__)


@dataclass
class SplitResult:
    """Metrics of one split and one prediction row per example."""

    metrics: dict[str, Any]
    predictions: list[dict[str, Any]]


def build_template(sft: SFTConfig, tokenizer: PreTrainedTokenizerBase, labels: list[str],
                   answers: Answers | None = None) -> PromptTemplate:
    """The run's prompt template, its system prompt filled with the labels (regression: and the targets' range)."""
    fields = answers.prompt_fields() if answers is not None else None
    return PromptTemplate(sft.template, tokenizer, format_system_prompt(sft.system_prompt, labels, fields))


def answer_budget(template: PromptTemplate, answers: list[str], stop_ids: list[int]) -> int:
    """Default `max_new_tokens`: the longest of `answers` (stop token included) + `ANSWER_MARGIN`.

    `answers` are the label names (single-label) or `Answers.longest()`: every label joined
    (multi-label), the widest number of the training range (regression).
    """
    return max(len(template.answer_ids("", answer, stop_ids)) for answer in answers) + ANSWER_MARGIN


def evaluate_examples(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    template: PromptTemplate,
    labels: list[str],
    examples: list[SeqExample],
    sft: SFTConfig,
    max_length: int,
    show_progress: bool = False,
    answers: Answers | None = None,
) -> SplitResult:
    """Answer every example (`sft.scoring`: generate and parse, or label likelihood) and score against the gold labels.

    `answers` says how the problem type's answers are read and scored (default: single-label
    over `labels`).

    Raises:
        ConfigError: likelihood scoring of a multi-label or regression run.
        DataError: an example has no gold label.
    """
    answers = answers or SingleLabelAnswers(labels)
    answers.check_scoring(sft.scoring)
    missing = sum(ex.label is None for ex in examples)
    if missing:
        raise DataError(f"{missing} evaluation example(s) have no label: evaluation needs labelled data")
    cut = [truncate_input(tokenizer, ex.text, max_length) for ex in examples]
    prompts = [template.prompt_ids(text) for text, _ in cut]
    stop_ids = stop_token_ids(model, tokenizer)
    extra: dict[str, Any] = {"scoring": sft.scoring}
    if sft.scoring == "likelihood":
        label_ids = [[template.answer_ids(text, label, stop_ids) for label in labels] for text, _ in cut]
        scores = label_log_likelihoods(model, prompts, label_ids, sft.eval_batch_size, sft.eval_batch_tokens, show_progress)
        parsed: list[Any | None] = [labels[int(k)] for k in scores.argmax(dim=1)]
        raws: list[str | None] = [None] * len(examples)  # nothing is generated
        extra["scoring_note"] = "label likelihood: every prediction is a label, so no irregular outputs are possible"
    else:
        budget = sft.max_new_tokens or answer_budget(template, answers.longest(), stop_ids)
        raws = list(generate_answers(model, tokenizer, prompts, budget, sft.eval_batch_size, sft.eval_batch_tokens,
                                     show_progress))
        parsed = [answers.parse(raw) for raw in raws]
        extra["max_new_tokens"] = budget
    gold = [ex.label for ex in examples]
    n_cut = sum(was_cut for _, was_cut in cut)
    metrics = answers.score(gold, parsed, n_truncated=n_cut)
    n_irregular, top = irregular_summary([r or "" for r in raws], parsed, sft.irregular_top)
    metrics.update(irregular=n_irregular, irregular_top=top, n_examples=len(examples), **extra)
    predictions = []
    for i, (ex, raw, value) in enumerate(zip(examples, raws, parsed, strict=True)):
        row = {"text": ex.text, **answers.record(value), "gold": ex.label, "raw_output": raw, "irregular": value is None}
        if sft.scoring == "likelihood":
            row["log_likelihood"] = {name: round(float(v), 4) for name, v in zip(labels, scores[i], strict=True)}
        predictions.append(row)
    return SplitResult(metrics, predictions)


def evaluate_sft(
    run_dir: str | Path,
    data_overrides: dict[str, Any] | None = None,
    split: str = "test",
    eval_limit: int | None = None,
    predictions_path: str | Path | None = None,
    sft_overrides: dict[str, Any] | None = None,
    show_progress: bool = False,
) -> dict[str, Any]:
    """Evaluate a trained SFT run on one split, by default of the data it was trained on.

    Args:
        run_dir: an SFT run directory (config.yaml with an `sft` section, model/ adapter).
        data_overrides: DataConfig fields to change, e.g. {"data": "other.tsv"} to score other
            data against the run's labels.
        split: "test", "validation" or "train".
        eval_limit: score only the first N examples.
        predictions_path: write predictions.jsonl rows here when given.
        sft_overrides: SFTConfig fields to change for this evaluation, e.g. {"scoring": "likelihood"}
            or {"max_new_tokens": 8}.
        show_progress: draw a progress bar (examples/s) on stderr.

    Returns:
        The split's metrics: the problem type's (single-label: accuracy, f1_macro, f1_weighted, ...;
        multi-label: jaccard, f1_micro, f1_macro, subset_accuracy, ...; regression: pearson,
        spearman, mse, mae), plus irregular, irregular_top, scoring.

    Raises:
        ConfigError: run_dir is not a finished SFT run, an override names no DataConfig field,
            or likelihood scoring of a multi-label or regression run.
        DataError: the split does not exist for the data.
    """
    run = RunDir(Path(run_dir))
    info = run.sft_info()
    cfg = SFTRunConfig.load(run.config)
    problem = family(info.task, info.problem or cfg.data.problem)  # runs from before problem types: single-label
    answer_format = problem.sft_answer_format()
    answer_format.check_scoring((sft_overrides or {}).get("scoring", cfg.sft.scoring))
    overrides = dict(data_overrides or {})
    if eval_limit is not None:
        overrides["eval_limit"] = eval_limit
    unknown = set(overrides) - {f.name for f in dataclasses.fields(cfg.data)}
    if unknown:
        raise ConfigError(f"unknown data setting(s): {', '.join(sorted(unknown))}")
    data_cfg = dataclasses.replace(cfg.data, **overrides)
    unknown = set(sft_overrides or {}) - {f.name for f in dataclasses.fields(cfg.sft)}
    if unknown:
        raise ConfigError(f"unknown sft setting(s): {', '.join(sorted(unknown))}")
    sft_cfg = dataclasses.replace(cfg.sft, **(sft_overrides or {}))
    labels = list(info.labels)
    answers = answer_format.of(labels, state=info.problem_state)
    # The run's labels in its id order (regression: none to give; the data names its score).
    bundle = load_data(dataclasses.replace(data_cfg, labels=labels if problem.pins_labels else None), splits=(split,))
    family(bundle.task, bundle.problem).sft_answer_format(bundle.name)  # token tasks: not offered
    if not problem.is_problem(bundle.problem):
        raise DataError(f"{bundle.name} is {bundle.problem} data but the run was trained on {problem.name} data: "
                        "evaluate it on data of its own kind")
    examples = bundle.splits.get(split)  # eval_limit applied by load_data
    if not examples:
        raise DataError(f"{bundle.name}: no labelled {split!r} split to evaluate; try --split validation")
    model, tokenizer, source = load_trained(cfg.model, run.model)
    warn_if_weights_differ(info.weights, source)
    template = build_template(sft_cfg, tokenizer, labels, answers)
    result = evaluate_examples(model, tokenizer, template, labels, examples, sft_cfg, data_cfg.max_length, show_progress,
                               answers=answers)
    if predictions_path is not None:
        atomic_write_jsonl(Path(predictions_path), result.predictions)
    log.info("%s %s: %s", bundle.name, split, summary(result.metrics, problem))
    return result.metrics


def summary(metrics: dict[str, Any], problem: Problem) -> str:
    """One log line of a split's headline metrics (the problem type's first two) and irregular outputs."""
    shown = ", ".join(f"{key} {metrics[key]:.4f}" for key in problem.headline[:2] if key in metrics)
    return f"{shown}, irregular {metrics['irregular']}/{metrics['n_examples']}"
