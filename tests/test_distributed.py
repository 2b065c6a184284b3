"""Two CPU processes (torchrun, gloo): the Trainer's DDP path trains and writes one run directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_torchrun_two_cpu_processes(tmp_path, tiny_model_dir, tiny_seq_data):
    out = tmp_path / "ddp"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
               "-m", "lsllm", "train", "--data", str(tiny_seq_data), "--model", str(tiny_model_dir), "--output", str(out),
               "--max-steps", "4", "--eval-steps", "2", "--batch-size", "2", "--lora-r", "4", "--dtype", "float32"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["n_examples"] == 12
    state = json.loads(sorted((out / "checkpoints").glob("checkpoint-*"))[-1].joinpath("trainer_state.json").read_text())
    assert state["global_step"] == 4
