"""`make demo`, timed: wall-clock, training time and test accuracy of the demo recipe on this CPU.

    python bench/demo.py [--threads N] [--dtype auto|float32] [--output bench/results/demo.json]

Runs exactly the Makefile's `demo` command (read from the Makefile, so the two cannot drift) in a
fresh run folder, then records what a new user sees: the accuracy on the 872 official SST-2
validation sentences (reported as test), the training seconds, the whole command's wall-clock,
and the CPU it ran on (model name, bf16 kind, the dtype `auto` chose). Results are appended to
the JSON file, one record per CPU kind and dtype, so docs/benchmarks.md can give each.
Take timings on a quiet machine: another process on the cores slows torch many times.

To time an AVX2-only CPU on a newer one, cap the instruction sets torch uses and ask for fp32
(recorded as `isa_limits`, an emulation, not the real chip: caches and clocks stay the newer one's):

    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 python bench/demo.py --dtype float32
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from _common import cpu_info  # noqa: E402

ISA_LIMITS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")  # caps on torch's kernels


def demo_command() -> list[str]:
    """The `lsllm train ...` line of the Makefile's demo target, as arguments."""
    text = (REPO / "Makefile").read_text()
    recipe = text[text.index("\ndemo:"):].split("\n\n")[0]
    line = " ".join(part.strip().rstrip("\\") for part in recipe.strip().splitlines()[1:])
    line = re.sub(r"--output .*$", "", line).replace("$(BIN)/", "").replace("HF_HUB_OFFLINE=1", "")
    return shlex.split(line)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: one per core)")
    parser.add_argument("--dtype", default=None, help="override the run's dtype, e.g. float32 to time fp32 on a bf16 CPU")
    parser.add_argument("--output", default=str(REPO / "bench" / "results" / "demo.json"))
    args = parser.parse_args()
    command = demo_command()
    if command[:2] != ["lsllm", "train"]:
        raise SystemExit(f"unexpected demo recipe in the Makefile: {command}")
    run = Path(tempfile.mkdtemp(prefix="lsllm-demo-")) / "run"
    argv = [str(REPO / ".venv" / "bin" / "lsllm"), *command[1:], "--output", str(run)]
    argv += ["--threads", str(args.threads)] if args.threads else []
    argv += ["--dtype", args.dtype] if args.dtype else []
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    started = time.perf_counter()
    subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    metrics = json.loads((run / "metrics.json").read_text())
    state = json.loads((run / "logs" / "trainer_state.json").read_text())
    train_seconds = next((h["train_runtime"] for h in state["log_history"] if "train_runtime" in h), None)
    record = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": cpu_info(), "threads": args.threads,
        "dtype": args.dtype or "auto", "command": " ".join(shlex.quote(a) for a in command),
        "isa_limits": {k: os.environ[k] for k in ISA_LIMITS if k in os.environ},
        "test_accuracy": metrics["test"]["accuracy"], "validation_accuracy": metrics["validation"]["accuracy"],
        "train_seconds": train_seconds, "wall_seconds": round(wall, 1), "steps": state["global_step"],
    }
    out = Path(args.output)
    records = json.loads(out.read_text()) if out.is_file() else []
    records.append(record)
    out.write_text(json.dumps(records, indent=1) + "\n")
    print(f"test accuracy {100 * record['test_accuracy']:.2f} %, training {train_seconds:.0f} s, wall-clock {wall:.0f} s "
          f"on {record['machine']['model']} ({record['dtype']}{', ' + str(record['isa_limits']) if record['isa_limits'] else ''}); "
          f"written to {out}; the run: {run}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
