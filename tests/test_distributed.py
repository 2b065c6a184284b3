"""Data parallel on two nodes, both on this machine: torchrun and accelerate agents meeting on 127.0.0.1, gloo.

Each node is its own launcher process (`torchrun --nnodes 2` with a c10d rendezvous; `accelerate
launch --multi_gpu --num_machines 2`, accelerate's torchrun path, which runs gloo without CUDA)
starting one training process, in its own working folder. A one-process run with the same global
batch (4 examples per step) is the reference. `LSLLM_DEBUG_RANKS` (lsllm.rank_log) makes each
process record the training examples of each of its batches and a digest of its final trainable
weights; node processes are traced with strace (file-changing system calls) where it runs.

Measured 2026-12-07 on the 2-core AMD EPYC machine, fp32, gloo: the two-node loss curves (torchrun
and accelerate alike) and DeepSpeed ZeRO-2's and ZeRO-3's equal the one-process curve to a relative 9.1e-8 at
most over 18 steps (tolerance here 1e-5); a run killed after a checkpoint and resumed under the
same launcher ends with bitwise the weights of an uninterrupted run. The module used
about 190 s of CPU time and took 4 min 50 s on both cores while other jobs kept the machine at a
load of 6-8 (16 min pinned to one core at a load of 8-18); an idle CI machine was not measured.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from lsllm import distributed
from lsllm.cli import main
from tests.conftest import NEGATIVE, POSITIVE, free_port

BIN = Path(sys.executable).parent  # the venv's torchrun and accelerate
MAX_STEPS = 18  # 2 epochs: 36 training examples, 4 per optimizer step
PER_RANK_BATCH = 2
STEPS_PER_EPOCH = 9
FLAGS = ["--max-steps", str(MAX_STEPS), "--eval-steps", "3", "--lora-r", "4", "--lora-dropout", "0", "--lr", "1e-3",
         "--dtype", "float32", "--threads", "1"]  # no dropout: one process and two draw different masks
LOSS_RTOL = 1e-5  # fp32 over gloo; measured at most 9.1e-8 (module docstring)
WEIGHT_ATOL = 1e-5  # the saved LoRA and head weights against the one-process run's (weights of magnitude ~0.2)
LAUNCH_SECONDS = 480  # an upper bound for a stuck launch, not an expectation
TRACED = ("openat", "open", "creat", "mkdir", "mkdirat", "rename", "renameat", "renameat2", "unlink", "unlinkat",
          "rmdir", "link", "linkat", "symlink", "symlinkat", "truncate", "clone", "clone3", "fork", "vfork")


def _strace_works() -> bool:
    if shutil.which("strace") is None:
        return False
    probe = subprocess.run(["strace", "-f", "-qq", "-o", os.devnull, "true"], capture_output=True)
    return probe.returncode == 0


STRACE = _strace_works()
IN_CI = os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")  # .ci/run installs strace and sets CI=true


def missing(reason: str) -> None:
    """A prerequisite that cannot be had: a failure in CI (.ci/run installs it), a skip elsewhere."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true)", pytrace=False)
    pytest.skip(reason)


# ---------------------------------------------------------------- launching
@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """The toy sentiment task of conftest (36 train, 12 validation, 12 test), for the whole module."""
    folder = tmp_path_factory.mktemp("ddp-data")
    rows = [(t, "positive") for t in POSITIVE] + [(t, "negative") for t in NEGATIVE]
    for split, repeat in (("train", 3), ("validation", 1), ("test", 1)):
        lines = ["text\tlabel"] + [f"{t}\t{label}" for _ in range(repeat) for t, label in rows]
        (folder / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    return folder


def environment(debug: Path, cache: Path) -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "",
            "TOKENIZERS_PARALLELISM": "false", "LSLLM_PROGRESS": "0", "LSLLM_CACHE": str(cache),
            "LSLLM_DEBUG_RANKS": str(debug)}


def node_command(launcher: str, node: int, port: int, train: list[str]) -> list[str]:
    """One node's launcher: 2 nodes of one process each, meeting at 127.0.0.1:port."""
    if launcher == "torchrun":
        return [str(BIN / "torchrun"), "--nnodes", "2", "--node-rank", str(node), "--nproc-per-node", "1",
                "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "-m", "lsllm", *train]
    return [str(BIN / "accelerate"), "launch", "--multi_gpu", "--num_machines", "2", "--machine_rank", str(node),
            "--main_process_ip", "127.0.0.1", "--main_process_port", str(port), "--num_processes", "2",
            "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "lsllm", *train]


def descendants(pid: int) -> list[int]:
    """The processes under ``pid`` (children, their children, ...), read from /proc."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*/children"):
            try:
                children = [int(c) for c in task.read_text().split()]
            except OSError:
                continue
            found += children
            todo += children
    return found


class Launch:
    """Two node launchers started together, each in its own session and working folder."""

    def __init__(self, launcher: str, root: Path, train: list[str], cache: Path, trace: bool = False):
        self.root, self.debug = root, root / "debug"
        self.cwds = [root / f"node{k}" for k in (0, 1)]
        self.traces = [root / f"trace{k}" for k in (0, 1)]
        port = free_port()
        self.procs, self.logs = [], []
        for node in (0, 1):
            self.cwds[node].mkdir(parents=True)
            command = node_command(launcher, node, port, train)
            if trace:
                self.traces[node].mkdir()
                command = ["strace", "-ff", "-qq", "-y", "--seccomp-bpf", "-e", f"trace={','.join(TRACED)}",
                           "-o", str(self.traces[node] / "t"), *command]
            log = (root / f"node{node}.log").open("w")
            self.logs.append(log)
            self.procs.append(subprocess.Popen(command, cwd=self.cwds[node], env=environment(self.debug, cache),
                                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True))

    def output(self) -> str:
        return "\n".join(f"--- node {k}\n{(self.root / f'node{k}.log').read_text()[-3000:]}" for k in (0, 1))

    def kill(self) -> None:
        """SIGKILL both nodes as a power cut would: each launcher and every process under it (workers have their own session)."""
        doomed = [pid for proc in self.procs for pid in descendants(proc.pid)] + [proc.pid for proc in self.procs]
        for pid in doomed:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for proc in self.procs:
            proc.wait()
        for log in self.logs:
            log.close()

    def wait(self, seconds: float = LAUNCH_SECONDS) -> list[int]:
        try:
            codes = [proc.wait(timeout=seconds) for proc in self.procs]
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"the two nodes did not finish within {seconds:g} s\n{self.output()}")
        for log in self.logs:
            log.close()
        return codes


def launch_two_nodes(launcher: str, root: Path, train: list[str], cache: Path, trace: bool = False) -> Launch:
    launch = Launch(launcher, root, train, cache, trace)
    codes = launch.wait()
    assert codes == [0, 0], launch.output()
    return launch


def train_flags(data: Path, model: Path, out: Path, batch: int) -> list[str]:
    return ["train", "--data", str(data), "--model", str(model), "--output", str(out), "--batch-size", str(batch), *FLAGS]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ddp-cache")


@pytest.fixture(scope="module")
def single(tmp_path_factory, tiny_model_dir, data_dir, cache) -> Path:
    """The reference: one plain process, 4 examples per step (the two nodes' global batch)."""
    root = tmp_path_factory.mktemp("single")
    out = root / "run"
    done = subprocess.run([sys.executable, "-m", "lsllm", *train_flags(data_dir, tiny_model_dir, out, 2 * PER_RANK_BATCH)],
                          cwd=root, env=environment(root / "debug", cache), capture_output=True, text=True,
                          timeout=LAUNCH_SECONDS)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return root


@pytest.fixture(scope="module", params=["torchrun", "accelerate"])
def two_nodes(request, tmp_path_factory, tiny_model_dir, data_dir, cache) -> tuple[str, Launch]:
    """A run on two nodes of one process each, 2 examples per process and step; traced with strace where it runs."""
    launcher = request.param
    root = tmp_path_factory.mktemp(f"two-{launcher}")
    launch = launch_two_nodes(launcher, root, train_flags(data_dir, tiny_model_dir, root / "run", PER_RANK_BATCH),
                              cache, trace=STRACE)
    return launcher, launch


# ---------------------------------------------------------------- what the runs recorded
def debug_records(debug: Path) -> dict[int, list[dict]]:
    records: dict[int, list[dict]] = {}
    for path in sorted(debug.glob("rank-*.jsonl")):
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        records[lines[0]["rank"]] = lines
    return records


def batches(records: list[dict]) -> list[list[int]]:
    return [r["examples"] for r in records if "examples" in r]


def losses(run: Path) -> dict[int, float]:
    history = json.loads((run / "logs" / "trainer_state.json").read_text())["log_history"]
    return {entry["step"]: entry["loss"] for entry in history if "loss" in entry}


def weights(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


@pytest.mark.slow
def test_each_rank_trains_a_disjoint_half_of_every_epoch(two_nodes, single):
    _, launch = two_nodes
    ranks = debug_records(launch.debug)
    assert sorted(ranks) == [0, 1]
    mine = {rank: batches(records) for rank, records in ranks.items()}
    reference = batches(debug_records(single / "debug")[0])
    assert [len(b) for b in reference] == [2 * PER_RANK_BATCH] * MAX_STEPS
    assert len(mine[0]) == len(mine[1]) == MAX_STEPS
    for step in range(MAX_STEPS):  # together the two ranks train on the one process's batch of the same step
        assert len(mine[0][step]) == len(mine[1][step]) == PER_RANK_BATCH
        assert sorted(mine[0][step] + mine[1][step]) == sorted(reference[step]), f"step {step + 1}"
    for epoch in range(MAX_STEPS // STEPS_PER_EPOCH):
        steps = slice(epoch * STEPS_PER_EPOCH, (epoch + 1) * STEPS_PER_EPOCH)
        seen = [[i for batch in mine[rank][steps] for i in batch] for rank in (0, 1)]
        assert len(set(seen[0])) == len(seen[0]) == 18 and len(set(seen[1])) == len(seen[1]) == 18, f"epoch {epoch + 1}"
        assert not set(seen[0]) & set(seen[1]), f"epoch {epoch + 1}: the ranks shared examples"
        assert set(seen[0]) | set(seen[1]) == set(range(36)), f"epoch {epoch + 1}"


@pytest.mark.slow
def test_ranks_end_with_bitwise_identical_trainable_weights(two_nodes):
    _, launch = two_nodes
    final = {rank: [r for r in records if "trainable_sha256" in r] for rank, records in debug_records(launch.debug).items()}
    assert [len(final[0]), len(final[1])] == [1, 1]
    assert final[0][0]["trainable_tensors"] == final[1][0]["trainable_tensors"] > 2  # LoRA A/B of every layer + head
    assert final[0][0]["trainable_sha256"] == final[1][0]["trainable_sha256"]


@pytest.mark.slow
def test_loss_curve_matches_one_process_with_the_same_global_batch(two_nodes, single):
    _, launch = two_nodes
    mine, reference = losses(launch.root / "run"), losses(single / "run")
    assert sorted(mine) == sorted(reference) == list(range(1, MAX_STEPS + 1))
    worst = max(abs(mine[s] - reference[s]) / abs(reference[s]) for s in reference)
    print(f"largest relative loss difference over {MAX_STEPS} steps: {worst:.2e}")
    assert worst <= LOSS_RTOL
    assert len({round(v, 4) for v in reference.values()}) > MAX_STEPS // 2  # a curve, not a constant


@pytest.mark.slow
def test_run_json_records_how_the_run_was_trained(two_nodes, single):
    launcher, launch = two_nodes
    record = json.loads((launch.root / "run" / "run.json").read_text())
    assert {k: record[k] for k in ("launcher", "world_size", "nodes", "sharding")} == {
        "launcher": launcher, "world_size": 2, "nodes": 2, "sharding": None}
    alone = json.loads((single / "run" / "run.json").read_text())
    assert {k: alone[k] for k in ("launcher", "world_size", "nodes", "sharding")} == {
        "launcher": "none", "world_size": 1, "nodes": 1, "sharding": None}


def layout(run: Path) -> set[str]:
    """The run folder's files, with the names that depend on the process layout made generic."""
    names = set()
    for path in run.rglob("*"):
        name = str(path.relative_to(run))
        name = re.sub(r"rng_state(_\d+)?\.pth$", "rng_state*.pth", name)
        names.add(re.sub(r"events\.out\.tfevents\..*$", "events.out.tfevents.*", name))
    return names


@pytest.mark.slow
def test_the_run_folder_is_written_once_in_the_one_process_layout(two_nodes, single):
    _, launch = two_nodes
    run = launch.root / "run"
    assert layout(run) == layout(single / "run")
    assert len(list((run / "logs").glob("events.out.tfevents.*"))) == 1  # one TensorBoard writer, rank 0's
    for checkpoint in (run / "checkpoints").glob("checkpoint-*"):
        assert sorted(p.name for p in checkpoint.glob("rng_state*")) == ["rng_state_0.pth", "rng_state_1.pth"]
    assert [list(cwd.iterdir()) for cwd in launch.cwds] == [[], []]  # nothing written where the nodes started
    assert "run written to" in (launch.root / "node0.log").read_text() + (launch.root / "node1.log").read_text()


# strace -ff -y: one file per thread, "openat(AT_FDCWD</cwd>, "name", O_WRONLY|O_CREAT, 0666) = 3</abs/name>"
CALL = re.compile(r"^(?P<call>\w+)\((?P<args>.*)\)\s+= (?P<result>-?\d+)(?P<fd><[^>]*>)?")
STRING = re.compile(r'(?:(?P<dir>\d+|AT_FDCWD)<(?P<dirpath>[^>]*)>, )?"(?P<path>[^"]*)"')
CHANGES = ("O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC")


def changes(trace: Path, cwd: Path) -> tuple[dict[int, int], list[tuple[int, str, str]]]:
    """(parent of each thread or process, [(tid, call, absolute path)] of the successful file changes) of one node."""
    parents: dict[int, int] = {}
    found = []
    for file in trace.glob("t.*"):
        tid = int(file.suffix[1:])
        for line in file.read_text(errors="replace").splitlines():
            match = CALL.match(line)
            if not match or match["result"].startswith("-"):
                continue
            call, args = match["call"], match["args"]
            if call in ("clone", "clone3", "fork", "vfork"):
                parents[int(match["result"])] = tid
                continue
            if call in ("openat", "open") and not any(flag in args for flag in CHANGES):
                continue
            for string in STRING.finditer(args):
                base = Path(string["dirpath"]) if string["dirpath"] else cwd
                found.append((tid, call, str(base / string["path"])))
    return parents, found


@pytest.mark.slow
def test_only_rank_zero_writes_the_run_but_each_rank_its_rng_state(two_nodes):
    if not STRACE:
        reason = "strace is missing or cannot trace here (.ci/run installs it): the write audit needs it"
        missing(reason)
    launcher, launch = two_nodes
    run = (launch.root / "run").resolve()
    workers = {r[0]["pid"]: rank for rank, r in debug_records(launch.debug).items()}
    wrote: dict[int | None, list[tuple[str, str]]] = defaultdict(list)
    for node in (0, 1):
        parents, found = changes(launch.traces[node], launch.cwds[node])
        for tid, call, path in found:
            owner = tid
            while owner not in workers and owner in parents:
                owner = parents[owner]
            inside = os.path.relpath(os.path.normpath(path), run)
            if inside != ".." and not inside.startswith("../"):
                wrote[workers.get(owner)].append((call, inside))
    # rank 0 wrote the results (model/ is a staging folder renamed into place, the files are renamed temporaries)
    assert {"model", "predictions.jsonl", "run.json", "report.html", "metrics.json"} <= {p for _, p in wrote[0]}
    allowed = re.compile(r"checkpoints(/checkpoint-\d+(/rng_state_1\.pth)?)?")
    strays = [(call, path) for call, path in wrote[1] if not allowed.fullmatch(path)]
    assert not strays, f"{launcher}: rank 1 changed files of the run: {strays[:10]}"
    assert any(path.endswith("rng_state_1.pth") for _, path in wrote[1])  # it did write its own RNG state
    assert not wrote[None], f"{launcher}: a launcher process changed files of the run: {wrote[None][:10]}"


# ---------------------------------------------------------------- kill and resume
@pytest.mark.slow
def test_a_killed_run_resumes_under_its_launcher_to_the_same_weights(two_nodes, tmp_path, tiny_model_dir, data_dir, cache):
    launcher, done = two_nodes
    uninterrupted = done.root / "run"
    out = tmp_path / "run"
    launch = Launch(launcher, tmp_path / "first", train_flags(data_dir, tiny_model_dir, out, PER_RANK_BATCH), cache)
    deadline = time.monotonic() + LAUNCH_SECONDS
    while not any(out.glob("checkpoints/checkpoint-*/lsllm-complete")):
        if any(proc.poll() is not None for proc in launch.procs) or time.monotonic() > deadline:
            launch.kill()
            pytest.fail(f"no checkpoint before the launchers ended or {LAUNCH_SECONDS} s passed\n{launch.output()}")
        time.sleep(0.02)
    launch.kill()  # both nodes, mid-training: the first checkpoint is complete
    assert not (out / "run.json").exists()
    saved = [int(p.parent.name.split("-")[1]) for p in out.glob("checkpoints/checkpoint-*/lsllm-complete")]
    assert max(saved) < MAX_STEPS, "the run finished before it was killed: the test proves nothing"

    resumed = launch_two_nodes(launcher, tmp_path / "again", ["train", "--output", str(out), "--resume"], cache)
    record = json.loads((out / "run.json").read_text())
    assert record["resumed"] is True and record["launcher"] == launcher and record["world_size"] == 2
    trained = {rank: batches(r) for rank, r in debug_records(resumed.debug).items()}
    assert len(trained[0]) == len(trained[1]) == MAX_STEPS - max(saved)  # it continued, it did not start again
    last = f"checkpoints/checkpoint-{MAX_STEPS}/adapter_model.safetensors"
    for name in (last, "model/adapter_model.safetensors"):  # the last step's weights and the selected ones
        mine, reference = weights(out / name), weights(uninterrupted / name)
        assert mine.keys() == reference.keys()
        different = [k for k in reference if not mine[k].equal(reference[k])]
        assert not different, f"{name}: {len(different)} tensors differ from the uninterrupted run, e.g. {different[0]}"
    assert losses(out) == losses(uninterrupted)


# ---------------------------------------------------------------- launches that are refused
@pytest.mark.slow
def test_accelerate_cpu_on_two_machines_is_refused(tmp_path, tiny_model_dir, data_dir, cache):
    """`accelerate launch --cpu` starts each machine's process without a rank: each would train alone, so lsllm refuses.

    Machine 0 alone shows it: that launcher waits for no other machine (it starts a plain process).
    """
    command = [str(BIN / "accelerate"), "launch", "--cpu", "--num_machines", "2", "--machine_rank", "0",
               "--main_process_ip", "127.0.0.1", "--main_process_port", str(free_port()), "--num_processes", "2",
               "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "lsllm",
               *train_flags(data_dir, tiny_model_dir, tmp_path / "run", PER_RANK_BATCH)]
    done = subprocess.run(command, cwd=tmp_path, env=environment(tmp_path / "debug", cache), capture_output=True,
                          text=True, timeout=LAUNCH_SECONDS)
    assert done.returncode != 0
    assert "error: accelerate launch --cpu with several processes or machines" in done.stderr, done.stderr[-3000:]
    assert not (tmp_path / "run").exists()


def test_fsdp_without_cuda_is_refused_in_one_line(monkeypatch, capsys, tmp_path):
    """accelerate runs FSDP only on CUDA: on a CPU the Trainer would quietly run plain data parallel instead."""
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "no")
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert main(["train", "--data", "sst2-sample", "--output", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "the accelerate config asks for FSDP, which accelerate runs only on CUDA GPUs" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "run").exists()
    distributed.check_launch(cuda=True)  # with CUDA it goes on (tests/gpu/test_launchers.py runs it there)


# ---------------------------------------------------------------- DeepSpeed (a side folder: not a dependency of lsllm)
DEEPSPEED = "deepspeed==0.19.8"
DEEPSPEED_DEPS = ["einops==0.8.2", "hjson==3.1.0", "msgpack==1.2.4", "ninja==1.13.2", "py-cpuinfo==9.0.0"]
CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.fixture(scope="module")
def deepspeed_site() -> Path:
    """DeepSpeed installed once into .venv/<version> (pip --target), put on PYTHONPATH of the launches that use it."""
    site = BIN.parent / DEEPSPEED.replace("==", "-")
    if not (site / ".installed").is_file():
        shutil.rmtree(site, ignore_errors=True)
        done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site),
                               DEEPSPEED, *DEEPSPEED_DEPS], capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            reason = f"pip could not install {DEEPSPEED}: {done.stderr.strip().splitlines()[-1:]}"
            missing(reason)
        (site / ".installed").touch()
    return site


def launch_deepspeed(config: str, root: Path, train: list[str], cache: Path, site: Path) -> subprocess.CompletedProcess:
    """One machine, 2 processes, DeepSpeed from ``configs/deepspeed/<config>`` through accelerate."""
    root.mkdir(parents=True, exist_ok=True)
    env = {**environment(root / "debug", cache), "PYTHONPATH": str(site)}
    command = [str(BIN / "accelerate"), "launch", "--use_deepspeed", "--deepspeed_config_file", str(config),
               "--num_processes", "2", "--num_machines", "1", "--main_process_port", str(free_port()),
               "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "lsllm", *train]
    return subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=LAUNCH_SECONDS)


@pytest.mark.slow
@pytest.mark.parametrize("stage", [2, 3])
def test_deepspeed_zero_on_cpu_shards_and_trains_as_one_process(stage, tmp_path, tiny_model_dir, data_dir, cache, single,
                                                               deepspeed_site):
    """ZeRO-2 shards optimizer state and gradients; ZeRO-3 the weights too (gathered to rank 0 after training)."""
    out = tmp_path / "run"
    done = launch_deepspeed(CONFIGS / "deepspeed" / f"zero{stage}.json", tmp_path,
                            train_flags(data_dir, tiny_model_dir, out, PER_RANK_BATCH), cache, deepspeed_site)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    record = json.loads((out / "run.json").read_text())
    assert {k: record[k] for k in ("launcher", "world_size", "nodes", "sharding")} == {
        "launcher": "accelerate", "world_size": 2, "nodes": 1, "sharding": "deepspeed"}
    last = out / "checkpoints" / f"checkpoint-{MAX_STEPS}" / f"global_step{MAX_STEPS}"
    shares = {"optim_states"} | ({"model_states"} if stage == 3 else set())  # what each rank saved its own share of
    for what in shares:
        assert sorted(p.name for p in last.glob(f"zero_pp_rank_*_{what}.pt")) == [
            f"zero_pp_rank_{rank}_mp_rank_00_{what}.pt" for rank in (0, 1)]
    ranks = debug_records(tmp_path / "debug")
    reference = batches(debug_records(single / "debug")[0])
    mine = {rank: batches(records) for rank, records in ranks.items()}
    assert all(sorted(mine[0][s] + mine[1][s]) == sorted(reference[s]) for s in range(MAX_STEPS))
    final = {rank: [r["trainable_sha256"] for r in records if "trainable_sha256" in r] for rank, records in ranks.items()}
    if stage == 2:  # weights whole on both ranks, and equal
        assert len(final[0]) == len(final[1]) == 1 and final[0] == final[1]
    else:  # each rank held a share; rank 0 alone went on with the gathered weights
        assert len(final[0]) == 1 and final[1] == []
    mine_loss, reference_loss = losses(out), losses(single / "run")
    worst = max(abs(mine_loss[s] - reference_loss[s]) / abs(reference_loss[s]) for s in reference_loss)
    print(f"DeepSpeed ZeRO-{stage}: largest relative loss difference over {MAX_STEPS} steps: {worst:.2e}")
    assert worst <= LOSS_RTOL
    for name in (f"checkpoints/checkpoint-{MAX_STEPS}/adapter_model.safetensors", "model/adapter_model.safetensors"):
        saved, alone = weights(out / name), weights(single / "run" / name)  # the last step's, the selected ones
        assert saved.keys() == alone.keys()
        largest = max(float((saved[k] - alone[k]).abs().max()) for k in alone)
        print(f"DeepSpeed ZeRO-{stage}: {name}: largest difference from the one-process run's: {largest:.2e}")
        assert largest <= WEIGHT_ATOL
    assert json.loads((out / "metrics.json").read_text())["test"]["n_examples"] == 12


def test_the_launch_is_read_from_the_launchers_environment(monkeypatch):
    for name in ("ACCELERATE_MIXED_PRECISION", "TORCHELASTIC_RUN_ID", "WORLD_SIZE", "GROUP_WORLD_SIZE", "PMI_SIZE",
                 "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert distributed.launch() == {"launcher": "none", "world_size": 1, "nodes": 1}
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "x")
    monkeypatch.setenv("WORLD_SIZE", "8")
    monkeypatch.setenv("GROUP_WORLD_SIZE", "2")
    assert distributed.launch() == {"launcher": "torchrun", "world_size": 8, "nodes": 2}
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")  # accelerate launch --multi_gpu runs torchrun's agent
    assert distributed.launch()["launcher"] == "accelerate"
