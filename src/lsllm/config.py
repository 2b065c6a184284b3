"""One typed description of a run: model, LoRA, data and training settings.

A run is reproducible from its `RunConfig` alone: the CLI fills it from YAML and flags, the
run directory stores it as `config.yaml`, and `--config` reads it back. Every field carries a
`help` string; the CLI's flags are generated from these dataclasses.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lsllm.errors import ConfigError

FORMAT_VERSION = 1
POOLINGS = ("last", "mean", "max")
TASKS = ("seq", "token")
ALL_PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _help(text: str, **kwargs: Any) -> Any:
    return field(metadata={"help": text}, **kwargs)


@dataclass
class ModelConfig:
    """Which backbone, how it attends, and how hidden states become one vector."""

    name: str = _help("hub id, local directory, .gguf file or alias (smollm2-135m, 7b, 13b)", default="smollm2-135m")
    bidirectional: bool = _help("remove the causal mask (LS-unLLM); padding stays masked", default=False)
    unmask_layers: int | None = _help("with --bidirectional: only the top K layers attend both ways (default all)", default=None)
    pooling: str | None = _help("seq pooling: last | mean | max (default last when causal, mean when bidirectional)", default=None)
    dtype: str = _help("backbone weights: auto (bf16 where the CPU/GPU runs it fast) | float32 | bfloat16", default="auto")
    quantize: str | None = _help("4bit: QLoRA (bitsandbytes, needs CUDA)", default=None)
    attn_implementation: str = _help("sdpa | eager | flash_attention_2", default="sdpa")

    def __post_init__(self) -> None:
        if self.pooling is not None and self.pooling not in POOLINGS:
            raise ConfigError(f"pooling must be one of {', '.join(POOLINGS)}, got {self.pooling!r}")
        if self.unmask_layers is not None:
            if not self.bidirectional:
                raise ConfigError("--unmask-layers needs --bidirectional")
            if self.unmask_layers < 1:
                raise ConfigError(f"--unmask-layers must be >= 1, got {self.unmask_layers}")
        if self.dtype not in ("auto", "float32", "bfloat16"):
            raise ConfigError(f"dtype must be auto, float32 or bfloat16, got {self.dtype!r}")
        if self.quantize not in (None, "4bit"):
            raise ConfigError(f"quantize must be 4bit or unset, got {self.quantize!r}")

    @property
    def resolved_pooling(self) -> str:
        return self.pooling or ("mean" if self.bidirectional else "last")


@dataclass
class LoraSettings:
    """LoRA adapter on the backbone; the head `score` is always trained and saved."""

    r: int = _help("LoRA rank", default=16)
    alpha: int = _help("LoRA alpha", default=32)
    dropout: float = _help("LoRA dropout", default=0.05)
    target_modules: list[str] = _help("projections to adapt", default_factory=lambda: list(ALL_PROJECTIONS))

    def __post_init__(self) -> None:
        if self.r < 1:
            raise ConfigError(f"lora r must be >= 1, got {self.r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"lora dropout must be in [0, 1), got {self.dropout}")
        if not self.target_modules:
            raise ConfigError("target_modules is empty: name at least one projection, e.g. q_proj v_proj")


@dataclass
class DataConfig:
    """Where examples come from and how they are tokenized."""

    data: str = _help("built-in name (sst2, conll03, ...), hf:<name>[:<config>], a folder or a train file", default="")
    data_dir: str | None = _help("folder laid out like ../shared/data (<name>/<split>.<ext>); env LSLLM_DATA_DIR", default=None)
    task: str | None = _help("seq | token (inferred from the dataset when possible)", default=None)
    text_column: list[str] | None = _help("text column(s) of CSV/TSV/JSONL; several are joined", default=None)
    label_column: str | None = _help("label column of CSV/TSV/JSONL", default=None)
    tag_column: int = _help("CoNLL: which column holds the tag (default last)", default=-1)
    validation_file: str | None = _help("validation file beside --data FILE", default=None)
    test_file: str | None = _help("test file beside --data FILE", default=None)
    labels: list[str] | None = _help("explicit label set in id order (default: from labels.txt or sorted train labels)", default=None)
    train_limit: int | None = _help("use the first N training examples", default=None)
    eval_limit: int | None = _help("use the first N validation/test examples", default=None)
    max_length: int = _help("maximum tokens per input (token tasks use sliding windows beyond it)", default=128)
    label_all_subtokens: bool = _help("NER: label every sub-token, not only the first of each word", default=False)
    split_seed: int = _help("seed used to carve a validation split from train when there is none", default=42)

    def __post_init__(self) -> None:
        if self.task is not None and self.task not in TASKS:
            raise ConfigError(f"task must be seq or token, got {self.task!r}")
        if self.max_length < 8:
            raise ConfigError(f"max_length must be >= 8, got {self.max_length}")
        for name in ("train_limit", "eval_limit"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be >= 1, got {value}")


@dataclass
class TrainConfig:
    """Optimisation, selection and the run directory."""

    epochs: float = _help("training epochs (ignored when max_steps > 0)", default=3.0)
    max_steps: int = _help("stop after N optimizer steps (overrides epochs)", default=-1)
    batch_size: int = _help("examples per step per device", default=16)
    grad_accum: int = _help("gradient accumulation steps", default=1)
    lr: float = _help("peak learning rate", default=2e-4)
    weight_decay: float = _help("AdamW weight decay", default=0.01)
    warmup_ratio: float = _help("linear warm-up fraction", default=0.0)
    scheduler: str = _help("learning-rate schedule (HF names: linear, cosine, constant)", default="linear")
    eval_steps: int | None = _help("evaluate every N steps (default: once per epoch)", default=None)
    early_stopping: int | None = _help("stop after N evaluations without improvement", default=None)
    class_weights: str | None = _help("balanced: weight the loss by inverse class frequency", default=None)
    pack: bool = _help("padding-free packing of training batches (fast path)", default=True)
    seed: int = _help("random seed", default=42)
    output: str | None = _help("run directory (default runs/<data>-<timestamp>)", default=None)
    resume: bool = _help("continue the run in --output from its last checkpoint", default=False)
    preset: str | None = _help("ls-llama | ls-unllama: the original paper's recipe", default=None)
    threads: int | None = _help("torch CPU threads (default: one per core; fewer when other processes share the cores)",
                                default=None)

    def __post_init__(self) -> None:
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"--threads must be >= 1, got {self.threads}")
        if self.batch_size < 1 or self.grad_accum < 1:
            raise ConfigError("batch_size and grad_accum must be >= 1")
        if self.lr <= 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        if self.class_weights not in (None, "balanced"):
            raise ConfigError(f"class_weights must be balanced or unset, got {self.class_weights!r}")
        if self.preset not in (None, "ls-llama", "ls-unllama"):
            raise ConfigError(f"preset must be ls-llama or ls-unllama, got {self.preset!r}")


@dataclass
class RunConfig:
    """Everything that defines a run; saved as config.yaml in the run directory."""

    model: ModelConfig = field(default_factory=ModelConfig)
    lora: LoraSettings = field(default_factory=LoraSettings)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        from lsllm import __version__

        out = dataclasses.asdict(self)
        out["lsllm_version"] = __version__
        out["format_version"] = FORMAT_VERSION
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RunConfig:
        raw = dict(raw)
        version = raw.pop("format_version", FORMAT_VERSION)
        raw.pop("lsllm_version", None)
        raw.pop("sft", None)
        if version > FORMAT_VERSION:
            raise ConfigError(f"config format {version} is newer than this lsllm understands ({FORMAT_VERSION}): upgrade lsllm")
        parts = {}
        for f in dataclasses.fields(cls):
            section = raw.pop(f.name, None) or {}
            parts[f.name] = _build(f.default_factory, section, f.name)  # type: ignore[arg-type,misc]
        if raw:
            raise ConfigError(f"unknown config section(s): {', '.join(sorted(raw))}")
        return cls(**parts)

    def save(self, path: str | Path) -> None:
        from lsllm.runs import atomic_write_text

        atomic_write_text(Path(path), yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        return cls.from_dict(read_yaml_mapping(path))


def read_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """A config file's top-level mapping, with one-line errors for a missing file or bad YAML."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with sections model/lora/data/train")
    return raw


def _build(factory: Any, values: dict[str, Any], section: str) -> Any:
    """Build one section dataclass from a mapping, naming unknown keys."""
    cls = type(factory())
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - names
    if unknown:
        raise ConfigError(f"unknown key(s) in section {section!r}: {', '.join(sorted(unknown))}; known: {', '.join(sorted(names))}")
    return cls(**values)


# The original LS-LLaMA recipes (the paper's scripts); flags given explicitly override them.
_ORIGINAL = {
    "lora.r": 12, "lora.alpha": 32, "lora.dropout": 0.1, "lora.target_modules": ["q_proj", "v_proj"],
    "train.batch_size": 8, "data.max_length": 64, "train.weight_decay": 0.01,
    "train.scheduler": "linear", "train.warmup_ratio": 0.0, "train.seed": 42,
}
PRESETS: dict[tuple[str, str], dict[str, Any]] = {
    ("ls-llama", "seq"): {**_ORIGINAL, "train.lr": 5e-5, "train.epochs": 10.0},
    ("ls-llama", "token"): {**_ORIGINAL, "train.lr": 1e-4, "train.epochs": 10.0},
    ("ls-unllama", "seq"): {**_ORIGINAL, "model.bidirectional": True, "model.pooling": "mean", "train.lr": 1e-4, "train.epochs": 20.0},
    ("ls-unllama", "token"): {**_ORIGINAL, "model.bidirectional": True, "train.lr": 1e-4, "train.epochs": 10.0},
}


def apply_preset(cfg: RunConfig, task: str, explicit: set[str]) -> RunConfig:
    """Fill ``cfg`` with the preset's values except for the dotted fields in ``explicit``."""
    if cfg.train.preset is None:
        return cfg
    for dotted, value in PRESETS[(cfg.train.preset, task)].items():
        if dotted in explicit:
            continue
        section, name = dotted.split(".")
        setattr(getattr(cfg, section), name, value)
    return cfg
