"""The SFT run directory's own files, through `lsllm.runs` (the layout and lifecycle LS runs share).

The layout is that of `lsllm train` runs; what differs is the `sft` config section and the
model/ contents (a causal-LM adapter, no classification head):

    config.yaml         SFTRunConfig (labels resolved), reloadable with SFTRunConfig.load
    model/              LoRA adapter (--no-lora: all weights) + tokenizer + lsllm-sft.json (labels, problem type and
                        its answers' state, template, base weights)
    checkpoints/        Trainer checkpoints, complete ones marked (--resume)
    logs/               TensorBoard events, trainer_state.json
    metrics.json        {"train": {...}, "validation": {...}, "test": {...}}
    predictions.jsonl   one row per reported example: text, label (multi-label: labels; regression: value), gold,
                        raw_output, irregular
    README.md           model card
"""

from __future__ import annotations

from typing import Any

from lsllm import runs
from lsllm.files import atomic_write_json, atomic_write_jsonl, atomic_write_text
from lsllm.problems import family
from lsllm.run_outputs import card_facts
from lsllm.sft.answers import Answers
from lsllm.sft.config import SFTRunConfig


def save_model(run: runs.RunDir, model, tokenizer, cfg: SFTRunConfig, labels: list[str], source: dict[str, Any],
               answers: Answers | None = None) -> None:
    """model/ (atomically): the LoRA adapter (--no-lora: the whole causal LM), the tokenizer it was trained with, and what reloads it.

    lsllm-sft.json records the problem type and its answers' state (regression: decimals, training
    mean and range), so `lsllm sft eval` writes, reads and scores answers as training did.
    """

    def write(folder) -> None:
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)

    info = runs.SFTInfo(
        method="sft",
        task="seq",
        labels=list(labels),
        problem=answers.problem if answers is not None else "single-label",
        problem_state=answers.state() if answers is not None else {},
        template=cfg.sft.template,
        base_model=cfg.model.name,
        weights=source,
        finetune="lora" if cfg.lora.enabled else "full",
        versions=runs.versions("trl"),
    )
    runs.save_model(run, write, info)


def write_results(run: runs.RunDir, metrics: dict[str, Any], predictions: list[dict[str, Any]]) -> None:
    atomic_write_json(run.metrics, metrics)
    atomic_write_jsonl(run.predictions, predictions)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def _loss(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _metric(value: Any, key: str, percent: frozenset[str]) -> str:
    if not isinstance(value, (int, float)):
        return "-"
    return _pct(value) if key in percent else f"{value:.4f}"


def model_card(run: runs.RunDir, cfg: SFTRunConfig, bundle, metrics: dict[str, Any], source: dict, example: str) -> str:
    """README.md of an SFT run: what was trained on what, how it was asked, what it scored (the problem type's headline metrics)."""
    train = metrics.get("train", {})
    problem = family(bundle.task, bundle.problem)
    answers = problem.sft_answer_format()
    keys = problem.headline
    lines = [
        f"# lsllm SFT baseline: {bundle.name}{answers.heading}",
        "",
        f"Instruction-tuned with TRL's SFTTrainer ({'LoRA' if cfg.lora.enabled else 'full fine-tuning'}) to answer with {answers.writes}, loss on the answer",
        f"only; scored by greedy generation. {answers.irregular_note}",
        "",
        *card_facts(cfg, bundle, source),
        f"- steps trained: {train.get('steps')}",
        f"- training loss: {_loss(train.get('train_loss_start'))} at the first step, {_loss(train.get('train_loss_end'))} at the end",
        "",
        "## Metrics",
        "",
        "| split | n | " + " | ".join(f"{key} %" if key in problem.percent else key for key in keys) + " | irregular |",
        "|---|---|" + "---|" * len(keys) + "---|",
    ]
    for split in ("validation", "test"):
        if split in metrics:
            m = metrics[split]
            values = " | ".join(_metric(m.get(key), key, problem.percent) for key in keys)
            lines.append(f"| {split} | {m['n_examples']} | {values} | {m['irregular']} |")
    reported = "test" if "test" in metrics else "validation"
    top = metrics.get(reported, {}).get("irregular_top") or []
    if top:
        lines += ["", f"Most frequent irregular outputs ({reported}):", ""]
        lines += [f"- {text!r} ×{count}" for text, count in top]
    lines += [
        "",
        "## One training example as the model sees it",
        "",
        "```",
        example,
        "```",
        "",
        "## Use it",
        "",
        "```bash",
        f"lsllm sft eval {run.root} --split test",
        f"lsllm compare {run.root} OTHER_RUN ...",
        "```",
        "",
    ]
    return "\n".join(lines)


def write_model_card(run: runs.RunDir, cfg: SFTRunConfig, bundle, metrics: dict[str, Any], source: dict, example: str) -> None:
    atomic_write_text(run.card, model_card(run, cfg, bundle, metrics, source, example))
