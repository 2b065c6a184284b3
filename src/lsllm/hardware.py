"""What the machine multiplies fast: detected, never assumed.

Sessions run on CPUs with AMX (bf16 matmuls ~5x fp32), with avx512_bf16 only, or without
either; GPUs may or may not support bf16. ``fast_dtype`` picks bf16 only where it pays.
Also how many CPU threads torch should use: ``configure_threads`` applies ``--threads`` and warns
when other processes already keep the cores busy.
"""

from __future__ import annotations

import functools
import logging
import os
import platform
from pathlib import Path

import torch

from lsllm.errors import ConfigError

log = logging.getLogger(__name__)


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


def machine() -> dict:
    """What a result was measured on (run.json, `lsllm record`): CPU model, logical CPUs, bf16 kind, GPU."""
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu_name(), "logical_cpus": os.cpu_count(), "cpu_bf16": cpu_bf16_kind(), "gpu": gpu}


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


def training_dtype(name: str, full_finetune: bool, device: torch.device | str = "cpu") -> tuple[torch.dtype, bool]:
    """(the dtype trained weights are kept in, whether the forward pass runs under bf16 autocast).

    LoRA trains small fp32 adapters beside a frozen backbone, so the backbone itself may be bf16.
    Full fine-tuning updates every weight, and an AdamW step (about lr, relative) is below bf16's
    resolution (2^-8 relative) at the usual rates, so it would round away: those weights stay fp32
    and bf16 comes through autocast (the Trainer's bf16 mixed precision).
    """
    dtype = resolve_dtype(name, device)
    if full_finetune and dtype == torch.bfloat16:
        return torch.float32, True
    return dtype, False


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


_oversubscription_warned = False


def load_average() -> float | None:
    """The 1-minute load average, or None where the platform has none (Windows)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def warn_if_oversubscribed() -> bool:
    """Warn once per process when the machine is busier than it has cores.

    torch starts one OpenMP thread per core and its threads spin-wait on each other at every op;
    when another process holds some of those cores (two trainings on two cores, say), each op
    waits for a thread that is not running and steps became ~50x slower on this project's
    2-core machines. `--threads N` (N at most the free cores) avoids it.

    Returns:
        True when the warning was logged by this call.
    """
    global _oversubscription_warned
    load, cores = load_average(), os.cpu_count() or 1
    if _oversubscription_warned or load is None or load <= cores or torch.get_num_threads() == 1:
        return False  # one thread (OMP_NUM_THREADS=1, say) waits for no other: nothing to act on
    _oversubscription_warned = True
    log.warning("the 1-minute load average is %.1f on %d CPU cores: other processes compete for them, and torch's "
                "%d threads can then slow each other down many times; pass --threads N (e.g. --threads 1) "
                "to use fewer threads", load, cores, torch.get_num_threads())
    return True


def configure_threads(threads: int | None) -> None:
    """`--threads N`: torch's CPU threads; without it, warn (once) if the machine is oversubscribed.

    Raises:
        ConfigError: N < 1.
    """
    if threads is None:
        warn_if_oversubscribed()
        return
    if threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {threads}")
    torch.set_num_threads(threads)
