"""The SFT run directory's own files, through `lsllm.runs` (the layout and lifecycle LS runs share).

The layout is that of `lsllm train` runs; what differs is the `sft` config section and the
model/ contents (a causal-LM adapter, no classification head):

    config.yaml         SFTRunConfig (labels resolved), reloadable with SFTRunConfig.load
    model/              LoRA adapter (--no-lora: all weights) + tokenizer + lsllm-sft.json (labels, template, base weights)
    checkpoints/        Trainer checkpoints, complete ones marked (--resume)
    logs/               TensorBoard events, trainer_state.json
    metrics.json        {"train": {...}, "validation": {...}, "test": {...}}
    predictions.jsonl   one row per reported example: text, label, gold, raw_output, irregular
    README.md           model card
"""

from __future__ import annotations

from typing import Any

from lsllm import runs
from lsllm.errors import ConfigError
from lsllm.files import atomic_write_json, atomic_write_jsonl, atomic_write_text
from lsllm.run_outputs import card_facts
from lsllm.sft.config import SFTRunConfig

SFT_INFO = runs.SFT_INFO


def save_model(run: runs.RunDir, model, tokenizer, cfg: SFTRunConfig, labels: list[str], source: dict[str, Any]) -> None:
    """model/ (atomically): the LoRA adapter (--no-lora: the whole causal LM), the tokenizer it was trained with, and what reloads it."""

    def write(folder) -> None:
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)

    info = {
        "method": "sft",
        "task": "seq",
        "labels": list(labels),
        "template": cfg.sft.template,
        "base_model": cfg.model.name,
        "weights": source,
        "finetune": "lora" if cfg.lora.enabled else "full",
        "versions": runs.versions("trl"),
    }
    runs.save_model(run, write, SFT_INFO, info)


def read_info(run: runs.RunDir) -> dict[str, Any]:
    path = run.model / SFT_INFO
    if not path.is_file():
        raise ConfigError(f"{run.root}: not a finished SFT run (no {runs.MODEL_DIR}/{SFT_INFO}); train it with `lsllm sft train`")
    return runs.read_json_object(path)


def write_results(run: runs.RunDir, metrics: dict[str, Any], predictions: list[dict[str, Any]]) -> None:
    atomic_write_json(run.metrics, metrics)
    atomic_write_jsonl(run.predictions, predictions)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def _loss(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def model_card(run: runs.RunDir, cfg: SFTRunConfig, bundle, metrics: dict[str, Any], source: dict, example: str) -> str:
    """README.md of an SFT run: what was trained on what, how it was asked, what it scored."""
    train = metrics.get("train", {})
    lines = [
        f"# lsllm SFT baseline: {bundle.name}",
        "",
        f"Instruction-tuned with TRL's SFTTrainer ({'LoRA' if cfg.lora.enabled else 'full fine-tuning'}) to answer with the label word, loss on the answer",
        "only; scored by greedy generation. An answer that names no label is irregular and counts as wrong.",
        "",
        *card_facts(cfg, bundle, source),
        f"- steps trained: {train.get('steps')}",
        f"- training loss: {_loss(train.get('train_loss_start'))} at the first step, {_loss(train.get('train_loss_end'))} at the end",
        "",
        "## Metrics",
        "",
        "| split | n | accuracy % | F1 macro % | irregular |",
        "|---|---|---|---|---|",
    ]
    for split in ("validation", "test"):
        if split in metrics:
            m = metrics[split]
            lines.append(f"| {split} | {m['n_examples']} | {_pct(m['accuracy'])} | {_pct(m['f1_macro'])} | {m['irregular']} |")
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
