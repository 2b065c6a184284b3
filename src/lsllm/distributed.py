"""How this process was launched (torchrun, accelerate, neither) and which launches lsllm refuses.

Training runs on the HF Trainer, which takes its process group from the launcher's environment:
`torchrun` (and `accelerate launch --multi_gpu`, which calls torchrun's code) set RANK,
WORLD_SIZE, GROUP_WORLD_SIZE (agents = nodes) and TORCHELASTIC_RUN_ID; every `accelerate launch`
path sets ACCELERATE_MIXED_PRECISION. `launch()` reads them once, before the Trainer adds
variables of its own, so run.json can say how a run was trained.

Launches that would train, but not as asked, are refused with one line:

- `accelerate launch --cpu` with several processes or machines starts one plain Python process
  per machine and gives it no rank (accelerate's CPU path expects mpirun to set one): every
  machine would train the whole data set alone and write the same run folder (`check_launch`).
- FSDP on a machine without CUDA (`check_launch`): accelerate 1.15 would ignore the config and run
  plain data parallel (FSDP2) or fail (FSDP1).
- Sharded weights for a method that cannot train with them (`check_sharding`: SFT).

Weights sharded across processes (`weights_sharded`: DeepSpeed ZeRO-3, FSDP) change two things in LS
training: evaluation during training runs on every process in step, without folding LoRA into the
base weights (each process holds a share of them), and after training the selected weights are
gathered to rank 0, which builds the model again and goes on alone (`lifecycle.run_training`,
`Method.unshard`). DeepSpeed ZeRO-2 (optimizer state and gradients sharded, weights whole on
every process) needs neither.
"""

from __future__ import annotations

import os
from typing import Any

from lsllm.errors import ConfigError

_RANK_VARIABLES = ("RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK")
_WORLD_VARIABLES = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")


def _first_int(names: tuple[str, ...]) -> int | None:
    for name in names:
        value = os.environ.get(name, "").strip()
        if value.isdigit():
            return int(value)
    return None


def _true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")


def launcher() -> str:
    """"accelerate", "torchrun", "mpi" (a rank from an MPI launcher) or "none" (a plain process)."""
    if "ACCELERATE_MIXED_PRECISION" in os.environ:  # set by every `accelerate launch` path, never by the Trainer
        return "accelerate"
    if "TORCHELASTIC_RUN_ID" in os.environ:
        return "torchrun"
    if _first_int(_WORLD_VARIABLES[1:]) is not None:
        return "mpi"
    return "none"


def sharding_requested() -> str | None:
    """"fsdp" or "deepspeed" when an accelerate config asks for one, else None."""
    if _true("ACCELERATE_USE_FSDP"):
        return "fsdp"
    if _true("ACCELERATE_USE_DEEPSPEED"):
        return "deepspeed"
    return None


def launch() -> dict[str, Any]:
    """How this process was started, for run.json: launcher, world size (processes) and nodes (launcher agents)."""
    world = _first_int(_WORLD_VARIABLES) or 1
    nodes = _first_int(("GROUP_WORLD_SIZE",))
    return {"launcher": launcher(), "world_size": world, "nodes": nodes if nodes is not None else (1 if world == 1 else None)}


def check_launch(cuda: bool) -> None:
    """Refuse the launches that would train, but not as the user asked (see the module docstring).

    Raises:
        ConfigError: one line naming the launcher setting and the fix.
    """
    if (launcher() == "accelerate" and _true("ACCELERATE_USE_CPU") and "MASTER_ADDR" in os.environ
            and _first_int(_WORLD_VARIABLES) is None):
        raise ConfigError("accelerate launch --cpu with several processes or machines starts each process without a rank "
                          "(accelerate's CPU path needs mpirun: --mpirun_hostfile), so each would train alone; "
                          "launch with `accelerate launch --multi_gpu` (gloo on CPUs) or torchrun (docs/distributed.md)")
    if sharding_requested() == "fsdp" and not cuda:
        raise ConfigError("the accelerate config asks for FSDP, which accelerate runs only on CUDA GPUs: here the Trainer "
                          "would quietly train plain data parallel; for sharded weights on CPUs use DeepSpeed ZeRO-3 "
                          "(--use_deepspeed --deepspeed_config_file configs/deepspeed/zero3.json) (docs/distributed.md)")


def weights_sharded(trainer: Any) -> bool:
    """Whether each process holds only a share of the weights (FSDP, DeepSpeed ZeRO-3); known once the Trainer read the config."""
    if trainer.is_fsdp_enabled:
        return True
    plugin = getattr(trainer.accelerator.state, "deepspeed_plugin", None) if trainer.is_deepspeed_enabled else None
    return plugin is not None and plugin.zero_stage == 3


def check_sharding(trainer: Any, supported: bool, command: str) -> None:
    """Refuse sharded weights (FSDP, ZeRO-3) for a method that cannot train with them (``supported`` False).

    Raises:
        ConfigError: one line naming the command, the stage and the fix.
    """
    if weights_sharded(trainer) and not supported:
        what = "FSDP" if trainer.is_fsdp_enabled else "DeepSpeed ZeRO stage 3"
        raise ConfigError(f"the launch asks for {what}, which shards the weights; `{command}` scores and saves the model "
                          f"on rank 0 alone and needs them whole: use DeepSpeed ZeRO-2 (configs/deepspeed/zero2.json) "
                          f"or plain data parallel (docs/distributed.md)")
