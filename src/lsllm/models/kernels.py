"""Which matmul runs an inference model's frozen weights fastest on this machine: measured, not assumed.

`nn.Linear` on the CPU hands fp32 to MKL's sgemm and bf16 to oneDNN without packing the weights.
oneDNN can instead keep each weight reordered once into its own blocked layout
(``torch.ops.mkldnn._reorder_linear_weight``, the packing Inductor's freezing pass does for bf16)
and multiply with ``torch.ops.mkldnn._linear_pointwise``. Whether that wins depends on the CPU
and dtype: on an AMD EPYC (Zen 4, AVX-512) MKL's fp32 path reached 90 GFLOP/s of one core and
oneDNN's packed weights 110, about the core's fp32 FMA limit; in bf16 both use oneDNN and packing
saved 2-5 % (docs/benchmarks.md, "The true peak"). So nothing is switched on by a rule:
`choose_matmul` times both kernels on the model's own weight shapes, once per machine, dtype,
thread count and shape set, and caches the verdict in ``~/.cache/lsllm/matmul.json``
(``$LSLLM_CACHE``). The timing is CPU time of this process, so other processes sharing the cores
(which stretch wall time) do not decide it; a kernel must be faster by `MARGIN` to be chosen.

`OneDnnLinear` computes the same products in another summation order: fp32 outputs agree with
`nn.Linear`'s to float rounding (probabilities within about 1e-6), bf16 ones to bf16 rounding.
Only inference uses it (`use_matmul` after the model is merged and cast; training keeps
`nn.Linear`, whose backward oneDNN's op does not provide).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import time
from collections import Counter
from contextlib import contextmanager
from datetime import datetime, timezone

import torch
from torch import nn

from lsllm.errors import ConfigError
from lsllm.files import atomic_write_json, cache_root
from lsllm.hardware import cpu_flags, cpu_name

log = logging.getLogger(__name__)

MATMULS = ("auto", "onednn", "torch")
"""``auto``: the measured winner (`choose_matmul`); ``onednn``: `OneDnnLinear`; ``torch``: nn.Linear as it is."""
MARGIN = 0.03  # oneDNN is chosen only when the probe finds it at least 3 % faster
CACHE_FILE = "matmul.json"
PROBE_VERSION = 1  # bump when the probe changes: older verdicts are measured again


class OneDnnLinear(nn.Module):
    """An `nn.Linear` for inference whose weight is packed once into oneDNN's layout.

    Takes any (..., in_features) input; no autograd (inference only). The plain weight is not
    kept (the packed copy is the same size); `weight` gives it back, unpacked, when asked.
    """

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.packed = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach())
        self.bias = None if linear.bias is None else linear.bias.detach()

    @property
    def weight(self) -> torch.Tensor:
        return self.packed.to_dense()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, oneDNN packed"


def linears(model: nn.Module) -> list[tuple[nn.Module, str, nn.Linear]]:
    """(parent, attribute, module) of every plain `nn.Linear` of the backbone.

    Left alone: subclasses (4-bit layers), the head ``score`` (fp32 and tiny: it stays exactly
    as trained) and LoRA's own ``lora_A`` / ``lora_B`` (idle once merged).
    """
    found = []
    for name, parent in model.named_modules():
        parts = name.split(".") if name else []
        if any(part == "score" or part.startswith("lora_") for part in parts):
            continue
        for attribute, child in parent.named_children():
            if type(child) is nn.Linear and attribute != "score" and not attribute.startswith("lora_"):
                found.append((parent, attribute, child))
    return found


def onednn_supported(dtype: torch.dtype) -> bool:
    """Whether this torch build can run `OneDnnLinear` in ``dtype`` on this CPU."""
    if not (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")):
        return False
    if dtype == torch.bfloat16:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return dtype == torch.float32


def use_matmul(model: nn.Module, choice: str) -> int:
    """Swap the model's plain linears for `OneDnnLinear` when ``choice`` is "onednn"; returns how many were swapped.

    Call it on a merged model already cast to its inference dtype and device (packed weights do not move).
    """
    if choice != "onednn":
        return 0
    swapped = linears(model)
    for parent, attribute, linear in swapped:
        setattr(parent, attribute, OneDnnLinear(linear))
    return len(swapped)


@contextmanager
def matmul_for_inference(model: nn.Module, choice: str):
    """`use_matmul` for a block, undone after it: the nn.Linear modules come back with their weights bit for bit.

    For a model that trains again afterwards (the benchmark's lsllm path). Meanwhile each plain
    weight lives only in its packed copy (unpacked again on the way out), so memory does not grow.
    """
    swapped = linears(model) if choice == "onednn" else []
    for parent, attribute, linear in swapped:
        setattr(parent, attribute, OneDnnLinear(linear))
        linear.weight.data = linear.weight.data.new_empty(0)
    try:
        yield model
    finally:
        for parent, attribute, linear in swapped:
            linear.weight.data = getattr(parent, attribute).packed.to_dense()
            setattr(parent, attribute, linear)


def weight_shapes(model: nn.Module) -> Counter:
    """(in_features, out_features) of the model's plain linears, with how many layers have each shape."""
    return Counter((linear.in_features, linear.out_features) for _, _, linear in linears(model))


def choose_matmul(model: nn.Module, setting: str | None = "auto") -> str:
    """"onednn" or "torch" for this model as it will run (its dtype, device and torch's thread count).

    ``setting`` "torch" keeps nn.Linear; "onednn" asks for oneDNN (a ConfigError where it cannot
    run); "auto" (None too) measures, once per machine and model shape (`probe`, cached), and takes
    oneDNN only where it is faster.
    """
    setting = setting or "auto"
    if setting not in MATMULS:
        raise ConfigError(f"--matmul must be one of {', '.join(MATMULS)}, got {setting!r}")
    if setting == "torch":
        return "torch"
    parameter = next(model.parameters(), None)
    shapes = weight_shapes(model)
    dtype = parameter.dtype if parameter is not None else torch.float32
    usable = parameter is not None and parameter.device.type == "cpu" and shapes and onednn_supported(dtype)
    if setting == "onednn":
        if not usable:
            raise ConfigError(f"--matmul onednn: this torch build has no oneDNN linear for {str(dtype).replace('torch.', '')} "
                              "on this device (it runs on CPUs, fp32 and bf16); use --matmul auto or torch")
        return "onednn"
    if not usable:
        return "torch"
    return cached_verdict(dtype, shapes)["choice"]


def _cache_key(dtype: torch.dtype, shapes: Counter) -> str:
    flags = hashlib.sha256(" ".join(sorted(cpu_flags())).encode()).hexdigest()[:12]
    layout = ",".join(f"{k}x{n}*{count}" for (k, n), count in sorted(shapes.items()))
    return (f"v{PROBE_VERSION}|{cpu_name()}|flags {flags}|torch {torch.__version__}|{str(dtype).replace('torch.', '')}"
            f"|threads {torch.get_num_threads()}|{layout}")


@functools.cache
def _read_cache() -> dict:
    path = cache_root() / CACHE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def cached_verdict(dtype: torch.dtype, shapes: Counter) -> dict:
    """The probe's verdict for this machine, dtype, thread count and shapes: from the cache, or measured now and cached."""
    key = _cache_key(dtype, shapes)
    cache = _read_cache()
    if isinstance(cache.get(key), dict) and cache[key].get("choice") in ("onednn", "torch"):
        return cache[key]
    verdict = probe(dtype, shapes)
    log.info("matmul probe (%s, %d threads): torch %.1f ms, oneDNN %.1f ms -> %s", str(dtype).replace("torch.", ""),
             torch.get_num_threads(), 1e3 * verdict["torch_s"], 1e3 * verdict["onednn_s"], verdict["choice"])
    cache[key] = verdict
    try:
        atomic_write_json(cache_root() / CACHE_FILE, cache)
    except OSError as err:  # a read-only home: the verdict holds for this process
        log.warning("could not cache the matmul probe in %s: %s", cache_root() / CACHE_FILE, err)
    return verdict


def probe_rows(k: int, n: int) -> int:
    """Rows of the probe's input for a (k, n) weight: 512 tokens (a fraction of an inference batch), fewer for big
    weights, so that one multiplication stays near 0.5 GFLOP (a few ms on one core)."""
    return max(32, min(512, int(2.5e8 // (k * n))))


@torch.inference_mode()
def probe(dtype: torch.dtype, shapes: Counter, rounds: int = 4) -> dict:
    """Time nn.Linear and `OneDnnLinear` on these weight shapes, interleaved, best of ``rounds``, in CPU time.

    Each shape's best time is weighted by how many layers have it, so the totals are one forward
    pass's linears at ``probe_rows`` tokens. oneDNN must also agree with nn.Linear (fp32: 1e-4
    relative; bf16: 2e-2), or it is not chosen.
    """
    generator = torch.Generator().manual_seed(0)
    totals = {"torch": 0.0, "onednn": 0.0}
    agree = True
    tolerance = 1e-4 if dtype == torch.float32 else 2e-2
    for (k, n), count in shapes.items():
        linear = nn.Linear(k, n, bias=False)
        with torch.no_grad():
            linear.weight.copy_(torch.randn(n, k, generator=generator) / k**0.5)
        linear = linear.to(dtype)
        kernels = {"torch": linear, "onednn": OneDnnLinear(linear)}
        x = torch.randn(probe_rows(k, n), k, generator=generator).to(dtype)
        outputs = {name: kernel(x) for name, kernel in kernels.items()}  # also the warm-up
        scale = float(outputs["torch"].float().abs().max()) or 1.0
        agree &= float((outputs["onednn"].float() - outputs["torch"].float()).abs().max()) <= tolerance * scale
        start = time.process_time()
        kernels["torch"](x)
        repeats = max(1, min(20, int(0.005 / max(time.process_time() - start, 1e-5))))  # ~5 ms per timing
        best = {name: float("inf") for name in kernels}
        for _ in range(rounds):
            for name, kernel in kernels.items():
                start = time.process_time()
                for _ in range(repeats):
                    kernel(x)
                best[name] = min(best[name], (time.process_time() - start) / repeats)
        for name in kernels:
            totals[name] += count * best[name]
    faster = totals["onednn"] < (1 - MARGIN) * totals["torch"]
    return {"choice": "onednn" if faster and agree else "torch", "torch_s": totals["torch"], "onednn_s": totals["onednn"],
            "agree": agree, "cpu": cpu_name(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "measured": datetime.now(timezone.utc).isoformat(timespec="seconds")}
