"""What the machine multiplies fast: detected, never assumed.

Sessions run on CPUs with AMX (bf16 matmuls ~5x fp32), with avx512_bf16 only, or without
either; GPUs may or may not support bf16. ``fast_dtype`` picks bf16 only where it pays.
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path

import torch


@functools.cache
def cpu_flags() -> frozenset[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


@functools.cache
def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def cpu_bf16_kind() -> str | None:
    """``amx`` or ``avx512_bf16`` when the CPU has bf16 matrix instructions, else None."""
    flags = cpu_flags()
    if "amx_bf16" in flags:
        return "amx"
    if "avx512_bf16" in flags:
        return "avx512_bf16"
    return None


def fast_dtype(device: torch.device | str = "cpu") -> torch.dtype:
    """bf16 where the hardware runs it natively, fp32 elsewhere."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    return torch.bfloat16 if cpu_bf16_kind() else torch.float32


def resolve_dtype(name: str, device: torch.device | str = "cpu") -> torch.dtype:
    """Map a config dtype name (auto | float32 | bfloat16) to a torch dtype."""
    if name == "auto":
        return fast_dtype(device)
    return {"float32": torch.float32, "bfloat16": torch.bfloat16}[name]


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
