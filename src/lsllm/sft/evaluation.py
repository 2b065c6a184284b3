"""Evaluating a generative classifier: prompt, answer (generate and parse, or label likelihood), score.

Scores use the same `seq_metrics` as LS runs (accuracy, macro/weighted F1, per class,
confusion matrix), so `compare` can put the two side by side. With `scoring: generate` an
irregular output (one that names no label) is scored as wrong for its gold class; the confusion
matrix covers label predictions only, and `irregular` / `irregular_top` say how many and which
outputs fell outside. With `scoring: likelihood` every prediction is a label (`irregular` is 0
by construction, and metrics.json says so in `scoring_note`).
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
from lsllm.evaluation import seq_metrics
from lsllm.files import atomic_write_jsonl
from lsllm.models.backbones import warn_if_weights_differ
from lsllm.runs import RunDir
from lsllm.sft.answers import AnswerParser, irregular_summary
from lsllm.sft.config import ANSWER_MARGIN, SFTConfig, SFTRunConfig
from lsllm.sft.generation import generate_answers, stop_token_ids
from lsllm.sft.likelihood import label_log_likelihoods
from lsllm.sft.loading import load_trained
from lsllm.sft.rundir import read_info
from lsllm.sft.templates import PromptTemplate, format_system_prompt, truncate_input

log = logging.getLogger(__name__)

IRREGULAR = "<irregular>"  # stands for "no label" in y_pred (made unique against the label set)


@dataclass
class SplitResult:
    """Metrics of one split and one prediction row per example."""

    metrics: dict[str, Any]
    predictions: list[dict[str, Any]]


def build_template(sft: SFTConfig, tokenizer: PreTrainedTokenizerBase, labels: list[str]) -> PromptTemplate:
    return PromptTemplate(sft.template, tokenizer, format_system_prompt(sft.system_prompt, labels))


def answer_budget(template: PromptTemplate, labels: list[str], stop_ids: list[int]) -> int:
    """Default `max_new_tokens`: the longest label's answer (stop token included) + `ANSWER_MARGIN`."""
    return max(len(template.answer_ids("", label, stop_ids)) for label in labels) + ANSWER_MARGIN


def evaluate_examples(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    template: PromptTemplate,
    labels: list[str],
    examples: list[SeqExample],
    sft: SFTConfig,
    max_length: int,
    show_progress: bool = False,
) -> SplitResult:
    """Answer every example (`sft.scoring`: generate and parse, or label likelihood) and score against the gold labels.

    Raises:
        DataError: an example has no gold label.
    """
    missing = sum(ex.label is None for ex in examples)
    if missing:
        raise DataError(f"{missing} evaluation example(s) have no label: evaluation needs labelled data")
    parser = AnswerParser(labels)
    cut = [truncate_input(tokenizer, ex.text, max_length) for ex in examples]
    prompts = [template.prompt_ids(text) for text, _ in cut]
    stop_ids = stop_token_ids(model, tokenizer)
    extra: dict[str, Any] = {"scoring": sft.scoring}
    if sft.scoring == "likelihood":
        answers = [[template.answer_ids(text, label, stop_ids) for label in labels] for text, _ in cut]
        scores = label_log_likelihoods(model, prompts, answers, sft.eval_batch_size, sft.eval_batch_tokens, show_progress)
        parsed: list[str | None] = [labels[int(k)] for k in scores.argmax(dim=1)]
        raws: list[str | None] = [None] * len(examples)  # nothing is generated
        extra["scoring_note"] = "label likelihood: every prediction is a label, so no irregular outputs are possible"
    else:
        budget = sft.max_new_tokens or answer_budget(template, labels, stop_ids)
        raws = list(generate_answers(model, tokenizer, prompts, budget, sft.eval_batch_size, sft.eval_batch_tokens,
                                     show_progress))
        parsed = [parser.parse(raw) for raw in raws]
        extra["max_new_tokens"] = budget
    gold = [str(ex.label) for ex in examples]
    n_cut = sum(was_cut for _, was_cut in cut)
    none = IRREGULAR
    while none in labels:
        none += "_"
    metrics = seq_metrics(gold, [p if p is not None else none for p in parsed], labels, n_truncated=n_cut)
    n_irregular, top = irregular_summary([r or "" for r in raws], parsed, sft.irregular_top)
    metrics.update(irregular=n_irregular, irregular_top=top, n_examples=len(examples), **extra)
    predictions = []
    for i, (ex, raw, label) in enumerate(zip(examples, raws, parsed, strict=True)):
        row = {"text": ex.text, "label": label, "gold": ex.label, "raw_output": raw, "irregular": label is None}
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
        The split's metrics (accuracy, f1_macro, f1_weighted, irregular, irregular_top, ...).

    Raises:
        ConfigError: run_dir is not a finished SFT run, or an override names no DataConfig field.
        DataError: the split does not exist for the data.
    """
    run = RunDir(Path(run_dir))
    info = read_info(run)
    cfg = SFTRunConfig.load(run.config)
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
    labels = list(info["labels"])
    bundle = load_data(dataclasses.replace(data_cfg, labels=labels), splits=(split,))
    if bundle.task != "seq":
        raise ConfigError("SFT is not offered for token tasks (NER): use `lsllm train` / `lsllm eval` for those")
    examples = bundle.splits.get(split)  # eval_limit applied by load_data
    if not examples:
        raise DataError(f"{bundle.name}: no labelled {split!r} split to evaluate; try --split validation")
    model, tokenizer, source = load_trained(cfg.model, run.model)
    warn_if_weights_differ(info["weights"], source)
    template = build_template(sft_cfg, tokenizer, labels)
    result = evaluate_examples(model, tokenizer, template, labels, examples, sft_cfg, data_cfg.max_length, show_progress)
    if predictions_path is not None:
        atomic_write_jsonl(Path(predictions_path), result.predictions)
    log.info("%s %s: accuracy %.4f, f1_macro %.4f, irregular %d/%d", bundle.name, split,
             result.metrics["accuracy"], result.metrics["f1_macro"], result.metrics["irregular"], len(examples))
    return result.metrics
