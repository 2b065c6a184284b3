"""What a run is, in words: its method, attention and recipe, said the same way everywhere.

The model card, report.html, the server's /info, `lsllm compare` and `lsllm study` all describe
runs; they read it here, so a `--attention repeat` run is never "causal (LS-LLM)" in one place
and "repeat" in another. Everything works on a run's config.yaml as a plain mapping and its model/ info file as
a `runs.RunInfo` (or none), so runs of older versions and runs read without loading a model describe
alike; a `RunConfig` is described through its ``to_dict()``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lsllm.runs import RunInfo

# The methods a study compares (and `method_key` names), with what each one is.
METHODS = {
    "ls": "LS-LLM (causal, label-supervised head)",
    "unls": "LS-unLLM (causal mask removed)",
    "repeat": "LS-LLM with the input repeated (read on the second copy)",
    "sft": "SFT (instruction tuning, answers generated)",
}


def _section(config: dict[str, Any], name: str) -> dict[str, Any]:
    value = config.get(name)
    return value if isinstance(value, dict) else {}


def method_key(config: dict[str, Any]) -> str:
    """ls | unls | repeat | sft, from a config.yaml mapping."""
    if config.get("sft"):
        return "sft"
    model = _section(config, "model")
    if model.get("attention") == "repeat":
        return "repeat"
    return "unls" if model.get("bidirectional") or model.get("attention") == "bidirectional" else "ls"


def method_name(config: dict[str, Any]) -> str:
    """A short name for tables: LS-LLM, LS-unLLM, LS-LLM (repeat) or SFT (its template)."""
    key = method_key(config)
    if key == "sft":
        sft = config["sft"]
        return f"SFT ({sft.get('template', '?') if isinstance(sft, dict) else '?'})"
    return {"ls": "LS-LLM", "unls": "LS-unLLM", "repeat": "LS-LLM (repeat)"}[key]


def attention(config: dict[str, Any], info: RunInfo | None = None) -> str:
    """How the model attends, e.g. "bidirectional (LS-unLLM), top 4 layers unmasked"; the saved model's info wins."""
    key = method_key(config)
    if key == "sft":
        return "causal (generation)"
    if key == "repeat":
        return "causal, input repeated and read on the second copy (LS-LLM, repeat)"
    model = _section(config, "model")
    bidirectional = info.bidirectional if info is not None else model.get("bidirectional")
    if not bidirectional:
        return "causal (LS-LLM)"
    unmask = info.unmask_layers if info is not None else model.get("unmask_layers")
    return "bidirectional (LS-unLLM)" + (f", top {unmask} layers unmasked" if unmask else "")


def adaptation(lora: dict[str, Any]) -> str:
    """How the backbone was adapted: the LoRA settings, or full fine-tuning."""
    if not lora.get("enabled", True):
        return "full fine-tuning (--no-lora: every weight trained)"
    targets = ", ".join(lora.get("target_modules") or []) or "-"
    return f"LoRA r={lora.get('r')} alpha={lora.get('alpha')} dropout={lora.get('dropout')} on {targets}"


def recipe(config: dict[str, Any]) -> str:
    """One line: the SFT template, adaptation, lr, batch, length, max_length, seed."""
    lora, train, data = (_section(config, k) for k in ("lora", "train", "data"))
    steps = train.get("max_steps") or 0
    length = f"{steps} steps" if steps > 0 else f"{train.get('epochs', '-')} epochs"
    parts = [f"template {_section(config, 'sft').get('template')}"] if method_key(config) == "sft" else []
    if _section(config, "model").get("quantize"):
        parts.append("QLoRA 4-bit")
    head_lr = f", head lr {train['head_lr']}" if train.get("head_lr") else ""
    parts += [adaptation(lora), f"lr {train.get('lr')}{head_lr}", f"batch {train.get('batch_size')}x{train.get('grad_accum', 1)}",
              length, f"max_length {data.get('max_length')}", f"seed {train.get('seed')}"]
    return "; ".join(parts)
