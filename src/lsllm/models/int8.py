"""Dynamic int8 inference on CPU: the backbone's linear layers hold int8 weights, activations are quantized per batch.

On CPUs without fast bf16 (AVX2-only), fp32 matmuls dominate inference; int8 weights quarter
the memory traffic and run on VNNI/AVX2 int8 kernels (fbgemm / oneDNN). Only the backbone is
quantized: the head `score` and the pooling stay fp32, as they are in training. It applies to a
merged fp32 model (LoRA folded in: `pipeline.load_run` merges first) and is for inference only.

Built on PyTorch's `torch.ao.quantization.quantize_dynamic`, which PyTorch marks deprecated in
favour of torchao; torchao's wheels are tied to exact torch versions, the eager API is not, and
it still ships in the torch this project pins.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn


def quantize_int8(model: nn.Module) -> nn.Module:
    """The model with every linear layer but the head `score` as a dynamic int8 layer (in place; returned).

    Raises:
        ValueError: the model is not fp32 (quantize a float32 load).
    """
    from torch.ao.quantization import default_dynamic_qconfig, quantize_dynamic

    if any(p.dtype.is_floating_point and p.dtype != torch.float32 for p in model.parameters()):
        raise ValueError("int8 quantization needs an fp32 model: load it with dtype float32 first")
    spec = {name: default_dynamic_qconfig for name, module in model.named_modules()
            if isinstance(module, nn.Linear) and name.split(".")[-1] != "score"}
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's deprecation notice (see the module docstring)
        return quantize_dynamic(model, qconfig_spec=spec, inplace=True)
