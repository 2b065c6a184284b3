"""The recipe a run gets without recipe flags: chosen from its data, from what docs/accuracy.md measured.

Most users run the plain command (`lsllm train --data FILE`), so the plain command must be the
best recipe measured, not the library's neutral defaults. Measured on the embedded SmolLM2-135M
(docs/accuracy.md): on SST-2 from 1,000 examples the neutral defaults (random head, no prompt,
LoRA on every projection, lr 2e-4, 3 epochs) reach 85.09 %, a prompt with the head started from
the label names, LoRA on q/v, lr 3e-4 and 2 epochs 87.5 %, and a 10x head learning rate on top
88.4 %; on CLINC150 (150 intents, 20 examples each) the head from the label names is what makes
many classes learnable from few examples, and small data needs a floor of optimizer steps.

`choose` fills what the user left open, one setting at a time: a flag (or a key of --config)
always wins, and a preset (`--preset ls-llama|ls-unllama|lsllm`) replaces this whole choice,
so `--preset ls-llama` is the paper's recipe exactly. The run's config.yaml records the chosen
values with ``train.preset: auto``; reloaded with --config every value is given, so nothing is
chosen again. Token tasks (NER) keep the library defaults (`--preset lsllm` is the measured
NER recipe).
"""

from __future__ import annotations

import math
from typing import Any

from lsllm.config import RunConfig
from lsllm.models.head_init import label_phrases
from lsllm.problems import Problem

AUTO = "auto"
LR = 3e-4  # `--preset lsllm`'s, measured with LoRA on q/v and with every projection (STS-B, E-c)
HEAD_LR = 3e-3  # 10x: +0.9 points on SST-2 at 1,000 (head from the label words), used for STS-B and E-c
TARGETS = ["q_proj", "v_proj"]  # `--preset lsllm` (single-label)
EPOCHS = 2.0  # the measured recipes' epochs where the data is big enough
MIN_STEPS = 500  # the floor of optimizer steps for small data (docs/accuracy.md, CLINC150 at 20 per intent)
MAX_EPOCHS = 12.0  # however small the data
MAX_PROMPT_LABELS = 6  # list the labels in the prompt's question when there are this few


def prompt_for(problem: Problem, fields: list[str] | None, labels: list[str]) -> str:
    """A prompt from the input fields, asking for what the problem type predicts (a regression's name is its column's)."""
    if fields:
        body = "\n".join(f"{name.replace('_', ' ').capitalize()}: {{{name}}}" for name in fields)
    else:
        body = "Text: {text}"
    return f"{body}\n{problem.prompt_answer(labels)}"


def choose(cfg: RunConfig, problem: Problem, labels: list[str], n_train: int, fields: list[str] | None,
           explicit: set[str]) -> str | None:
    """Fill the recipe settings ``explicit`` leaves open from the data; return the line that says what was chosen.

    Returns None when nothing was chosen: a preset is given (the preset is the recipe), or every
    setting is (a run's config.yaml reloaded with --config).

    Args:
        problem: the data's problem type (`problems.family` of its `DatasetBundle`); labels: its labels.
        n_train: training examples (sets the epochs: a floor of `MIN_STEPS` optimizer steps).
        fields: the input fields of pair data, None for one text.
        explicit: the dotted settings the user gave (flags or --config keys).
    """
    if cfg.train.preset is not None and cfg.train.preset != AUTO:
        return None
    cfg.train.preset = AUTO
    said: list[str] = []

    def open_(*dotted: str) -> bool:
        return not any(d in explicit for d in dotted)

    def put(dotted: str, value: Any) -> None:
        section, name = dotted.split(".")
        setattr(getattr(cfg, section), name, value)

    if problem.recipe_note is not None:  # token tasks: the library defaults
        return problem.recipe_note
    if open_("model.prompt"):
        put("model.prompt", prompt_for(problem, fields, labels))
        said.append(f"prompt {cfg.model.prompt!r} (--prompt)")
    from_names = False
    if open_("model.head_init", "model.label_words"):
        names = label_phrases(labels) if problem.label_head_refusal is None else None
        if names is not None and cfg.model.prompt is not None:
            put("model.head_init", "labels")
            from_names = True
            several = sum(len(name.split()) > 1 for name in names)
            said.append(f"head from the {len(labels)} label names" + (f" ({several} of several words: the mean of their "
                        "tokens' rows)" if several else "") + " (--head-init)")
        else:
            why = problem.label_head_refusal or (
                "the labels are not names, e.g. " + ", ".join(label for label in labels[:3]) + "; --label-words names them")
            said.append(f"head random ({why})")
    else:
        from_names = cfg.model.head_init == "labels"
    lora = cfg.lora.enabled
    if open_("train.head_lr") and (from_names or problem.recipe_head_lr):
        put("train.head_lr", HEAD_LR)
        said.append(f"head lr {HEAD_LR:g} (--head-lr)")
    if open_("train.lr") and lora:
        put("train.lr", LR)
        said.append(f"lr {LR:g} (--lr)")
    if open_("lora.target_modules") and lora and problem.recipe_lora_qv:
        put("lora.target_modules", list(TARGETS))
        said.append(f"LoRA on {' '.join(TARGETS)} (--target-modules)")
    if open_("train.epochs", "train.max_steps") and cfg.train.max_steps < 1:
        per_epoch = max(1, math.ceil(n_train / (cfg.train.batch_size * cfg.train.grad_accum)))
        epochs = min(MAX_EPOCHS, max(EPOCHS, float(math.ceil(MIN_STEPS / per_epoch))))
        put("train.epochs", epochs)
        floor = f", the floor of {MIN_STEPS} for small data" if epochs > EPOCHS else ""
        said.append(f"{epochs:g} epochs = {math.ceil(per_epoch * epochs)} steps{floor} (--epochs)")
    if not said:  # every setting given (a run's config.yaml reloaded): nothing was chosen
        return None
    return "recipe chosen from the data (each has its flag; --preset ls-llama for the paper's): " + "; ".join(said)
