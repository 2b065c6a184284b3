"""How a trained classifier runs: threads, dtype, backend, int8, matmul kernel (one dataclass, one set of flags).

`InferenceSettings` is what `lsllm eval`, `predict` and `serve` take on the command line and what
`inference.backends.open_classifier` takes from Python: the flags are generated from its fields
(`add_inference_flags`, as `lsllm.flags` generates training's from the config dataclasses) and
read back with `InferenceSettings.from_args`, so a flag is declared once. Bad values are one-line
ConfigErrors at construction (before a server binds its port or a model loads); what applies to
which backend is checked where the backend is chosen (`inference.backends`). The settings are
applied by the library when a classifier is opened (threads included), so Python callers get
what the CLI gets.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from lsllm.config import THREADS_HELP
from lsllm.errors import ConfigError

DTYPES = ("auto", "float32", "bfloat16")
BACKEND_NAMES = ("torch", "onnx")  # inference.backends.BACKENDS' keys (not imported: `lsllm --help` loads no torch)
MATMULS = ("auto", "onednn", "torch")
MIN_BATCH_TOKENS = 8


def _flag(help: str, default: Any = None, choices: tuple[str, ...] | None = None) -> Any:
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass(frozen=True)
class InferenceSettings:
    """What runs a trained classifier and how; every field None/False means the run's or the library's default."""

    threads: int | None = _flag(THREADS_HELP + "; the onnx backend: ONNX Runtime's intra-op threads too")
    dtype: str | None = _flag("torch backend: inference weights (default: the run's)", choices=DTYPES)
    backend: str | None = _flag("what runs the model: torch (default for a run) or onnx: ONNX Runtime on the CPU (an "
                                "export folder is always onnx; a run is exported first). docs/serving.md says which is "
                                "faster where", choices=BACKEND_NAMES)
    int8: bool = _flag("onnx: the int8 graph (int8 weights, down_proj and head fp32; measure its accuracy on your data "
                       "first: lsllm eval RUN --backend onnx --int8, docs/serving.md)", default=False)
    matmul: str | None = _flag("torch backend, CPU: what multiplies the weights. auto (default): oneDNN with weights "
                               "packed once, where a quick probe (cached per machine in ~/.cache/lsllm/matmul.json) "
                               "finds it faster than nn.Linear; onednn: always; torch: nn.Linear as in training. "
                               "docs/benchmarks.md", choices=MATMULS)
    device: str | None = _flag("torch backend: cpu, cuda, cuda:1, ... (default: the best available)")
    max_batch_tokens: int | None = _flag("tokens per forward pass (default: the classifier's 2048; torch: inputs are "
                                         "packed end to end in one row, so no compute goes to padding; onnx: one "
                                         "padded batch)")

    def __post_init__(self) -> None:
        if self.threads is not None and (isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1):
            raise ConfigError(f"--threads must be >= 1, got {self.threads}")
        for name in ("dtype", "backend", "matmul"):
            value, choices = getattr(self, name), _choices(name)
            if value is not None and value not in choices:
                raise ConfigError(f"--{name} must be one of {', '.join(choices)}, got {value!r}")
        if self.max_batch_tokens is not None and self.max_batch_tokens < MIN_BATCH_TOKENS:
            raise ConfigError(f"--max-batch-tokens must be >= {MIN_BATCH_TOKENS}, got {self.max_batch_tokens}")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> InferenceSettings:
        """The settings of parsed flags (`add_inference_flags`'); fields without a flag keep their defaults."""
        return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)})


# eval and predict: the backend's settings; serve adds where it runs and how much per forward pass
COMMON_FLAGS = ("threads", "dtype", "backend", "int8", "matmul")
SERVE_FLAGS = (*COMMON_FLAGS, "device", "max_batch_tokens")


def _choices(name: str) -> tuple[str, ...] | None:
    return {f.name: f.metadata["choices"] for f in dataclasses.fields(InferenceSettings)}[name]


def add_inference_flags(parser: argparse.ArgumentParser, names: tuple[str, ...] = COMMON_FLAGS) -> None:
    """``--threads/--dtype/--backend/--int8/--matmul`` (and serve's ``--device/--max-batch-tokens``), one per field."""
    group = parser.add_argument_group("inference")
    fields = {f.name: f for f in dataclasses.fields(InferenceSettings)}
    for name in names:
        f = fields[name]
        flag = "--" + name.replace("_", "-")
        if f.type == "bool":
            group.add_argument(flag, action="store_true", help=f.metadata["help"])
            continue
        kwargs: dict[str, Any] = {"default": None, "help": f.metadata["help"]}
        if f.metadata["choices"]:
            kwargs["choices"] = list(f.metadata["choices"])
        elif str(f.type).startswith("int"):
            kwargs.update(type=int, metavar="N")
        group.add_argument(flag, **kwargs)
