"""Shared pieces of the benchmark: hardware facts, the cached model, the data, FLOP counting.

Kept apart from the recipes so that every path (reference, tuned, lsllm) is measured against
the same examples, the same model files and the same FLOP formula.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

MAX_LENGTH = 64
"""Every path truncates to this many tokens (the reference recipe also pads to it)."""

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = Path(os.environ.get("LSLLM_DATA_DIR", REPO.parent / "shared" / "data"))


# ----------------------------------------------------------------------------- examples
@dataclass
class SeqExample:
    text: str
    label: str


@dataclass
class TokenExample:
    tokens: list[str]
    tags: list[str]


@dataclass
class TaskData:
    """One benchmark task: its kind, label list (id order) and splits."""

    name: str  # "sst2" | "conll03"
    task: str  # "seq" | "token"
    labels: list[str]
    train: list
    validation: list


def read_sst2(data_dir: Path) -> TaskData:
    """SST-2 TSV files (`text<TAB>label`, label 0/1); label names from labels.txt."""
    folder = data_dir / "sst2"
    names_file = folder / "labels.txt"
    names = names_file.read_text().split("\n") if names_file.exists() else ["negative", "positive"]
    names = [n.strip() for n in names if n.strip()]

    def read(split: str) -> list[SeqExample]:
        path = folder / f"{split}.tsv"
        if not path.exists():
            raise SystemExit(f"{path}: missing; pass --data-dir pointing at the shared data folder")
        out = []
        for lineno, line in enumerate(path.read_text().splitlines()[1:], start=2):
            if not line.strip():
                continue
            text, _, label = line.rpartition("\t")
            if not label.strip().isdigit():
                raise SystemExit(f"{path}:{lineno}: label {label!r} is not an integer id")
            out.append(SeqExample(text=text, label=names[int(label)]))
        return out

    return TaskData("sst2", "seq", names, read("train"), read("validation"))


def read_conll03(data_dir: Path) -> TaskData:
    """CoNLL-2003 `token tag` columns; blank lines split sentences, -DOCSTART- lines are dropped."""
    folder = data_dir / "conll03"

    def read(split: str) -> list[TokenExample]:
        path = folder / f"{split}.txt"
        if not path.exists():
            raise SystemExit(f"{path}: missing; pass --data-dir pointing at the shared data folder")
        sentences, tokens, tags = [], [], []
        for line in path.read_text().splitlines() + [""]:
            parts = line.split()
            if not parts or parts[0] == "-DOCSTART-":
                if tokens:
                    sentences.append(TokenExample(tokens, tags))
                tokens, tags = [], []
                continue
            tokens.append(parts[0])
            tags.append(parts[-1])
        return sentences

    train, validation = read("train"), read("validation")
    # BIO tags, "O" first, the rest sorted: a stable id order for every path.
    found = {t for ex in train + validation for t in ex.tags}
    labels = ["O"] + sorted(found - {"O"})
    return TaskData("conll03", "token", labels, train, validation)


READERS = {"sst2": read_sst2, "conll03": read_conll03}


def load_task(name: str, data_dir: Path) -> TaskData:
    return READERS[name](data_dir)


def spread_sample(examples: list, n: int) -> list:
    """`n` examples taken evenly across the split: deterministic and not just the first file lines."""
    if n >= len(examples):
        return list(examples)
    step = len(examples) / n
    return [examples[int(i * step)] for i in range(n)]


# ----------------------------------------------------------------------------- model files
def resolve_model_dir(name: str) -> Path:
    """A local safetensors directory (model + tokenizer) for `name`, through lsllm's own resolver and cache.

    `smollm2-135m` (or a .gguf file) is dequantized once and cached, so each measuring
    subprocess loads plain safetensors in about a second; a directory is used as it is.
    """
    from lsllm.models.backbones import resolve_model

    return Path(resolve_model(name).path)


def model_sizes(model_dir: Path) -> dict:
    """Parameter counts from config.json (no weights loaded): total, embedding, non-embedding."""
    cfg = json.loads((model_dir / "config.json").read_text())
    h, inter, layers = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    heads, kv = cfg["num_attention_heads"], cfg.get("num_key_value_heads", cfg["num_attention_heads"])
    head_dim = cfg.get("head_dim") or h // heads
    attn = h * heads * head_dim * 2 + h * kv * head_dim * 2  # q, o + k, v
    mlp = 3 * h * inter
    norms = 2 * h
    non_embedding = layers * (attn + mlp + norms) + h
    embedding = cfg["vocab_size"] * h
    return {
        "non_embedding": non_embedding,
        "embedding": embedding,
        "layers": layers,
        "hidden": h,
        "attn_width": heads * head_dim,
    }


# ----------------------------------------------------------------------------- FLOPs
FLOP_FORMULA = (
    "train: 4 * N_nonembedding FLOP per real token (forward 2N + backward through activations 2N; "
    "frozen weights need no weight gradients, LoRA/head gradients are < 1% extra); "
    "infer: 2 * N_nonembedding. Attention score FLOPs (4 * layers * T * width per token forward) "
    "are < 1% at T <= 64 and left out; padding and recomputation are not counted (useful FLOPs only)."
)


def flops_per_token(sizes: dict, mode: str) -> float:
    return (4.0 if mode == "train" else 2.0) * sizes["non_embedding"]


# ----------------------------------------------------------------------------- hardware
def cpu_info() -> dict:
    """CPU model and the bf16 features that decide the fast dtype (read by lsllm.hardware, as training reads them)."""
    from lsllm.hardware import cpu_bf16_kind, cpu_flags, cpu_name

    return {
        "model": cpu_name(),
        "logical_cpus": os.cpu_count(),
        "amx_bf16": "amx_bf16" in cpu_flags(),
        "avx512_bf16": "avx512_bf16" in cpu_flags(),
        "fast_dtype": "bfloat16" if cpu_bf16_kind() else "float32",
    }


def gpu_info() -> dict | None:
    import torch

    if not torch.cuda.is_available():
        return None
    props = torch.cuda.get_device_properties(0)
    return {"name": props.name, "memory_gib": round(props.total_memory / 2**30, 1), "bf16": torch.cuda.is_bf16_supported()}


# ----------------------------------------------------------------------------- output
def write_json_atomic(path: Path, data: dict) -> None:
    from lsllm.files import atomic_write_json

    atomic_write_json(path, data)
