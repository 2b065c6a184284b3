"""The SFT run directory, through `lsllm.runs` (paths, atomic writes, checkpoint markers).

The layout is that of `lsllm train` runs; what differs is the `sft` config section and the
model/ contents (a causal-LM adapter, no classification head):

    config.yaml         SFTRunConfig (labels resolved), reloadable with SFTRunConfig.load
    model/              LoRA adapter + tokenizer + lsllm-sft.json (labels, template, base weights)
    checkpoints/        Trainer checkpoints, complete ones marked (--resume)
    logs/               TensorBoard events, trainer_state.json
    metrics.json        {"train": {...}, "validation": {...}, "test": {...}}
    predictions.jsonl   one row per reported example: text, label, gold, raw_output, irregular
    README.md           model card
"""

from __future__ import annotations

import logging
from typing import Any

from lsllm import runs
from lsllm.errors import ConfigError
from lsllm.sft.config import SFTRunConfig

log = logging.getLogger(__name__)

SFT_INFO = "lsllm-sft.json"  # inside model/: labels, template, base weights, versions


def prepare(cfg: SFTRunConfig) -> tuple[runs.RunDir, SFTRunConfig]:
    """Name the run directory or reopen it for --resume (`runs.open_run`); the folder appears with config.yaml."""
    return runs.open_run(cfg, prefix="sft-")


def resume_checkpoint(run: runs.RunDir) -> str | None:
    checkpoint = runs.last_complete_checkpoint(run.checkpoints)
    if checkpoint is None:
        log.warning("no complete checkpoint in %s: starting the run from the beginning", run.checkpoints)
    return str(checkpoint) if checkpoint else None


def save_model(run: runs.RunDir, model, tokenizer, cfg: SFTRunConfig, labels: list[str], source: dict[str, Any]) -> None:
    """model/: the LoRA adapter, the tokenizer it was trained with, and what it needs to be reloaded."""
    import peft
    import torch
    import transformers
    import trl

    from lsllm import __version__

    model.save_pretrained(run.model)
    tokenizer.save_pretrained(run.model)
    info = {
        "method": "sft",
        "task": "seq",
        "labels": list(labels),
        "template": cfg.sft.template,
        "base_model": cfg.model.name,
        "weights": source,
        "versions": {"lsllm": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
                     "peft": peft.__version__, "trl": trl.__version__},
    }
    runs.atomic_write_json(run.model / SFT_INFO, info)


def read_info(run: runs.RunDir) -> dict[str, Any]:
    import json

    path = run.model / SFT_INFO
    if not path.is_file():
        raise ConfigError(f"{run.root}: not a finished SFT run (no {runs.MODEL_DIR}/{SFT_INFO}); train it with `lsllm sft train`")
    return json.loads(path.read_text())


def write_results(run: runs.RunDir, metrics: dict[str, Any], predictions: list[dict[str, Any]]) -> None:
    runs.atomic_write_json(run.metrics, metrics)
    runs.atomic_write_jsonl(run.predictions, predictions)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def _loss(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def model_card(run: runs.RunDir, cfg: SFTRunConfig, bundle, metrics: dict[str, Any], source: dict, example: str) -> str:
    """README.md of an SFT run: what was trained on what, how it was asked, what it scored."""
    train = metrics.get("train", {})
    weights = source.get("id") or source.get("file") or source.get("path")
    detail = f"revision {source['revision']}" if "revision" in source else f"sha256 {source.get('sha256', '-')}"
    length = f"{cfg.train.max_steps} steps" if cfg.train.max_steps > 0 else f"{cfg.train.epochs:g} epochs"
    lines = [
        f"# lsllm SFT baseline: {bundle.name}",
        "",
        "Instruction-tuned with TRL's SFTTrainer (LoRA) to answer with the label word, loss on the answer",
        "only; scored by greedy generation. An answer that names no label is irregular and counts as wrong.",
        "",
        f"- base model: `{cfg.model.name}` — weights `{weights}` ({source.get('kind')}, {detail})"
        + (", QLoRA 4-bit" if cfg.model.quantize else ""),
        f"- labels ({len(bundle.labels)}): {', '.join(bundle.labels)}",
        f"- data: {cfg.data.data} — " + ", ".join(f"{k}: {len(v)}" for k, v in bundle.splits.items()),
        *[f"  - {note}" for note in bundle.notes],
        f"- recipe: template `{cfg.sft.template}`; LoRA r={cfg.lora.r} alpha={cfg.lora.alpha} dropout={cfg.lora.dropout} "
        f"on {', '.join(cfg.lora.target_modules)}; lr {cfg.train.lr}, batch {cfg.train.batch_size}x{cfg.train.grad_accum}, "
        f"{length} ({train.get('steps')} steps), seed {cfg.train.seed}",
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
    runs.atomic_write_text(run.card, model_card(run, cfg, bundle, metrics, source, example))
