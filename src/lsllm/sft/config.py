"""The SFT baseline's settings: the shared run sections plus one `sft` section.

An SFT run is described by the same ModelConfig / LoraSettings / DataConfig / TrainConfig as an
LS run, so the two can be compared setting by setting, plus `SFTConfig` (prompt template, system
prompt, generation). It is saved as `config.yaml` in the run directory; the `sft` section is what
tells `compare` (and a reader) that the run is an SFT run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lsllm.config import (
    DataConfig,
    LoraSettings,
    ModelConfig,
    RunConfig,
    TrainConfig,
    check_field_types,
    ls_only_settings,
    read_yaml_mapping,
)
from lsllm.config import help_field as _help
from lsllm.errors import ConfigError
from lsllm.sft.answers import DEFAULT_SYSTEM_PROMPT

TEMPLATES = ("chat", "llama2-chat", "plain")
SCORINGS = ("generate", "likelihood")
ANSWER_MARGIN = 4
"""Tokens generated beyond the longest label's answer, so that an answer that goes on after a
label word ("positive review", "Positive. The ...") is seen to, and counted irregular."""


@dataclass
class SFTConfig:
    """How examples become prompts, and how answers are generated and read back."""

    template: str = _help(
        "prompt format: chat (the tokenizer's own chat template) | llama2-chat ([INST] <<SYS>> ... [/INST]) | plain",
        default="chat",
    )
    system_prompt: str = _help(
        "instruction shown before every input; {labels} is replaced by the label names, comma-separated (regression: "
        "{min} / {max} by the training targets' range); the default fits the data's problem type (multi-label: every "
        "label that applies, comma-separated, or none; regression: a score from {min} to {max})",
        default=DEFAULT_SYSTEM_PROMPT,
    )
    scoring: str = _help(
        "how answers are read: generate (greedy answer, parsed; irregular outputs counted) | likelihood (the label "
        "whose answer tokens are most probable; never irregular; single-label data only)",
        default="generate",
    )
    max_new_tokens: int | None = _help(
        f"greedy generation budget per answer; default: the longest possible answer in tokens (multi-label: "
        f"every label) + {ANSWER_MARGIN}",
        default=None,
    )
    eval_batch_size: int = _help("the most prompts per evaluation batch", default=32)
    eval_batch_tokens: int = _help("the most padded prompt tokens per evaluation batch (after the shared prefix)",
                                   default=1024)
    gradient_checkpointing: bool = _help("recompute activations in backward (saves memory on 7B/13B QLoRA)", default=False)
    irregular_top: int = _help("how many of the most frequent irregular outputs metrics.json lists", default=10)
    eval_splits: list[str] = _help(
        "splits scored after training; SFT selects nothing on validation, so only test by default (test missing: validation)",
        default_factory=lambda: ["test"],
    )

    def __post_init__(self) -> None:
        check_field_types(self, "sft")
        if self.template not in TEMPLATES:
            raise ConfigError(f"sft template must be one of {', '.join(TEMPLATES)}, got {self.template!r}")
        if not self.system_prompt.strip():
            raise ConfigError("sft system_prompt is empty: give an instruction, e.g. the default with {labels}")
        if self.scoring not in SCORINGS:
            raise ConfigError(f"sft scoring must be one of {', '.join(SCORINGS)}, got {self.scoring!r}")
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise ConfigError(f"sft max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.eval_batch_size < 1:
            raise ConfigError(f"sft eval_batch_size must be >= 1, got {self.eval_batch_size}")
        if self.eval_batch_tokens < 1:
            raise ConfigError(f"sft eval_batch_tokens must be >= 1, got {self.eval_batch_tokens}")
        if self.irregular_top < 0:
            raise ConfigError(f"sft irregular_top must be >= 0, got {self.irregular_top}")
        unknown = [split for split in self.eval_splits if split not in ("validation", "test")]
        if unknown:
            raise ConfigError(f"sft eval_splits: {', '.join(unknown)} not among validation, test")


@dataclass
class SFTRunConfig:
    """Everything that defines an SFT run; saved as config.yaml in the run directory.

    Settings of the shared sections that only mean something for label-supervised heads
    (bidirectional attention, pooling, class weights, early stopping, presets) are refused
    rather than silently ignored.
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    lora: LoraSettings = field(default_factory=LoraSettings)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)

    def __post_init__(self) -> None:
        for section in ("model", "lora", "data", "train"):
            values = getattr(self, section)
            defaults = type(values)()
            for name, fix in ls_only_settings(type(values)).items():
                if getattr(values, name) != getattr(defaults, name):
                    raise ConfigError(f"{section}.{name} is not used by SFT: {fix}")
        from lsllm.problems import family  # here: importing the configs stays light (no torch)

        # The data's problem type, when given, answers as its family member says (token tasks: not offered).
        family(self.data.task, self.data.problem).sft_answer_format().check_scoring(self.sft.scoring)

    to_dict = RunConfig.to_dict  # versioned asdict of every section, sft included

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> SFTRunConfig:
        """Build from a mapping; the shared sections are validated exactly as RunConfig does."""
        raw = dict(raw)
        sft_raw = raw.pop("sft", None) or {}
        if not isinstance(sft_raw, dict):
            raise ConfigError("section 'sft' must be a mapping of SFT settings")
        base = RunConfig.from_dict(raw)
        names = {f.name for f in dataclasses.fields(SFTConfig)}
        unknown = set(sft_raw) - names
        if unknown:
            raise ConfigError(f"unknown key(s) in section 'sft': {', '.join(sorted(unknown))}; known: {', '.join(sorted(names))}")
        return cls(model=base.model, lora=base.lora, data=base.data, train=base.train, sft=SFTConfig(**sft_raw))

    save = RunConfig.save

    @classmethod
    def load(cls, path: str | Path) -> SFTRunConfig:
        return cls.from_dict(read_yaml_mapping(path))
