"""`lsllm train` under torchrun on a GPU: NCCL's process group, the run written by rank 0, the group left cleanly.

tests/test_distributed.py proves data parallel on CPU processes over gloo; what only a GPU shows is
the same launch over NCCL: the process group starts on the GPU, training runs inside it, every
process leaves it after training (lifecycle.run_training: a barrier, then accelerate's end_training)
and the launcher exits 0; and FSDP (configs/accelerate/fsdp.yaml), which accelerate runs only on
CUDA. One GPU lends one process: several GPUs (or machines) are not proven here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tests.conftest import free_port
from tests.gpu.conftest import GPU, ON_CUDA, TRAIN_FLAGS, train_run

pytestmark = GPU
CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_torchrun_on_the_gpu_trains_writes_the_run_and_exits_cleanly(tmp_path, tiny_model_dir, seq_data):
    out, debug = tmp_path / "run", tmp_path / "debug"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "LSLLM_DEBUG_RANKS": str(debug), "LSLLM_PROGRESS": "0"}
    flags = ["--dtype", "bfloat16"] if ON_CUDA else ["--threads", "1"]
    if not ON_CUDA:  # the dry run on a CPU (bench/gpu_check.sh --dry-run): gloo instead of NCCL
        env["CUDA_VISIBLE_DEVICES"] = ""
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "1", "--master-port", str(free_port()),
               "-m", "lsllm", "train", "--data", str(seq_data), "--model", str(tiny_model_dir), "--output", str(out),
               *TRAIN_FLAGS, *flags]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    record = json.loads((out / "run.json").read_text())
    assert {k: record[k] for k in ("launcher", "world_size", "nodes", "sharding")} == {
        "launcher": "torchrun", "world_size": 1, "nodes": 1, "sharding": None}
    assert json.loads((out / "logs" / "trainer_state.json").read_text())["global_step"] == 6
    assert json.loads((out / "metrics.json").read_text())["test"]["n_examples"] == 12
    lines = [json.loads(line) for line in (debug / "rank-0.jsonl").read_text().splitlines()]
    assert sum("examples" in r for r in lines) in (6, 7)  # 6 steps; accelerate collates one batch ahead mid-epoch
    assert sum("trainable_sha256" in r for r in lines) == 1


def test_fsdp_on_the_gpu_trains_with_sharded_weights_and_matches_a_plain_run(tmp_path, tiny_model_dir, seq_data):
    """configs/accelerate/fsdp.yaml on one GPU: the FSDP path (evaluation in step, weights gathered to rank 0) end to end.

    One process holds every share, so this proves lsllm's FSDP path on CUDA, not sharding across GPUs.
    """
    if not ON_CUDA:
        pytest.skip("FSDP runs only on CUDA (on a CPU lsllm refuses it: tests/test_distributed.py)")
    flags = ["--dtype", "float32", "--lora-dropout", "0"]
    runs = {"plain": train_run(seq_data, tiny_model_dir, tmp_path / "plain", *flags), "fsdp": tmp_path / "fsdp"}
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(CONFIGS / "accelerate" / "fsdp.yaml"),
               "--num_processes", "1", "--main_process_port", str(free_port()), "-m", "lsllm", "train",
               "--data", str(seq_data), "--model", str(tiny_model_dir), "--output", str(runs["fsdp"]), *TRAIN_FLAGS, *flags]
    done = subprocess.run(command, env={**os.environ, "HF_HUB_OFFLINE": "1", "LSLLM_PROGRESS": "0"}, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    record = json.loads((runs["fsdp"] / "run.json").read_text())
    assert (record["launcher"], record["sharding"]) == ("accelerate", "fsdp")
    curves = {name: [e["loss"] for e in json.loads((out / "logs" / "trainer_state.json").read_text())["log_history"]
                     if "loss" in e] for name, out in runs.items()}
    assert curves["fsdp"] == pytest.approx(curves["plain"], rel=1e-4)
    from safetensors.torch import load_file

    mine, plain = (load_file(str(runs[n] / "model" / "adapter_model.safetensors")) for n in ("fsdp", "plain"))
    assert mine.keys() == plain.keys()
    assert all(torch.allclose(mine[k], plain[k], atol=1e-4) for k in plain)
