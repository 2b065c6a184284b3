"""`lsllm train` under torchrun on a GPU: NCCL's process group, the run written by rank 0, the group left cleanly.

tests/test_distributed.py proves data parallel on CPU processes over gloo; what only a GPU shows is
the same launch over NCCL: the process group starts on the GPU, training runs inside it, every
process leaves it after training (lifecycle.run_training: a barrier, then accelerate's end_training)
and the launcher exits 0. One GPU lends one process: several GPUs (or machines) are not proven here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import free_port
from tests.gpu.conftest import GPU, ON_CUDA, TRAIN_FLAGS

pytestmark = GPU


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
