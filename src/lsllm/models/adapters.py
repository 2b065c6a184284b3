"""LoRA / QLoRA through PEFT, with the classification head always trained and saved.

PEFT's task types SEQ_CLS / TOKEN_CLS put a module named ``score`` into ``modules_to_save``;
we name it explicitly too, so a renamed head can never be silently frozen.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, TaskType, get_peft_model, prepare_model_for_kbit_training
from peft.tuners.lora import LoraLayer
from torch import nn

from lsllm.config import LoraSettings
from lsllm.errors import ConfigError
from lsllm.models.classifiers import LSForSequenceClassification, LSForTokenClassification
from lsllm.models.dropout import use_fast_dropout

HEAD = "score"


def task_type(model: nn.Module) -> TaskType:
    if isinstance(model, LSForSequenceClassification):
        return TaskType.SEQ_CLS
    if isinstance(model, LSForTokenClassification):
        return TaskType.TOKEN_CLS
    raise ConfigError(f"{type(model).__name__} is not an lsllm classifier")


def apply_lora(model: nn.Module, settings: LoraSettings, quantized: bool = False) -> PeftModel:
    """Wrap a classifier with LoRA adapters on ``settings.target_modules``; the head stays trainable.

    Raises:
        ConfigError: a target module name matches nothing in the backbone.
    """
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [t for t in settings.target_modules if t not in present]
    if missing:
        linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, nn.Linear)} - {HEAD})
        raise ConfigError(f"target module(s) {', '.join(missing)} not in this model; its linear layers are: {', '.join(linear)}")
    if quantized:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    config = LoraConfig(
        task_type=task_type(model),
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=list(settings.target_modules),
        modules_to_save=[HEAD],
    )
    model = get_peft_model(model, config)
    use_fast_dropout(model)
    return model


def attach_adapter(base: nn.Module, adapter_dir: str | Path, merge: bool = True, device=None, dtype=None) -> nn.Module:
    """A saved adapter (+ head) on ``base``, ready for inference (LS runs and SFT runs alike).

    With ``merge`` the base should be fp32: LoRA is folded in there, so its delta is not rounded
    to bf16 before it is added, and the result is then cast to ``dtype`` and moved to ``device``.
    Without it (a 4-bit base) the adapter stays a PEFT wrapper and nothing is cast.
    """
    model = PeftModel.from_pretrained(base, str(adapter_dir))
    if not merge:
        return model.eval()
    return model.merge_and_unload().to(device=device, dtype=dtype).eval()


@contextmanager
def merged_for_inference(model: nn.Module):
    """Fold LoRA into the base weights for a block of inference, then restore them bit for bit.

    Inference then runs plain matmuls (no adapter ops); restoring the saved weights (rather than
    subtracting the delta again) keeps bf16 base weights exactly as they were for more training.
    """
    if not isinstance(model, PeftModel):  # --no-lora: the weights are already plain
        yield model
        return
    layers = [m for m in model.modules() if isinstance(m, LoraLayer)]
    saved = [layer.get_base_layer().weight.detach().clone() for layer in layers]
    model.merge_adapter()
    try:
        yield model
    finally:
        model.unmerge_adapter()
        with torch.no_grad():
            for layer, weight in zip(layers, saved, strict=True):
                layer.get_base_layer().weight.copy_(weight)
