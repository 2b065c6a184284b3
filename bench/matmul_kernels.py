"""Which matmul kernel is fastest here, and what it buys lsllm's inference beside vLLM's (issue 37).

    taskset -c 1 env OMP_NUM_THREADS=1 python bench/matmul_kernels.py            # ~25 min on a busy core (vLLM starts twice)
    taskset -c 1 env OMP_NUM_THREADS=1 python bench/matmul_kernels.py --no-vllm  # the kernels and lsllm alone

1. Kernels: every candidate of bench/_peak.py (torch.matmul, F.linear, oneDNN packed, MKL packed,
   torch.compile with freezing, ONNX Runtime MatMul) on SmolLM2-135M's weight shapes at 2,048
   rows (one packed inference batch) and on 2048^3, fp32 and bf16, in GFLOP/s.
2. End to end: SST-2 validation sentences (evenly spread) behind the demo prompt, scored by
   lsllm's `Classifier` on SmolLM2-135M (its seed-0 head) with nn.Linear and with oneDNN
   packed linears, fp32 and bf16; then by vLLM's CPU engine on the same weights (the stock
   checkpoint) and the same token ids, with vLLM's default torch.compile graph capture and
   (``--vllm-eager``) without it. Best of two timed passes after a warm-up.

Times are CPU time, not wall time: of the measuring thread (kernels), of the process (lsllm),
of vLLM's process tree (vLLM, from /proc). On a machine shared with other jobs, wall time
measures the other jobs as much as the kernel; CPU time is what the work itself took (cache
and memory contention from neighbours still show). Wall times are recorded too. Writes
bench/results/matmul_kernels.json.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import _peak  # noqa: E402
from _common import DEFAULT_DATA_DIR, cpu_info, write_json_atomic  # noqa: E402

DEMO_PROMPT = "Review: {text}\nSentiment:"
SHAPES = [(2048, 2048, 2048), (2048, 576, 576), (2048, 576, 192), (2048, 576, 1536), (2048, 1536, 576)]  # M, K, N


def cpu_model_ids() -> dict:
    """cpu family / model / stepping from /proc/cpuinfo (Zen 4 is family 25, Zen 5 family 26)."""
    found = {}
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("cpu family", "model", "stepping") and key not in found:
            found[key] = int(value.strip())
        if key == "flags":
            found["vp2intersect"] = "avx512_vp2intersect" in value.split()
            break
    return found


def kernel_table(rounds: int) -> list[dict]:
    """GFLOP/s per (dtype, shape, kernel): thread CPU time, calls interleaved across kernels, best of ``rounds``."""
    import torch
    import torch.nn.functional as F

    rows = []
    for dtype in (torch.float32, torch.bfloat16):
        for m, k, n in SHAPES:
            generator = torch.Generator().manual_seed(0)
            x = torch.randn(m, k, generator=generator).to(dtype)
            weight = torch.randn(n, k, generator=generator).to(dtype)
            runs, errors = {}, {}
            candidates = _peak.cpu_candidates(dtype, weight, x)
            candidates["F.linear"] = lambda x=x, weight=weight: (lambda: F.linear(x, weight))
            for name, build in candidates.items():
                try:
                    runs[name] = build()
                    runs[name]()
                except Exception as err:  # noqa: BLE001 - a kernel that does not run here is recorded
                    errors[name] = f"{type(err).__name__}: {str(err).strip()[:200]}"
                    runs.pop(name, None)
            repeats = {}
            for name, run in runs.items():
                start = time.thread_time()
                run()
                repeats[name] = max(1, int(0.25 / max(time.thread_time() - start, 1e-4)))
            best = dict.fromkeys(runs, float("inf"))
            for _ in range(rounds):
                for name, run in runs.items():
                    start = time.thread_time()
                    for _ in range(repeats[name]):
                        run()
                    best[name] = min(best[name], (time.thread_time() - start) / repeats[name])
            gflops = {name: 2.0 * m * k * n / seconds / 1e9 for name, seconds in best.items()}
            row = {"dtype": str(dtype).replace("torch.", ""), "shape": [m, k, n], "gflop_per_s": gflops, "errors": errors}
            rows.append(row)
            print(f"{row['dtype']:9} {m}x{k}x{n}: " + "  ".join(f"{name} {v:.0f}" for name, v in gflops.items()), flush=True)
    return rows


def lsllm_end_to_end(base, tokenizer, encoded, n_texts: int, tokens: int, flop_per_token: float) -> tuple[dict, dict]:
    import torch

    from lsllm.inference.classifier import Classifier
    from lsllm.models.kernels import use_matmul

    results, outputs = {}, {}
    for dtype_name in ("float32", "bfloat16"):
        classifiers = {}
        for matmul in ("torch", "onednn"):
            model = copy.deepcopy(base).to(getattr(torch, dtype_name)).eval()
            use_matmul(model, matmul)
            classifiers[matmul] = Classifier(model, tokenizer, ["negative", "positive"], "seq", 64, prompt=DEMO_PROMPT)
            outputs[f"lsllm {dtype_name} {matmul}"] = torch.stack(classifiers[matmul].probabilities(encoded))  # warm-up
        best = {m: [float("inf"), float("inf")] for m in classifiers}
        for order in (("torch", "onednn"), ("onednn", "torch")):
            for matmul in order:
                wall, cpu = time.perf_counter(), time.process_time()
                classifiers[matmul].probabilities(encoded)
                best[matmul][0] = min(best[matmul][0], time.perf_counter() - wall)
                best[matmul][1] = min(best[matmul][1], time.process_time() - cpu)
        for matmul, (wall, cpu) in best.items():
            results[f"lsllm {dtype_name} {matmul}"] = _figures(wall, cpu, n_texts, tokens, flop_per_token)
        del classifiers
    return results, outputs


def vllm_end_to_end(base, tokenizer, ids: list[list[int]], eager_too: bool, n_texts: int, tokens: int,
                    flop_per_token: float) -> tuple[dict, dict, dict]:
    import _vllm
    import torch

    results, outputs, startup = {}, {}, {}
    with tempfile.TemporaryDirectory(prefix="lsllm-kernels-vllm-") as tmp:
        folder = Path(tmp) / "checkpoint"
        _vllm.stock_checkpoint(base, tokenizer, folder)
        threads = torch.get_num_threads()
        env = dict(os.environ, HF_HUB_OFFLINE="1", VLLM_NO_USAGE_STATS="1", DO_NOT_TRACK="1", OMP_NUM_THREADS=str(threads),
                   VLLM_CPU_OMP_THREADS_BIND=_vllm.cpu_list(threads), VLLM_CPU_KVCACHE_SPACE="1")
        for eager in (False, True) if eager_too else (False,):
            for dtype_name in ("float32", "bfloat16"):
                name = f"vllm{' eager' if eager else ''} {dtype_name}"
                spec = {"model": str(folder), "dtype": dtype_name, "max_batch_tokens": 2048, "enforce_eager": eager}
                with tempfile.TemporaryFile(mode="w+") as log:
                    worker = subprocess.Popen([str(_vllm.vllm_python()), str(_vllm.WORKER), json.dumps(spec)],
                                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, env=env)
                    line = worker.stdout.readline()
                    if not line:
                        log.seek(0)
                        raise SystemExit(f"{name}: the vLLM worker stopped:\n" + "\n".join(log.read().splitlines()[-15:]))
                    startup[name] = json.loads(line)["startup_s"]
                    best = [float("inf"), float("inf")]
                    for attempt in range(3):  # a warm-up, then two timed passes
                        worker.stdin.write(json.dumps({"ids": ids}) + "\n")
                        worker.stdin.flush()
                        answer = json.loads(worker.stdout.readline())
                        if attempt:
                            best = [min(best[0], answer["seconds"]), min(best[1], answer["cpu_s"])]
                    worker.stdin.write("\n")
                    worker.stdin.flush()
                    worker.wait(timeout=300)
                outputs[name] = torch.tensor(answer["probs"])
                results[name] = _figures(*best, n_texts, tokens, flop_per_token)
                print(f"{name}: started in {startup[name]:.0f} s", flush=True)
    return results, outputs, startup


def _figures(wall: float, cpu: float, n_texts: int, tokens: int, flop_per_token: float) -> dict:
    return {"wall_s": wall, "cpu_s": cpu, "texts_per_cpu_s": n_texts / cpu, "texts_per_wall_s": n_texts / wall,
            "gflop_per_cpu_s": flop_per_token * tokens / cpu / 1e9}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sentences", type=int, default=200, help="SST-2 validation sentences scored end to end")
    parser.add_argument("--rounds", type=int, default=8, help="interleaved rounds per kernel (best counts)")
    parser.add_argument("--no-vllm", action="store_true", help="skip vLLM (no venv, or no time for its start-up)")
    parser.add_argument("--vllm-eager", action="store_true", help="also vLLM with enforce_eager (no graph capture)")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "matmul_kernels.json")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch
    from _common import model_sizes, resolve_model_dir

    from lsllm.data import SeqExample
    from lsllm.inference.classifier import Classifier
    from lsllm.models.backbones import load_tokenizer
    from lsllm.models.classifiers import LSForSequenceClassification
    from lsllm.models.kernels import choose_matmul

    started = time.time()
    loads = [os.getloadavg()[0]]
    print(f"CPU {cpu_info()['model']} {cpu_model_ids()}, torch threads {torch.get_num_threads()}", flush=True)
    kernels = kernel_table(args.rounds)
    loads.append(os.getloadavg()[0])

    model_dir = resolve_model_dir("smollm2-135m")
    flop_per_token = 2.0 * model_sizes(model_dir)["non_embedding"]
    tokenizer = load_tokenizer(model_dir)
    lines = (args.data_dir / "sst2" / "validation.tsv").read_text().splitlines()[1:]
    texts = [line.rpartition("\t")[0] for line in lines if line.strip()]
    texts = [texts[int(i * len(texts) / args.sentences)] for i in range(min(args.sentences, len(texts)))]
    torch.manual_seed(0)
    base = LSForSequenceClassification.from_pretrained(str(model_dir), num_labels=2, dtype=torch.float32)
    encoded = Classifier(base, tokenizer, ["negative", "positive"], "seq", 64, prompt=DEMO_PROMPT).encode(
        [SeqExample(t) for t in texts])
    ids = [list(map(int, f["input_ids"])) for f in encoded.features]
    tokens = sum(map(len, ids))
    print(f"end to end: {len(texts)} sentences, {tokens} tokens", flush=True)
    probe = {d: choose_matmul(copy.deepcopy(base).to(getattr(torch, d)), "auto") for d in ("float32", "bfloat16")}
    results, outputs = lsllm_end_to_end(base, tokenizer, encoded, len(texts), tokens, flop_per_token)
    loads.append(os.getloadavg()[0])
    startup = {}
    if not args.no_vllm:
        found, more, startup = vllm_end_to_end(base, tokenizer, ids, args.vllm_eager, len(texts), tokens, flop_per_token)
        results.update(found)
        outputs.update(more)
        loads.append(os.getloadavg()[0])
    reference = outputs["lsllm float32 torch"]
    agreement = {name: {"max_abs_diff": float((p - reference).abs().max()), "median_abs_diff": float((p - reference).abs().median()),
                        "argmax_same": int((p.argmax(-1) == reference.argmax(-1)).sum()), "of": len(reference)}
                 for name, p in outputs.items()}
    for name, r in results.items():
        a = agreement[name]
        print(f"{name:24} CPU {r['cpu_s']:7.2f} s  {r['texts_per_cpu_s']:6.1f} texts/CPU-s  {r['gflop_per_cpu_s']:5.0f} GFLOP/CPU-s"
              f"  (wall {r['wall_s']:6.2f} s)  vs lsllm fp32 nn.Linear: max |dp| {a['max_abs_diff']:.1e}, "
              f"argmax {a['argmax_same']}/{a['of']}")
    ratios = {}
    for dtype_name in ("float32", "bfloat16"):
        for matmul in ("torch", "onednn"):
            if f"vllm {dtype_name}" in results:
                ratios[f"lsllm {matmul} / vllm, {dtype_name}"] = (results[f"vllm {dtype_name}"]["cpu_s"]
                                                                 / results[f"lsllm {dtype_name} {matmul}"]["cpu_s"])
        ratios[f"lsllm onednn / torch, {dtype_name}"] = (results[f"lsllm {dtype_name} torch"]["cpu_s"]
                                                        / results[f"lsllm {dtype_name} onednn"]["cpu_s"])
    for key, value in ratios.items():
        print(f"  {key:32} {value:.2f}x (CPU time)")
    write_json_atomic(args.out, {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["matmul_kernels.py", *(sys.argv[1:] if argv is None else argv)]),
        "wall_s": time.time() - started,
        "machine": {"cpu": cpu_info(), "cpu_ids": cpu_model_ids(), "torch": torch.__version__,
                    "torch_threads": torch.get_num_threads(), "affinity": sorted(os.sched_getaffinity(0))},
        "load_avg_1min": loads,
        "timing": "CPU time (kernels: the thread's; lsllm: the process's; vLLM: its process tree's), best of rounds",
        "kernels": kernels,
        "end_to_end": {"sentences": len(texts), "tokens": tokens, "prompt": DEMO_PROMPT, "model": "smollm2-135m, seed-0 head",
                       "probe_choice": probe, "results": results, "agreement": agreement, "vllm_startup_s": startup,
                       "ratios_cpu_time": ratios},
    })
    print(f"written to {args.out} ({time.time() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
