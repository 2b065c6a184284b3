"""Loading the causal LM for SFT: the base model for training, base + adapter (or a --no-lora run's own weights) for evaluation.

Weights come only through `lsllm.models.backbones` (aliases, GGUF, hub, local folders), so an
SFT run and an LS run of the same `--model` start from the same weights.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, PreTrainedModel, PreTrainedTokenizerBase

from lsllm.config import ModelConfig
from lsllm.errors import ModelError
from lsllm.hardware import default_device, resolve_dtype
from lsllm.models.adapters import attach_adapter
from lsllm.models.backbones import check_quantization, load_model, load_tokenizer
from lsllm.runs import SFT_INFO, SFTInfo, read_model_info

log = logging.getLogger(__name__)


def load_base_model(
    model_cfg: ModelConfig, dtype: torch.dtype | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, dict[str, Any]]:
    """The backbone as a causal LM (in `dtype`, default the configured one), its tokenizer and source record."""
    check_quantization(model_cfg.quantize)
    model, tokenizer, source = load_model(
        model_cfg.name,
        AutoModelForCausalLM,
        dtype=dtype or resolve_dtype(model_cfg.dtype, default_device()),
        quantize=model_cfg.quantize,
        attn_implementation=model_cfg.attn_implementation,
    )
    return model, tokenizer, source


def load_trained(model_cfg: ModelConfig, adapter_dir: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, dict[str, Any]]:
    """Base model + a run's LoRA adapter (or a --no-lora run's own weights), ready to generate; also the base weights' source record.

    Unquantized bases are loaded in fp32, the adapter merged there and the result cast to the
    configured dtype, so the LoRA delta is not rounded to bf16 before it is added. A 4-bit base
    keeps the adapter unmerged. The tokenizer is the one saved with the adapter, so pad/EOS
    settings are the ones trained with.
    """
    if not (adapter_dir / SFT_INFO).is_file() and not (adapter_dir / "adapter_config.json").is_file():
        raise ModelError(f"{adapter_dir}: no {SFT_INFO}; is this an SFT run directory that finished training?")
    info = read_model_info(adapter_dir, SFTInfo)  # one line naming a missing or damaged file, not a traceback
    device = default_device()
    dtype = resolve_dtype(model_cfg.dtype, device)
    if info.finetune == "full":  # the run's model/ is the whole fine-tuned model
        model = AutoModelForCausalLM.from_pretrained(str(adapter_dir), dtype=dtype, attn_implementation=model_cfg.attn_implementation)
        return model.to(device).eval(), load_tokenizer(adapter_dir), info.weights
    quantized = model_cfg.quantize is not None
    base, _, source = load_base_model(model_cfg, dtype=None if quantized else torch.float32)
    model = attach_adapter(base, adapter_dir, merge=not quantized, device=device, dtype=dtype)
    return model, load_tokenizer(adapter_dir), source
