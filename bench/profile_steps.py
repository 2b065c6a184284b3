"""Where the CPU time of a stock training step goes: torch.profiler over a few steps.

    python bench/profile_steps.py                          # reference and tuned, SST-2, 4 steps each
    python bench/profile_steps.py --recipes tuned --task conll03 --steps 6

Each recipe is profiled in a fresh subprocess after one untimed warm-up step. Ops are grouped
into dense matmuls, LoRA matmuls (an operand of width r=12), attention, dtype casts/copies,
dropout, element-wise work (RMSNorm, RoPE, SiLU, residuals), and the rest, by self CPU time;
the step phases (forward / backward / optimizer) come from the named ranges in _stock.train.
Profiler bookkeeping adds a little to every op, so small-op shares are slight overestimates.
Writes bench/results/profile.json and prints markdown tables.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from _common import DEFAULT_DATA_DIR, cpu_info, load_task, resolve_model_dir, spread_sample, write_json_atomic  # noqa: E402

MATMUL_OPS = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::matmul", "aten::linear",
              "aten::_addmm_activation", "aten::mkldnn_linear", "aten::_mkldnn_matmul"}
CAST_OPS = {"aten::to", "aten::_to_copy", "aten::copy_", "aten::clone", "aten::contiguous", "aten::_copy_from"}
DROPOUT_OPS = {"aten::dropout", "aten::native_dropout", "aten::bernoulli_", "aten::native_dropout_backward"}
PHASES = ("step.forward", "step.backward", "step.optimizer")


def category(name: str, shapes: list, lora_r: int) -> str:
    if name in MATMUL_OPS:
        dims = [d for shape in shapes if isinstance(shape, list | tuple) and len(shape) >= 2 for d in shape[-2:]]
        return "matmul (LoRA, r=12)" if lora_r in dims else "matmul (dense)"
    if "scaled_dot_product" in name or "flash_attention" in name or "softmax" in name:
        return "attention (SDPA)"
    if name in CAST_OPS:
        return "dtype casts / copies"
    if name in DROPOUT_OPS:
        return "dropout (LoRA input)"
    if "Optimizer" in name or "adam" in name.lower() or "foreach" in name or name in ("aten::lerp_", "aten::addcdiv_", "aten::addcmul_", "aten::sqrt"):
        return "optimizer math"
    if name.startswith("aten::"):
        return "element-wise / norms / other aten"
    return "framework (autograd, python ranges)"


def profile_child(spec: dict) -> dict:
    """Profile `steps` training steps of one recipe (runs inside a fresh interpreter)."""
    import _stock
    import torch
    from torch.profiler import ProfilerActivity, profile

    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    data = load_task(spec["task"], Path(spec["data_dir"]))
    path = _stock.build(spec["recipe"], Path(spec["model_dir"]), data.task, data.labels, fast_dtype=spec["fast_dtype"])
    batch = path.recipe.batch_size
    warm = spread_sample(data.train[::-1], batch)
    examples = spread_sample(data.train, batch * spec["steps"])
    path.train(warm)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        stats = path.train(examples)
    events = prof.key_averages(group_by_input_shape=True)
    total = sum(e.self_cpu_time_total for e in events)
    by_category: dict[str, float] = {}
    by_op: dict[str, dict] = {}
    for e in events:
        cat = category(e.key, e.input_shapes or [], _stock.LORA["r"])
        by_category[cat] = by_category.get(cat, 0.0) + e.self_cpu_time_total
        op = by_op.setdefault(e.key, {"self_us": 0.0, "calls": 0, "category": cat})
        op["self_us"] += e.self_cpu_time_total
        op["calls"] += e.count
    phases = {e.key: e.cpu_time_total for e in prof.key_averages() if e.key in PHASES}
    top = sorted(by_op.items(), key=lambda kv: -kv[1]["self_us"])[: spec["rows"]]
    return {
        "recipe": spec["recipe"], "task": spec["task"], "steps": stats["steps"], "batch_size": batch,
        "compute_dtype": path.recipe.autocast_dtype or "float32", "threads": torch.get_num_threads(),
        "real_tokens_per_batch": stats["real_tokens"] / stats["steps"],
        "computed_tokens_per_batch": stats["computed_tokens"] / stats["steps"],
        "total_self_ms": total / 1e3,
        "ms_per_step": total / 1e3 / stats["steps"],
        "categories": {k: {"ms": v / 1e3, "share": v / total} for k, v in sorted(by_category.items(), key=lambda kv: -kv[1])},
        "phases_ms": {k: v / 1e3 for k, v in phases.items()},
        "top_ops": [{"op": k, "self_ms": v["self_us"] / 1e3, "share": v["self_us"] / total, "calls": v["calls"],
                     "category": v["category"]} for k, v in top],
    }


def markdown(result: dict) -> str:
    lines = [f"### {result['recipe']} ({result['task']}, {result['compute_dtype']}, batch {result['batch_size']}, "
             f"{result['threads']} threads)",
             "",
             f"{result['steps']} profiled steps, {result['ms_per_step']:.0f} ms self CPU per step; per batch "
             f"{result['real_tokens_per_batch']:.0f} real tokens of {result['computed_tokens_per_batch']:.0f} computed.",
             "",
             "Phases (inclusive): " + ", ".join(f"{k.split('.')[1]} {v / result['steps']:.0f} ms/step"
                                                for k, v in result["phases_ms"].items()),
             "",
             "| category | ms | share |", "|---|---:|---:|"]
    lines += [f"| {k} | {v['ms']:.0f} | {100 * v['share']:.1f}% |" for k, v in result["categories"].items()]
    lines += ["", "| op (top by self CPU) | self ms | share | calls | category |", "|---|---:|---:|---:|---|"]
    lines += [f"| `{o['op']}` | {o['self_ms']:.0f} | {100 * o['share']:.1f}% | {o['calls']} | {o['category']} |"
              for o in result["top_ops"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--recipes", default="reference,tuned")
    p.add_argument("--task", default="sst2", choices=("sst2", "conll03"))
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--rows", type=int, default=15)
    p.add_argument("--threads", type=int, help="torch threads (default: torch's, all cores)")
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    p.add_argument("--out", type=Path, default=HERE / "results" / "profile.json")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        spec = json.loads(args.child)
        write_json_atomic(Path(spec["out"]), profile_child(spec))
        return 0
    cpu = cpu_info()
    model_dir = resolve_model_dir(args.model)
    print(f"CPU: {cpu['model']}; fast dtype {cpu['fast_dtype']}\n")
    results = []
    for recipe in [r.strip() for r in args.recipes.split(",") if r.strip()]:
        out = args.out.with_name(f".{args.out.stem}-{recipe}.json")
        spec = {"recipe": recipe, "task": args.task, "steps": args.steps, "rows": args.rows, "model_dir": str(model_dir),
                "data_dir": str(args.data_dir), "fast_dtype": cpu["fast_dtype"], "threads": args.threads, "out": str(out)}
        env = dict(os.environ, TOKENIZERS_PARALLELISM="false", TRANSFORMERS_VERBOSITY="error")
        proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)],
                              env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"profiling {recipe} failed:\n" + "\n".join(proc.stderr.splitlines()[-20:]))
        result = json.loads(out.read_text())
        out.unlink()
        results.append(result)
        print(markdown(result) + "\n", flush=True)
    date = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())  # docs/tables.py puts it beside every figure
    write_json_atomic(args.out, {"date": date, "cpu": cpu, "model_dir": str(model_dir), "profiles": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
