"""`lsllm serve` against `vllm serve` on one run: examples/s and p50/p99 latency at 1, 8 and 64 concurrent clients.

    python bench/serve_vllm.py --run RUN                      # exports RUN for vLLM (a temporary folder), then both servers in turn
    python bench/serve_vllm.py --run RUN --export DIR         # an existing `lsllm export RUN DIR --format vllm`
    python bench/serve_vllm.py --run RUN --server-cores 1 --concurrency 1,8,64 --requests 512 --seconds 60
    python bench/serve_vllm.py --run RUN --engines vllm --vllm-args=--enforce-eager   # quick: no torch.compile
    python bench/serve_vllm.py --random-model llama-1b --device cuda  # no weights at hand (bench/gpu_check.sh): a random
                                                                      # Llama-3.2-1B shape, trained 2 steps, exported

The same texts, one per request (the bundled SST-2 validation sentences, or --texts FILE), go
to both: `lsllm serve` gets POST /predict {"texts": [text]} and applies the run's prompt itself;
vLLM gets POST /classify {"input": [prompt with the text]}, the prompt applied by the client as
docs/serving.md says. Clients are serve_load.py's keep-alive raw-stream clients, each sending its
next request when its answer arrives; a level stops after --requests or --seconds. Both servers
run the same dtype (--dtype; auto: what lsllm picks on this CPU) on the same cores
(--server-cores: taskset for both, plus --threads for lsllm serve and VLLM_CPU_OMP_THREADS_BIND
for vLLM); the client runs wherever the OS puts it (on a 2-core machine: --server-cores 1, and
the whole command under taskset -c 0 for the client). vLLM runs from .venv/vllm (vllm-cpu,
bench/vllm_venv.sh, made if missing; --vllm-python for another, e.g. a CUDA `vllm`), as
`python -m vllm.entrypoints.cli.main serve ...` (the `vllm serve` command), with its defaults
otherwise: its start-up compiles the model with torch.compile (minutes the first time, then cached).
With --random-model the run is made here from a random-init model of a real shape
(bench/_random_init.py; 2 LoRA steps on the bundled SST-2 sample): for speed only, its labels mean nothing.

After the timed levels each server answers the first 64 texts once more, and the largest
probability difference between the two and their label agreement are recorded: the comparison
is of the same classifier. Writes bench/results/serve_vllm.json atomically (date, machine,
command, versions, per engine: start-up seconds and one row per level) and prints a table; the
exit status is 1 if any request failed.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from _common import cpu_info, write_json_atomic  # noqa: E402
from serve_load import Server, free_port, load_texts, run_level  # noqa: E402

REPO = HERE.parent
ENGINES = ("lsllm", "vllm")
CHECK_TEXTS = 64


def cpu_count(cores: str) -> int:
    """How many CPUs a taskset list names ("1", "0-3", "0,2")."""
    total = 0
    for part in cores.split(","):
        low, _, high = part.partition("-")
        total += int(high or low) - int(low) + 1
    return total


class VllmServer:
    """`vllm serve EXPORT --runner pooling` (+ the export's pooler flag and ours) on a free loopback port."""

    def __init__(self, vllm_python: Path, meta: dict, extra: list[str], env: dict[str, str], timeout: float,
                 prefix: list[str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile("w+", prefix="serve-vllm-", suffix=".log", delete=False)
        command = [*(prefix or []), str(vllm_python), "-m", "vllm.entrypoints.cli.main", *meta["serve"][1:],
                   "--host", "127.0.0.1", "--port", str(self.port), *extra]
        print(f"vllm: {shlex.join(command)}", flush=True)
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, env={**own_env(), **env},
                                        start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise SystemExit(f"vllm serve exited with status {self.process.returncode}:\n{self.tail()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"vllm serve did not answer /health within {timeout:.0f} s:\n{self.tail()}")
            time.sleep(1)

    def tail(self, n: int = 20) -> str:
        self.log.flush()
        return "\n".join(Path(self.log.name).read_text(errors="replace").splitlines()[-n:])

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)  # the API server and its engine process
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()
        os.unlink(self.log.name)


def own_env() -> dict[str, str]:
    """The environment for vLLM's python: without PYTHONPATH, so lsllm's packages (bench/gpu_check.sh puts its carried
    ones first there) never shadow the versions vLLM pins."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def vllm_python(given: Path | None) -> Path:
    if given is not None:
        return given
    made = subprocess.run(["bash", str(HERE / "vllm_venv.sh")], stdout=subprocess.PIPE, text=True)
    if made.returncode != 0:
        raise SystemExit("bench/vllm_venv.sh could not make .venv/vllm (see above); pass --vllm-python or --engines lsllm")
    return Path(made.stdout.strip().splitlines()[-1])


def random_run(name: str, texts: list[str], into: Path) -> Path:
    """A run of a random-init model of a real shape: weights written once (bf16), 2 LoRA steps on the SST-2 sample."""
    import torch
    from _random_init import random_model_dir
    from transformers import AutoConfig, LlamaForCausalLM

    folder = random_model_dir(name, texts, into / "model")
    torch.manual_seed(0)
    LlamaForCausalLM._from_config(AutoConfig.from_pretrained(folder), dtype=torch.bfloat16).save_pretrained(folder)
    run = into / "run"
    done = subprocess.run([sys.executable, "-m", "lsllm", "train", "--data", "sst2-sample", "--model", str(folder),
                           "--prompt", "Review: {text}\nSentiment:", "--train-limit", "64", "--eval-limit", "32",
                           "--max-steps", "2", "--batch-size", "8", "--output", str(run)])
    if done.returncode != 0:
        raise SystemExit(f"lsllm train on the random {name} model failed (status {done.returncode})")
    return run


def export_for_vllm(run: Path, into: Path) -> Path:
    out = into / "vllm"
    done = subprocess.run([sys.executable, "-m", "lsllm", "export", str(run), str(out), "--format", "vllm"],
                          env={**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")})
    if done.returncode != 0:
        raise SystemExit(f"lsllm export {run} --format vllm failed (status {done.returncode})")
    return out


def api(engine: str, meta: dict) -> dict:
    """run_level's description of one server's API: path, request body, records in the answer."""
    if engine == "lsllm":
        return {}  # serve_load's defaults: /predict {"texts": [...]}
    prompt = meta["prompt"]
    return {"path": "/classify", "make_body": lambda batch: {"input": [prompt.replace("{text}", t) if prompt else t
                                                                      for t in batch]},
            "records": lambda answer: answer["data"]}


def probabilities(engine: str, url: str, texts: list[str], meta: dict) -> list[list[float]]:
    """One call with ``texts``: per text, the probability (or value) of each label in label-id order."""
    spec = api(engine, meta)
    body = spec["make_body"](texts) if spec else {"texts": texts}
    answer = httpx.post(url + spec.get("path", "/predict"), json=body, timeout=300)
    answer.raise_for_status()
    if engine == "vllm":
        return [row["probs"] for row in sorted(answer.json()["data"], key=lambda row: row["index"])]
    records = answer.json()["predictions"]
    if meta["problem"] == "regression":
        return [[r["value"]] for r in records]
    return [[r["probabilities"][label] for label in meta["labels"]] for r in records]


def measure(engine: str, url: str, meta: dict, texts: list[str], levels: list[int], args) -> list[dict]:
    spec = api(engine, meta)
    asyncio.run(run_level(url, {}, texts, 1, max(levels), args.warmup, args.seconds, **spec))
    rows = []
    for concurrency in levels:
        row = asyncio.run(run_level(url, {}, texts, 1, concurrency, args.requests, args.seconds, **spec))
        row["examples_per_s"] = row.pop("texts_per_s")
        print(f"{engine:>6} {concurrency:>3} clients: {row['examples_per_s']:.1f} examples/s, p50 {row['p50_ms']} ms, "
              f"p99 {row['p99_ms']} ms, {row['errors']} errors", flush=True)
        rows.append(row)
    return rows


def vllm_version(python: Path) -> str | None:
    done = subprocess.run([str(python), "-c", "import importlib.metadata as m\ntry: print(m.version('vllm-cpu'))\n"
                           "except m.PackageNotFoundError: print(m.version('vllm'))"], capture_output=True, text=True,
                          env=own_env())
    return done.stdout.strip() or None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", type=Path, help="a finished lsllm run (sequence, causal, last or mean pooling)")
    source.add_argument("--random-model", default=None, help="no run: one made here from a random-init model of this "
                        "shape (bench/_random_init.py: llama-1b, llama2-7b, tiny-h32, ...)")
    parser.add_argument("--device", default="auto", help="lsllm serve's device and the dtype choice: auto (cuda if "
                        "there is one), cpu, cuda; vLLM takes its build's device")
    parser.add_argument("--export", type=Path, default=None, help="its `lsllm export --format vllm` folder (default: made now)")
    parser.add_argument("--engines", default="lsllm,vllm", help="comma-separated, in this order (default lsllm,vllm)")
    parser.add_argument("--concurrency", default="1,8,64", help="comma-separated client counts (default 1,8,64)")
    parser.add_argument("--requests", type=int, default=512, help="most requests per level (default 512)")
    parser.add_argument("--seconds", type=float, default=60.0, help="most seconds per level (default 60)")
    parser.add_argument("--warmup", type=int, default=32, help="untimed requests before the first level")
    parser.add_argument("--texts", type=Path, default=None, help="one text per line (default: the bundled SST-2 sample)")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"],
                        help="both servers' dtype (auto: what lsllm picks on this CPU)")
    parser.add_argument("--server-cores", default=None, help="CPUs for the servers, as taskset takes them (e.g. 1 or 0-1)")
    parser.add_argument("--lsllm-args", default="", help="extra `lsllm serve` flags, e.g. --lsllm-args='--max-batch-size 64'")
    parser.add_argument("--vllm-args", default="", help="extra `vllm serve` flags, e.g. --vllm-args=--enforce-eager")
    parser.add_argument("--vllm-python", type=Path, default=None, help="the python of a venv with vllm (default .venv/vllm)")
    parser.add_argument("--startup-timeout", type=float, default=1800.0)
    parser.add_argument("--output", type=Path, default=HERE / "results" / "serve_vllm.json")
    args = parser.parse_args(argv)
    levels = [int(x) for x in args.concurrency.split(",") if x.strip()]
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    if not levels or min(levels) < 1 or args.requests < 1 or not engines or set(engines) - set(ENGINES):
        raise SystemExit(f"--concurrency and --requests must be positive, --engines among {', '.join(ENGINES)}")
    texts = load_texts(args.texts)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch

    from lsllm.hardware import resolve_dtype

    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    dtype = str(resolve_dtype(args.dtype, device)).removeprefix("torch.")
    keep = tempfile.TemporaryDirectory(prefix="serve-vllm-")
    if args.random_model:
        args.run = random_run(args.random_model, texts, Path(keep.name))
    export = args.export or export_for_vllm(args.run, Path(keep.name))
    meta = json.loads((export / "lsllm-vllm.json").read_text())
    python = vllm_python(args.vllm_python) if "vllm" in engines else None

    results: dict = {}
    outputs: dict[str, list[list[float]]] = {}
    for engine in engines:
        started = time.monotonic()
        if engine == "lsllm":
            extra = ["--dtype", dtype, "--device", device, *shlex.split(args.lsllm_args)]
            prefix = None
            if args.server_cores:
                extra += ["--threads", str(cpu_count(args.server_cores))]
                prefix = ["taskset", "-c", args.server_cores]
            server = Server(args.run, extra, args.startup_timeout, prefix=prefix)
            command = [*(prefix or []), "lsllm", "serve", str(args.run), *extra]
        else:
            env = {"HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1",
                   "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "2")}
            prefix = None
            if args.server_cores:  # its API server and engine processes on those CPUs, its compute threads bound to them
                env["VLLM_CPU_OMP_THREADS_BIND"] = args.server_cores
                prefix = ["taskset", "-c", args.server_cores]
            extra = ["--dtype", dtype, *shlex.split(args.vllm_args)]
            server = VllmServer(python, meta, extra, env, args.startup_timeout, prefix=prefix)
            command = [*(f"{k}={v}" for k, v in env.items()), *(prefix or []), *meta["serve"], *extra]
        startup = round(time.monotonic() - started, 1)
        print(f"{engine}: ready after {startup} s", flush=True)
        try:
            rows = measure(engine, server.url, meta, texts, levels, args)
            outputs[engine] = probabilities(engine, server.url, texts[:CHECK_TEXTS], meta)
        finally:
            server.stop()
        results[engine] = {"command": shlex.join(command), "startup_seconds": startup, "levels": rows}
    keep.cleanup()

    agreement = None
    if len(outputs) == 2:
        a, b = outputs["lsllm"], outputs["vllm"]
        diff = max(abs(x - y) for p, q in zip(a, b, strict=True) for x, y in zip(p, q, strict=True))
        same = sum(max(range(len(p)), key=p.__getitem__) == max(range(len(q)), key=q.__getitem__) for p, q in zip(a, b, strict=True))
        agreement = {"texts": len(a), "max_abs_difference": round(diff, 6), "same_argmax": same}
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": cpu_info(),
        "load_average_at_end": os.getloadavg(),
        "command": shlex.join(["python", *sys.argv]),
        "run": str(args.run.resolve()) if not args.random_model else f"random-init {args.random_model}, 2 LoRA steps",
        "device": device,
        "export": meta,
        "dtype": dtype,
        "server_cores": args.server_cores,
        "texts": str(args.texts or "bundled SST-2 validation sentences"),
        "versions": {"vllm-cpu": vllm_version(python) if python else None},
        "engines": results,
        "agreement": agreement,
        "errors_total": sum(r["errors"] for e in results.values() for r in e["levels"]),
    }
    write_json_atomic(args.output, report)
    print(f"\n{'engine':>8}{'clients':>9}{'requests':>10}{'errors':>8}{'examples/s':>12}{'p50 ms':>10}{'p99 ms':>10}")
    for engine, data in results.items():
        for row in data["levels"]:
            print(f"{engine:>8}{row['concurrency']:>9}{row['requests']:>10}{row['errors']:>8}{row['examples_per_s']:>12.1f}"
                  f"{row['p50_ms']:>10.1f}{row['p99_ms']:>10.1f}")
    if agreement:
        print(f"\nsame {agreement['texts']} texts: max |probability difference| {agreement['max_abs_difference']}, "
              f"same label on {agreement['same_argmax']}")
    print(f"written to {args.output}")
    return 1 if report["errors_total"] else 0


if __name__ == "__main__":
    sys.exit(main())
