"""The vLLM side of the benchmark's vLLM path: runs in vLLM's own venv (bench/vllm_venv.sh), never in lsllm's.

    <vllm venv>/bin/python bench/_vllm_worker.py '{"model": DIR, "dtype": "float32", "max_batch_tokens": 2048}'

Builds ``vllm.LLM(DIR, runner="pooling")`` once, prints one JSON line ``{"ready": ...}``, then answers
requests, one JSON line each on stdin -> one on stdout:

    {"ids": [[token ids], ...]}   ->   {"probs": [[p per label], ...], "seconds": <time in LLM.classify>}

Inputs are token ids (``TokensPrompt``), so vLLM scores exactly the tokens lsllm scores (same
tokenizer, same truncation); ``seconds`` times ``LLM.classify`` alone, ``cpu_s`` is the CPU time
its process tree (this process, vLLM's engine and worker processes) spent meanwhile, and
``peak_rss_mb`` the sum of their peak resident sizes (VmHWM) so far. An empty line or EOF ends it.
Only the standard library and vLLM are imported here: this file is not part of lsllm.
"""

from __future__ import annotations

import json
import os
import sys
import time


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (Linux /proc)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as children:
                    todo.extend(int(c) for c in children.read().split())
        except OSError:
            continue
    return found


def tree_cpu_s() -> float:
    """CPU seconds (user + system) used so far by this process and its descendants."""
    total = 0
    for pid in _tree(os.getpid()):
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
        except (OSError, IndexError, ValueError):
            continue
    return total / os.sysconf("SC_CLK_TCK")


def tree_peak_rss_mb() -> float:
    total = 0
    for pid in _tree(os.getpid()):
        try:
            with open(f"/proc/{pid}/status") as status:
                total += next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
        except (OSError, StopIteration, ValueError):
            continue
    return total / 1024


def main(raw: str) -> int:
    spec = json.loads(raw)
    out = os.fdopen(os.dup(1), "w")  # the answers; vLLM's own logging (to stdout) goes to stderr from here on
    os.dup2(2, 1)
    from vllm import LLM  # imported after the environment (set by the caller) is in place

    start = time.perf_counter()
    llm = LLM(model=spec["model"], runner="pooling", dtype=spec["dtype"], seed=0,
              max_num_batched_tokens=spec["max_batch_tokens"], max_num_seqs=spec.get("max_num_seqs", 256),
              max_model_len=spec.get("max_model_len", 2048), enforce_eager=spec.get("enforce_eager", False))
    import vllm

    out.write(json.dumps({"ready": True, "startup_s": time.perf_counter() - start, "vllm": vllm.__version__,
                          "peak_rss_mb": tree_peak_rss_mb()}) + "\n")
    out.flush()
    for line in sys.stdin:
        if not line.strip():
            break
        request = json.loads(line)
        prompts = [{"prompt_token_ids": ids} for ids in request["ids"]]
        cpu, start = tree_cpu_s(), time.perf_counter()
        results = llm.classify(prompts, use_tqdm=False)
        seconds, cpu = time.perf_counter() - start, tree_cpu_s() - cpu
        out.write(json.dumps({"probs": [r.outputs.probs for r in results], "seconds": seconds, "cpu_s": cpu,
                              "peak_rss_mb": tree_peak_rss_mb()}) + "\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
