"""Command-line flags generated from the config dataclasses, and configs built back from them.

Every setting has one name in YAML and on the command line: `--lora-r` is `lora.r`. The flags of
`lsllm train` are every field of `RunConfig`; those of `lsllm sft train` are every field of
`SFTRunConfig` except the settings marked LS-only (`config.ls_only_settings`), so the CLI and
the config refuse the same settings. `lsllm study` and `lsllm tune` read the user's flags once
with these parsers (`config_from_args`, `config_from_flags`); what a study cell or a tune trial
changes is set on that config object (`with_settings`), and `setting_flags` writes a setting
as flags only for the record (tune.json, a trial's flags), never to be parsed again.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping, Sequence
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


def given_flags(args: argparse.Namespace) -> list[str]:
    """The config flags given on a parsed command line (and its --config), written back as flags: the record of
    what the user typed (tune.json's "flags"), not how lsllm builds a config."""
    out = ["--config", args.config] if getattr(args, "config", None) else []
    for dotted, value in vars(args).items():
        if "." in dotted and dotted.split(".", 1)[0] in SECTIONS:
            out += setting_flags(dotted, value)
    return out


def setting_flags(dotted: str, value: Any) -> list[str]:
    """One setting (``lora.r``, 8) as the flags that give it (``--lora-r 8``; ``--no-pack``; a list as several words)."""
    flag = "--" + flag_for(*dotted.split(".", 1))
    if isinstance(value, bool):
        return [flag if value else "--no-" + flag[2:]]
    if isinstance(value, list):
        return [flag, *map(str, value)]
    return [flag, repr(value) if isinstance(value, float) else str(value)]


def flag_value(section: str, name: str, value: Any) -> Any:
    """``value`` as the flag of the setting ``section.name`` reads it from its text: a bool, a list of words, an
    int, a float or a string (a search-space value such as 16, 0.05 or "q_proj v_proj").

    Raises:
        ValueError: a value the flag could not read (an int flag given 2.5 or "abc").
    """
    kind = str(next(f.type for f in dataclasses.fields(SFT_SECTIONS[section]) if f.name == name))
    if kind == "bool":
        return bool(value)
    if kind.startswith("list"):
        return str(value).split()
    if kind.startswith("int"):
        return int(str(value))
    if kind.startswith("float"):
        return float(repr(value) if isinstance(value, float) else str(value))
    return str(value)


def with_settings(cfg: Any, settings: Mapping[str, Any]) -> Any:
    """A new config: ``cfg`` with the dotted settings replaced, checked as a config file's are (``cfg`` is unchanged).

    Raises:
        ConfigError: a value a setting refuses (one line, as the flag or the config file would say).
    """
    raw = cfg.to_dict()
    for dotted, value in settings.items():
        section, name = dotted.split(".", 1)
        raw[section][name] = value
    return type(cfg).from_dict(raw)
