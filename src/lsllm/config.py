"""One typed description of a run: model, LoRA, data and training settings.

A run is reproducible from its `RunConfig` alone: the CLI fills it from YAML and flags, the
run directory stores it as `config.yaml`, and `--config` reads it back. Every field carries a
`help` string; the CLI's flags are generated from these dataclasses.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lsllm.errors import ConfigError
from lsllm.files import atomic_write_text
from lsllm.version import __version__

FORMAT_VERSION = 1
POOLINGS = ("last", "mean", "max")
ATTENTIONS = ("causal", "bidirectional", "repeat")
TASKS = ("seq", "token")
THRESHOLD_MODES = ("global", "per-label")
ALL_PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
ATTN_IMPLEMENTATIONS = ("sdpa", "eager", "flash_attention_2", "flex_attention")
# transformers' SchedulerType values that run without lr_scheduler_kwargs (lsllm passes none).
SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup", "inverse_sqrt")


def help_field(text: str, ls_only: str | None = None, **kwargs: Any) -> Any:
    """A dataclass field with the help text the CLI shows for its flag.

    ``ls_only``: the setting means something only to label-supervised runs (a head, pooling,
    attention that a generator cannot use); the text says what an SFT user does instead. This
    one mark decides both that `lsllm sft train` has no such flag and that an SFT config
    setting it is refused (`ls_only_settings`).
    """
    metadata = {"help": text} if ls_only is None else {"help": text, "ls_only": ls_only}
    return field(metadata=metadata, **kwargs)


def ls_only_settings(section: Any) -> dict[str, str]:
    """{field name: what to do instead} for the settings of a config section that SFT runs do not take."""
    return {f.name: f.metadata["ls_only"] for f in dataclasses.fields(section) if "ls_only" in f.metadata}


_help = help_field


@dataclass
class ModelConfig:
    """Which backbone, how it attends, and how hidden states become one vector."""

    name: str = _help("hub id, local directory, .gguf file or alias (smollm2-135m, gemma3-270m, 7b, 13b)", default="smollm2-135m")
    bidirectional: bool = _help("remove the causal mask (LS-unLLM); padding stays masked",
        ls_only='SFT generates left to right; use `lsllm train --bidirectional`', default=False)
    unmask_layers: int | None = _help("with --bidirectional: only the top K layers attend both ways (default all)",
        ls_only='SFT generates left to right; drop --unmask-layers', default=None)
    attention: str = _help("causal | bidirectional (= --bidirectional) | repeat: feed the input twice and read the "
                           "second copy, so a causal model sees the whole text (2x tokens)",
        ls_only='SFT generates left to right; use `lsllm train --attention ...`', default="causal")
    pooling: str | None = _help("seq pooling: last | mean | max (default last when causal, mean when bidirectional)",
        ls_only='SFT has no pooled head; drop --pooling', default=None)
    dtype: str = _help("backbone weights: auto (bf16 where the CPU/GPU runs it fast) | float32 | bfloat16", default="auto")
    quantize: str | None = _help("4bit: QLoRA (bitsandbytes, needs CUDA)", default=None)
    attn_implementation: str = _help("sdpa | eager | flash_attention_2", default="sdpa")
    prompt: str | None = _help("seq: wrap every input, e.g. 'Review: {text}\\nSentiment:' (\\n is a newline); "
                               "saved with the model and applied at eval/predict/serve time",
        ls_only='SFT prompts come from --template / --system-prompt; drop --prompt', default=None)
    head_init: str = _help("seq: random | labels (score rows = the LM's output embeddings of the label words: "
                           "step 0 is the zero-shot choice among the labels; use with --prompt)",
        ls_only='SFT has no classification head; drop --head-init', default="random")
    label_words: list[str] | None = _help("with --head-init labels: one word per label, in label order "
                                          "(default: the labels themselves when they are words)",
        ls_only='SFT answers with the labels themselves; drop --label-words', default=None)

    def __post_init__(self) -> None:
        check_field_types(self, "model")
        if self.attn_implementation not in ATTN_IMPLEMENTATIONS:
            raise ConfigError(f"--attn-implementation must be one of {', '.join(ATTN_IMPLEMENTATIONS)}, got {self.attn_implementation!r}")
        if self.pooling is not None and self.pooling not in POOLINGS:
            raise ConfigError(f"pooling must be one of {', '.join(POOLINGS)}, got {self.pooling!r}")
        if self.attention not in ATTENTIONS:
            raise ConfigError(f"--attention must be one of {', '.join(ATTENTIONS)}, got {self.attention!r}")
        if self.attention == "repeat" and self.bidirectional:
            raise ConfigError("--attention repeat contradicts --bidirectional (or --preset ls-unllama): repeat keeps the causal mask; drop one")
        if self.bidirectional or self.attention == "bidirectional":  # two spellings of one mode, kept in step
            self.bidirectional, self.attention = True, "bidirectional"
        if self.prompt is not None:
            self.prompt = self.prompt.replace("\\n", "\n")
            names = re.findall(r"\{([A-Za-z_][A-Za-z0-9_]*)\}", self.prompt)
            if not names or len(names) != len(set(names)):
                raise ConfigError(f"--prompt must name each input field exactly once, e.g. {{text}} or {{premise}} and {{hypothesis}} "
                                  f"(where the inputs go), got {self.prompt!r}")
        if self.head_init not in ("random", "labels"):
            raise ConfigError(f"--head-init must be random or labels, got {self.head_init!r}")
        if self.label_words is not None and self.head_init != "labels":
            raise ConfigError("--label-words is used by --head-init labels only; add --head-init labels or drop it")
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
    """LoRA adapter on the backbone (or, with --no-lora, every weight); the head `score` is always trained and saved."""

    enabled: bool = _help("train LoRA adapters on a frozen backbone; --no-lora: full fine-tuning (every weight trained "
                          "and saved, fp32 master weights; for small models)", default=True)
    r: int = _help("LoRA rank", default=16)
    alpha: int = _help("LoRA alpha", default=32)
    dropout: float = _help("LoRA dropout", default=0.05)
    target_modules: list[str] = _help("projections to adapt", default_factory=lambda: list(ALL_PROJECTIONS))

    def __post_init__(self) -> None:
        check_field_types(self, "lora")
        if self.r < 1:
            raise ConfigError(f"lora r must be >= 1, got {self.r}")
        if self.alpha < 1:
            raise ConfigError(f"--lora-alpha must be >= 1, got {self.alpha}")
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
    text_column: list[str] | None = _help("text column(s) of CSV/TSV/JSONL; several are kept apart as fields "
                                          "(sentence pairs; name them in --prompt)", default=None)
    label_column: str | None = _help("label column of CSV/TSV/JSONL", default=None)
    problem: str | None = _help("seq: single-label | multi-label | regression (default: multi-label for JSON label lists "
                                "or several --label-columns, else single-label)", default=None)
    label_columns: list[str] | None = _help("multi-label: one 0/1 column per label, e.g. SemEval-2018 E-c's "
                                            "anger anticipation ...", default=None)
    label_separator: str | None = _help("multi-label: the label column holds several labels joined by this, e.g. ','",
                                        default=None)
    tag_column: int = _help("CoNLL: which column holds the tag (default last)", default=-1)
    validation_file: str | None = _help("validation file beside --data FILE", default=None)
    test_file: str | None = _help("test file beside --data FILE", default=None)
    labels: list[str] | None = _help("explicit label set in id order (default: from labels.txt or sorted train labels)", default=None)
    train_limit: int | None = _help("use the first N training examples", default=None)
    train_per_class: int | None = _help("single-label: keep N training examples of each label, a seeded stratified "
                                        "sample (seed --subset-seed, else --split-seed), e.g. 20 per intent", default=None)
    eval_limit: int | None = _help("use the first N validation/test examples", default=None)
    max_length: int = _help("maximum tokens per input (token tasks use sliding windows beyond it)", default=128)
    label_all_subtokens: bool = _help("NER: label every sub-token, not only the first of each word", default=False)
    split_seed: int = _help("seed used to carve a validation split from train when there is none", default=42)
    carve: str = _help("how that split is carved: random rows (default) | whole: rows no other training row contains, "
                       "the rows inside them left out of train (treebank data whose train holds phrases of its "
                       "sentences, e.g. SST-2: docs/tune.md)", default="random")
    subset_seed: int | None = _help("shuffle train with this seed before --train-limit (lsllm study: the same subset "
                                    "for every method at a size and seed)", default=None)

    def __post_init__(self) -> None:
        check_field_types(self, "data")
        if self.labels is not None:
            if not self.labels or any(not x.strip() for x in self.labels):
                raise ConfigError("--labels needs one or more non-empty label names, in id order")
            if len(set(self.labels)) != len(self.labels):
                raise ConfigError(f"--labels lists a label twice ({', '.join(self.labels)}); give each once, in id order")
        if self.carve not in ("random", "whole"):
            raise ConfigError(f"--carve must be random or whole, got {self.carve!r}")
        if self.task is not None and self.task not in TASKS:
            raise ConfigError(f"task must be seq or token, got {self.task!r}")
        if self.label_columns is not None and (not self.label_columns or len(set(self.label_columns)) != len(self.label_columns)):
            raise ConfigError("--label-columns needs distinct column names, one per label")
        if self.label_columns and self.label_column:
            raise ConfigError("--label-columns (one 0/1 column per label) and --label-column (one column) exclude each other")
        if self.label_separator is not None and not self.label_separator:
            raise ConfigError("--label-separator must be a non-empty string, e.g. ','")
        if self.max_length < 8:
            raise ConfigError(f"max_length must be >= 8, got {self.max_length}")
        for name in ("train_limit", "eval_limit", "train_per_class"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be >= 1, got {value}")


# --threads, for training (TrainConfig.threads) and inference (lsllm.inference.settings): one text
THREADS_HELP = "torch CPU threads (default: one per core; fewer when other processes share the cores)"


@dataclass
class TrainConfig:
    """Optimisation, selection and the run directory."""

    epochs: float = _help("training epochs (ignored when max_steps > 0)", default=3.0)
    max_steps: int = _help("stop after N optimizer steps (overrides epochs)", default=-1)
    batch_size: int = _help("examples per step per device", default=16)
    grad_accum: int = _help("gradient accumulation steps", default=1)
    lr: float = _help("peak learning rate", default=2e-4)
    head_lr: float | None = _help("learning rate of the head `score` (default: --lr)",
        ls_only='SFT has no classification head; drop --head-lr', default=None)
    weight_decay: float = _help("AdamW weight decay", default=0.01)
    warmup_ratio: float = _help("linear warm-up fraction", default=0.0)
    scheduler: str = _help("learning-rate schedule (HF names: linear, cosine, constant)", default="linear")
    eval_steps: int | None = _help("evaluate every N steps (default: once per epoch)",
        ls_only='SFT evaluates once after training; drop --eval-steps', default=None)
    early_stopping: int | None = _help("stop after N evaluations without improvement",
        ls_only='SFT trains for --epochs/--max-steps; drop --early-stopping', default=None)
    class_weights: str | None = _help("balanced: weight the loss by inverse class frequency",
        ls_only="SFT's loss is over answer tokens; drop --class-weights", default=None)
    pack: bool = _help("padding-free packing of training batches (fast path)", default=True)
    thresholds: str = _help("multi-label: decision thresholds tuned on validation: global (one for all labels) | "
                            "per-label", ls_only="SFT answers with label words, it has no thresholds; drop --thresholds",
                            default="global")
    seed: int = _help("random seed", default=42)
    output: str | None = _help("run directory (default runs/<data>-<timestamp>)", default=None)
    resume: bool = _help("continue the run in --output from its last checkpoint", default=False)
    preset: str | None = _help("ls-llama | ls-unllama: the original paper's recipes; lsllm: ours (docs/accuracy.md); "
                               "auto (the default): the recipe chosen from the data, every choice overridable by its flag",
        ls_only='presets are LS recipes; drop --preset', default=None)
    threads: int | None = _help(THREADS_HELP, default=None)

    def __post_init__(self) -> None:
        check_field_types(self, "train")
        for name in ("lr", "weight_decay", "warmup_ratio", "epochs"):
            if not math.isfinite(getattr(self, name)):
                raise ConfigError(f"--{name.replace('_', '-')} must be a finite number, got {getattr(self, name)}")
        if self.max_steps == 0 or self.max_steps < -1:
            raise ConfigError(f"--max-steps must be >= 1 (or -1: train for --epochs), got {self.max_steps}")
        if self.max_steps < 1 and self.epochs <= 0:
            raise ConfigError(f"--epochs must be > 0 (or give --max-steps N), got {self.epochs:g}: a run must train")
        if self.weight_decay < 0:
            raise ConfigError(f"--weight-decay must be >= 0, got {self.weight_decay}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ConfigError(f"--warmup-ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.scheduler not in SCHEDULERS:
            raise ConfigError(f"--scheduler must be one of {', '.join(SCHEDULERS)}, got {self.scheduler!r}")
        for name in ("eval_steps", "early_stopping"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.seed < 2**32:
            raise ConfigError(f"--seed must be in [0, 2**32), got {self.seed}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"--threads must be >= 1, got {self.threads}")
        if self.batch_size < 1 or self.grad_accum < 1:
            raise ConfigError("batch_size and grad_accum must be >= 1")
        if self.lr <= 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        if self.head_lr is not None and not (math.isfinite(self.head_lr) and self.head_lr > 0):
            raise ConfigError(f"--head-lr must be a number > 0, got {self.head_lr}")
        if self.thresholds not in THRESHOLD_MODES:
            raise ConfigError(f"--thresholds must be {' or '.join(THRESHOLD_MODES)}, got {self.thresholds!r}")
        if self.class_weights not in (None, "balanced"):
            raise ConfigError(f"class_weights must be balanced or unset, got {self.class_weights!r}")
        if self.preset not in (None, "ls-llama", "ls-unllama", "lsllm", "auto"):
            raise ConfigError(f"preset must be ls-llama, ls-unllama, lsllm or auto, got {self.preset!r}")


@dataclass
class RunConfig:
    """Everything that defines a run; saved as config.yaml in the run directory."""

    model: ModelConfig = field(default_factory=ModelConfig)
    lora: LoraSettings = field(default_factory=LoraSettings)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
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
        if not isinstance(version, int) or isinstance(version, bool):
            raise ConfigError(f"format_version must be an integer, got {version!r}; the run's config.yaml is damaged")
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
        atomic_write_text(Path(path), yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        return cls.from_dict(read_yaml_mapping(path))


def read_mapping(path: str | Path, fmt: str = "yaml", missing: str = "no such file", empty: str = "empty",
                 fix: str = "") -> dict[str, Any]:
    """A YAML or JSON file's top-level mapping, or one ConfigError line naming the file (and line) and the fix.

    The one strict reader of lsllm's own files (configs, a run folder's JSON): every reason a
    file cannot be used (missing, unreadable, not UTF-8, not YAML/JSON, nested too deeply,
    empty, not a mapping) is one line, never a traceback.

    Args:
        fmt: "yaml" or "json".
        missing / empty: what a missing / empty file is called, e.g. "no such config file".
        fix: what the user does about a damaged one, appended after "; ".
    """
    path = Path(path)
    hint = f"; {fix}" if fix else ""
    try:
        text = path.read_text(encoding="utf-8")
        raw = yaml.safe_load(text) if fmt == "yaml" else json.loads(text)
    except FileNotFoundError:
        raise ConfigError(f"{path}: {missing}") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte 0x{err.object[err.start]:02x}){hint or '; save the file as UTF-8'}") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read it ({err.strerror or type(err).__name__})") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to read{hint}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        reason = " ".join(str(getattr(err, "problem", None) or err).split())
        raise ConfigError(f"{where}: not valid YAML ({reason}){hint}") from None
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}:{err.lineno}: not valid JSON ({err.msg}){hint}") from None
    except ValueError as err:  # e.g. an integer beyond Python's digit limit
        raise ConfigError(f"{path}: unreadable ({' '.join(str(err).split())[:80]}){hint}") from None
    if raw is None:
        raise ConfigError(f"{path}: {empty}{hint}")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping, got {type(raw).__name__}{hint}")
    return raw


def read_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """A config file's top-level mapping, with one-line errors for a missing file or bad YAML."""
    return read_mapping(path, "yaml", missing="no such config file", empty="empty config file",
                        fix="a config is a mapping with sections model/lora/data/train")


def _build(factory: Any, values: dict[str, Any], section: str) -> Any:
    """Build one section dataclass from a mapping, naming unknown keys."""
    if not isinstance(values, dict):
        raise ConfigError(f"section {section!r} must be a mapping of settings, got {type(values).__name__}")
    cls = type(factory())
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - names
    if unknown:
        raise ConfigError(f"unknown key(s) in section {section!r}: {', '.join(sorted(unknown))}; known: {', '.join(sorted(names))}")
    return cls(**values)


_SCALARS = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false"}


def check_field_types(obj: Any, section: str) -> None:
    """Check (and normalise) each field of a config dataclass against its annotation.

    A YAML `lr: abc` or `batch_size: [1]` would otherwise fail deep inside a comparison or a
    torch call with a traceback. Normalised, because YAML 1.1 reads `2e-4` as a string and users
    write `epochs: 1`: numeric strings and integers become floats for float fields, and a single
    name becomes a one-item list for list fields. Annotations not understood here pass as is.
    """
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        options = [part.strip() for part in str(f.type).split("|")]
        if value is None and "None" in options:
            continue
        for option in (o for o in options if o != "None"):
            ok, normal = _conform(value, option)
            if ok:
                setattr(obj, f.name, normal)
                break
        else:
            wanted = " or ".join(_SCALARS.get(o, "a list of names" if o.startswith("list") else o)
                                 for o in options if o != "None")
            shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
            raise ConfigError(f"{section}.{f.name} must be {wanted}, got {shown}; fix the flag or --config file")


def _conform(value: Any, option: str) -> tuple[bool, Any]:
    """(whether `value` fits the annotation `option`, the value normalised)."""
    if option == "bool":
        return isinstance(value, bool), value
    if option == "int":
        return isinstance(value, int) and not isinstance(value, bool), value
    if option == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return True, float(value)
        if isinstance(value, str):
            try:
                return True, float(value)
            except ValueError:
                return False, value
        return False, value
    if option == "str":
        return isinstance(value, str), value
    if option.startswith("list[") and option.endswith("]"):
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            return False, value
        inner = option[5:-1].strip()
        if inner == "str":  # label names may be written as numbers in YAML: [0, 1]
            items = [str(x) if isinstance(x, int) and not isinstance(x, bool) else x for x in items]
        fits = [_conform(x, inner) for x in items]
        return all(ok for ok, _ in fits), [normal for _, normal in fits]
    return True, value


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
    # lsllm's own recipes, measured in docs/accuracy.md: seq starts the head from the label words
    # (give --prompt), token is LS-unLLM with LoRA r16 on every projection.
    ("lsllm", "seq"): {"model.head_init": "labels", "lora.target_modules": ["q_proj", "v_proj"], "train.lr": 3e-4,
                       "data.max_length": 64, "train.epochs": 2.0},
    ("lsllm", "token"): {"model.bidirectional": True, "train.lr": 5e-4, "train.epochs": 2.0},
}


def apply_preset(cfg: RunConfig, task: str, explicit: set[str]) -> RunConfig:
    """Fill ``cfg`` with the preset's values except for the dotted fields in ``explicit``.

    No preset, or ``auto``: nothing here (`lsllm.recipe.choose` decides from the data).
    """
    if cfg.train.preset in (None, "auto"):
        return cfg
    preset = PRESETS[(cfg.train.preset, task)]
    for dotted, value in preset.items():
        if dotted in explicit:
            continue
        section, name = dotted.split(".")
        setattr(getattr(cfg, section), name, value)
    cfg.model.__post_init__()  # a preset's bidirectional may contradict an explicit --attention repeat
    if preset.get("model.head_init") == "labels" and cfg.model.prompt is None:  # lsllm (seq): the head from the label words
        raise ConfigError(f"--preset {cfg.train.preset} ({task}) starts the head from the label words and needs --prompt, "
                          "e.g. --prompt 'Review: {text}\\nSentiment:'")
    return cfg
