"""Command-line flags generated from the config dataclasses, and configs built back from them.

Every setting has one name in YAML and on the command line: `--lora-r` is `lora.r`. The flags of
`lsllm train` are every field of `RunConfig`; those of `lsllm sft train` are every field of
`SFTRunConfig` except the settings marked LS-only (`config.ls_only_settings`), so the CLI and
the config refuse the same settings. `lsllm study` parses each cell's flags with these parsers.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lsllm.config import (
    DataConfig,
    LoraSettings,
    ModelConfig,
    RunConfig,
    TrainConfig,
    ls_only_settings,
    read_yaml_mapping,
)
from lsllm.errors import ConfigError
from lsllm.sft.config import SFTConfig, SFTRunConfig

SECTIONS: dict[str, type] = {"model": ModelConfig, "lora": LoraSettings, "data": DataConfig, "train": TrainConfig}
SFT_SECTIONS: dict[str, type] = {**SECTIONS, "sft": SFTConfig}
CONFIGS = {"ls": (RunConfig, SECTIONS), "sft": (SFTRunConfig, SFT_SECTIONS)}
# flag names that differ from "<field>" with dashes
FLAG_NAMES = {("model", "name"): "model", ("lora", "target_modules"): "target-modules", ("lora", "enabled"): "lora"}


def flag_for(section: str, name: str) -> str:
    if (section, name) in FLAG_NAMES:
        return FLAG_NAMES[(section, name)]
    prefix = "lora-" if section == "lora" else ""
    return prefix + name.replace("_", "-")


def add_config_flags(parser: argparse.ArgumentParser, sections: Sequence[str] | None = None, skip: set[str] = frozenset(),
                     method: str = "ls") -> None:
    """One flag per config field of ``method``'s config ("ls" or "sft"); defaults are SUPPRESS so we know which were given.

    The settings marked LS-only get no flag for SFT.
    """
    classes = CONFIGS[method][1]
    for section in sections or tuple(classes):
        group = parser.add_argument_group(section)
        refused = ls_only_settings(classes[section]) if method == "sft" else {}
        for f in dataclasses.fields(classes[section]):
            flag = flag_for(section, f.name)
            if flag in skip or f.name in refused:
                continue
            kind = str(f.type)
            kwargs: dict[str, Any] = {"dest": f"{section}.{f.name}", "default": argparse.SUPPRESS, "help": f.metadata.get("help")}
            if kind == "bool":
                group.add_argument(f"--{flag}", action=argparse.BooleanOptionalAction, **kwargs)
                continue
            kwargs["metavar"] = f.name.upper()
            if kind.startswith("list"):
                kwargs["nargs"] = "+"
            elif kind.startswith("int"):
                kwargs["type"] = int
            elif kind.startswith("float"):
                kwargs["type"] = float
            group.add_argument(f"--{flag}", **kwargs)


def method_parser(method: str) -> argparse.ArgumentParser:
    """A stand-alone parser with exactly the config flags of `lsllm train` ("ls") or `lsllm sft train` ("sft")."""
    parser = argparse.ArgumentParser(prog=f"lsllm {'sft train' if method == 'sft' else 'train'}", add_help=False,
                                     allow_abbrev=False)
    parser.add_argument("--config")
    add_config_flags(parser, method=method)
    return parser


def config_from_args(args: argparse.Namespace, method: str = "ls") -> tuple[Any, set[str]]:
    """A run config from --config YAML overlaid with the flags given; returns it and the explicit fields."""
    config_cls, classes = CONFIGS[method]
    sections = tuple(classes)
    raw: dict[str, Any] = {}
    explicit: set[str] = set()
    if getattr(args, "config", None):
        path = Path(args.config)
        for key, section in read_yaml_mapping(path).items():
            if key in sections:
                section = {} if section is None else section  # `train:` with every key commented out
                if not isinstance(section, dict):
                    raise ConfigError(f"{path}: section {key!r} must be a mapping")
                raw[key] = dict(section)
                explicit.update(f"{key}.{name}" for name in section)
            elif key in ("format_version", "lsllm_version", "sft"):
                raw[key] = section  # checked by from_dict; `train --config` of an SFT run ignores its sft section
            else:
                raise ConfigError(f"{path}: unknown section {key!r}; the sections are {', '.join(sections)}")
    for dotted, value in vars(args).items():
        if "." in dotted:
            section, name = dotted.split(".", 1)
            raw.setdefault(section, {})[name] = value
            explicit.add(dotted)
    return config_cls.from_dict(raw), explicit


def config_from_flags(argv: Sequence[str], method: str = "ls") -> tuple[Any, set[str]]:
    """`config_from_args` for a list of flags (a study cell's); flags of the other method are dropped."""
    parsed, _ = method_parser(method).parse_known_args(list(argv))
    return config_from_args(parsed, method)


def unknown_flags(method: str, argv: Sequence[str]) -> list[str]:
    """The flags in ``argv`` that ``method``'s train command does not know."""
    _, extra = method_parser(method).parse_known_args(list(argv))
    return [a for a in extra if a.startswith("--")]
