"""The results tables of README.md and docs/*.md, generated from their records.

A generated table sits between two HTML comments, invisible once rendered:

    <!-- table: NAME -->
    ...
    <!-- /table -->

(or inline, inside a sentence, for a figure quoted in prose). `python docs/tables.py` (`make
docs-tables`) rewrites every such block from the record its generator reads (bench/results/*.json;
results/ for runs recorded with `lsllm record`); `--check` rewrites nothing and lists the blocks
that differ from their records, exit 1 (tests/test_doc_tables.py runs it). So a number in a
generated table is its record's number, and says which machine, date and seed it came from. A
table whose runs left no record in this repository is not generated: the docs say so above it.

Goals are judged here too, from the record and by one rule: "met" only when every repeat meets
the target (a median that passes with a repeat below it is "not established").
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import statistics
import sys
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench" / "results"
BLOCK = re.compile(r"<!-- table: (?P<name>[a-z0-9-]+) -->(?P<body>.*?)<!-- /table -->", re.S)

TRAIN_SEED_DEFAULT = 42  # lsllm train's --seed default (lsllm.config.TrainConfig.seed; checked by the test)
THROUGHPUT_SEED_DEFAULT = 0  # bench/throughput.py's --seed default
SFT_SPEED_SEED = 0  # bench/sft_speed.py seeds torch with 0
TASKS = {"sst2": "SST-2", "conll03": "CoNLL03"}


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def record(name: str) -> dict | list:
    return json.loads((BENCH / name).read_text())


# ---------------------------------------------------------------- what every row carries


def machine(m: dict | None, cpus_note: str = "") -> str:
    """A record's machine in a few words: CPU model, its bf16 instructions, logical CPUs."""
    if not m:
        return "not recorded"
    m = m.get("cpu", m)  # throughput records nest the CPU under "cpu"
    model = re.sub(r"\((R|TM)\)|\bProcessor\b|\bCPU\b", "", m.get("model", "?"))
    model = " ".join(model.split())
    kind = "AMX" if m.get("amx_bf16") else "avx512_bf16" if m.get("avx512_bf16") else "no bf16 instructions"
    cpus = f", {m['logical_cpus']} vCPUs" if m.get("logical_cpus") else ""
    return f"{model} ({kind}){cpus}{cpus_note}"


def day(date: str | None) -> str:
    """The day of a record's date ("2026-11-23T18:34:37+00:00", "2026-12-02 19:10 UTC"), or that it has none."""
    return date[:10] if date else "not recorded"


def flag_value(command: str, flag: str) -> str | None:
    words = shlex.split(command)
    return words[words.index(flag) + 1] if flag in words[:-1] else None


def seed_of(rec: dict, default: int) -> str:
    """The record's seed, else its command's --seed, else the script's default (said so)."""
    if rec.get("seed") is not None:
        return str(rec["seed"])
    given = flag_value(rec.get("command") or "", "--seed")
    return given if given is not None else f"{default} (default)"


def table(header: list[str], rows: list[list[str]], align: str | None = None) -> list[str]:
    """A markdown table; ``align`` one character per column, `l` or `r`."""
    align = align or "l" * len(header)
    rule = ["---:" if a == "r" else "---" for a in align]
    return [f"| {' | '.join(header)} |", f"|{'|'.join(rule)}|", *(f"| {' | '.join(r)} |" for r in rows)]


def n(x: float, digits: int = 1) -> str:
    """``x`` rounded half up (as a reader rounds; format() rounds 1020.5 to 1020), with thousands separators."""
    return f"{Decimal(repr(x)).quantize(Decimal(1).scaleb(-digits), ROUND_HALF_UP):,}"


def pct(x: float, digits: int = 1) -> str:
    return f"{n(100 * x, digits)} %"


# ---------------------------------------------------------------- bench/throughput.py


def _paired(rec: dict, task: str, mode: str, a: str, b: str) -> list[float]:
    """Per-repeat ratios a/b of real tokens/s (repeat i of a against repeat i of b)."""
    runs_a = rec["results"][task][a][mode]["runs"]
    runs_b = rec["results"][task][b][mode]["runs"]
    ratios = [x["tokens_per_s"] / y["tokens_per_s"] for x, y in zip(runs_a, runs_b, strict=True)]
    stored = rec["ratios"].get(f"{task}.{mode}.{a}/{b}")
    if stored is not None and abs(statistics.median(ratios) - stored) > 1e-9:
        raise SystemExit(f"{task}.{mode}.{a}/{b}: the record's ratio {stored} is not the median of its repeats")
    return ratios


def _where(rec: dict, default_seed: int = THROUGHPUT_SEED_DEFAULT) -> list[str]:
    return [machine(rec["machine"]), day(rec.get("date")), seed_of(rec, default_seed)]


def _measured(rec: dict):
    """(task, path, {mode: result}) for every path measured on a task (vLLM: SST-2 only; ORT, vLLM and the fp32 peers:
    inference only)."""
    for task in rec["tasks"]:
        for path in rec["paths"]:
            if path in rec["results"].get(task, {}):
                yield task, path, rec["results"][task][path]


def throughput_repeats() -> list[str]:
    rec = record("throughput.json")
    rows = []
    for task, path, modes in _measured(rec):
        infer = modes["infer"]["runs"]
        train = modes["train"]["runs"] if "train" in modes else [None] * len(infer)
        for i, (t, f) in enumerate(zip(train, infer, strict=True)):
            rows.append([TASKS[task], path, str(i), n(t["tokens_per_s"]) if t else "-", n(f["tokens_per_s"]),
                         n(t["peak_rss_mb"], 0) if t else "-", n(f["peak_rss_mb"], 0), *_where(rec)])
    return table(["task", "path", "repeat", "train tok/s", "infer tok/s", "peak RSS MB (process)",
                  "peak RSS MB (after inference)", "machine", "date", "seed"], rows, "lllrrrrlll")


def throughput_summary() -> list[str]:
    rec = record("throughput.json")
    rows = []
    for task, path, modes in _measured(rec):
        for mode in [m for m in ("train", "infer") if m in modes]:
            r = modes[mode]
            rows.append([TASKS[task], path, mode, n(r["tokens_per_s"]), n(r["examples_per_s"], 2), pct(r["padded_share"]),
                         n(r["peak_rss_mb"], 0), r["compute_dtype"], pct(r["mfu"]), pct(r["mfu_vs_best_peak"]), *_where(rec)])
    kernels = rec.get("peak_kernels", {})  # which kernel gave each peak (records from 2026-12-07 on; torch.matmul before)
    peaks = ", ".join(f"{k} {n(v / 1e9, 1)} GFLOP/s" + (f" ({kernels[k]['kernel']})" if k in kernels else "")
                      for k, v in rec["peak_flop_per_s"].items())
    if not kernels:
        peaks += " (torch.matmul)"
    return [*table(["task", "path", "mode", "real tok/s", "ex/s", "pad", "peak RSS MB", "dtype", "MFU", "MFU*", "machine",
                    "date", "seed"], rows, "lllrrrrlrrlll"),
            "",
            f"Medians of {rec['sizes']['repeats']} repeats; matmul peak: {peaks}; the highest 1-minute load average during "
            f"the run: {n(rec['max_load_avg_1min'])}. MFU: useful FLOP/s over the peak of the path's own dtype; MFU\\*: over "
            "the machine's best peak."]


def throughput_ratios() -> list[str]:
    rec = record("throughput.json")
    rows = []
    for key in rec["ratios"]:
        task, mode, pair = key.split(".")
        a, b = pair.split("/")
        each = _paired(rec, task, mode, a, b)
        rows.append([f"{TASKS[task]} {mode} {a} / {b}", f"**{n(statistics.median(each), 2)}**",
                     " / ".join(f"{n(x, 2)}" for x in each), *_where(rec)])
    return table(["real tokens/s ratio", "median", "repeats 0 / 1 / 2", "machine", "date", "seed"], rows, "lrrlll")


def _goal(each: list[float], target: float) -> str:
    """Met only when every repeat meets the target; a median below it is not met; anything between is not established."""
    below = sum(x < target for x in each)
    if below == 0:
        return "met (every repeat)"
    if statistics.median(each) < target:
        above = len(each) - below
        return "**not met**" + (f" ({above} of {len(each)} repeats above)" if above else "")
    return f"**not established**: median above, {below} of {len(each)} repeats below"


def throughput_targets() -> list[str]:
    rec, acc = record("throughput.json"), record("accuracy.json")
    rows = []
    for label, mode, b, target, tasks in (("training ≥ 5x reference on SST-2", "train", "reference", 5.0, ["sst2"]),
                                          ("training ≥ 1.6x tuned on both", "train", "tuned", 1.6, ["sst2", "conll03"]),
                                          ("inference ≥ 6x reference on SST-2", "infer", "reference", 6.0, ["sst2"]),
                                          ("inference ≥ 1.2x tuned on both", "infer", "tuned", 1.2, ["sst2", "conll03"])):
        each = {t: _paired(rec, t, mode, "lsllm", b) for t in tasks}
        measured = "; ".join(f"{TASKS[t]} **{n(statistics.median(v), 2)}x** ({' / '.join(f'{n(x, 2)}' for x in v)})"
                             for t, v in each.items())
        rows.append([label, measured, _goal([x for v in each.values() for x in v], target), *_where(rec)])
    for mode, what in (("train", "training"), ("infer", "inference")):
        peak = {p: [rec["results"][t][p][mode]["peak_rss_mb"] for t in rec["tasks"]] for p in ("lsllm", "reference", "tuned")}
        measured = (f"lsllm {' / '.join(n(x / 1000, 2) for x in peak['lsllm'])} GB vs reference "
                    f"{' / '.join(n(x / 1000, 2) for x in peak['reference'])} GB (tuned "
                    f"{' / '.join(n(x / 1000, 2) for x in peak['tuned'])})")
        met = all(x <= y for x, y in zip(peak["lsllm"], peak["reference"], strict=True))
        rows.append([f"peak RSS ≤ reference ({what})", measured, "met" if met else "**not met**", *_where(rec)])
    runs = {r["path"]: r for r in acc["accuracy"]["runs"]}
    ls, ref = runs["lsllm"], runs["reference"]
    delta = 100 * (ls["accuracy"] - ref["accuracy"])
    rows.append(["accuracy unchanged", f"{pct(ls['accuracy'], 2)} vs {pct(ref['accuracy'], 2)} ({delta:+.2f} points, "
                 f"{ls['eval_examples']} sentences, one run each)",
                 f"no difference measurable (one sentence = {n(100 / ls['eval_examples'], 2)} points; one seed)", *_where(acc)])
    return table(["target (issue 7)", "full run: median (repeats 0 / 1 / 2)", "verdict", "machine", "date", "seed"], rows)


def throughput_accuracy() -> list[str]:
    acc = record("accuracy.json")
    rows = [[r["path"], f"**{pct(r['accuracy'], 2)}**", f"{r['train_examples']:,}", f"{r['eval_examples']:,}", f"{r['lr']:g}",
             f"{n(r['train_s'], 0)} s", f"{n(r['eval_s'], 0)} s", *_where(acc)] for r in acc["accuracy"]["runs"]]
    return table(["path", "SST-2 validation accuracy", "train examples (1 epoch)", "validation sentences", "lr", "training",
                  "scoring", "machine", "date", "seed"], rows, "lrrrrrrlll")


def readme_speed() -> list[str]:
    rec = record("throughput.json")
    rows = []
    for label, mode, b in (("training, against the original scripts' recipe", "train", "reference"),
                           ("training, against a tuned stock HF + PEFT recipe", "train", "tuned"),
                           ("prediction, against the original scripts' recipe", "infer", "reference"),
                           ("prediction, against the tuned stock recipe", "infer", "tuned")):
        cells = []
        for task in rec["tasks"]:
            each = _paired(rec, task, mode, "lsllm", b)
            cells.append(f"**{n(statistics.median(each), 2)}x** ({n(min(each), 2)}-{n(max(each), 2)})")
        rows.append([label, *cells, *_where(rec)])
    for mode, what in (("train", "peak RSS, training"), ("infer", "peak RSS, prediction")):
        cells = [" / ".join(n(rec["results"][t][p][mode]["peak_rss_mb"] / 1000, 2) for p in ("lsllm", "reference", "tuned"))
                 + " GB" for t in rec["tasks"]]
        rows.append([f"{what} (lsllm / reference / tuned)", *cells, *_where(rec)])
    return table(["lsllm, real tokens/s (median of 3 repeats, their range)", "SST-2", "CoNLL03", "machine", "date", "seed"],
                 rows, "lrrlll")


def onnx_speed() -> list[str]:
    rec = record("throughput-onnx.json")
    names = {"tuned": "tuned stock HF + PEFT", "lsllm": "**lsllm**", "ort-fp32": "ONNX Runtime", "ort-int8": "ONNX Runtime"}
    dtypes = {"bfloat16": "bf16", "float32": "fp32", "int8": "int8"}
    rows = []
    for task in rec["tasks"]:
        for path in rec["paths"]:
            r = rec["results"][task][path]["infer"]
            speed = n(r["tokens_per_s"], 0)
            rows.append([TASKS[task], names[path], dtypes[r["compute_dtype"]], f"**{speed}**" if path == "lsllm" else speed,
                         f"{n(100 * r['padded_share'], 0)} %", f"{n(r['peak_rss_mb'], 0)} MB", pct(r["mfu"]), *_where(rec)])
    return table(["task", "path", "dtype", "real tokens/s", "padding", "peak RSS", "MFU (own dtype)", "machine", "date", "seed"],
                 rows, "lllrrrrlll")


# ---------------------------------------------------------------- bench/profile_steps.py


def _profiles() -> list[tuple[dict, dict]]:
    """(file record, profile) for 1 thread then 2 threads, reference then tuned."""
    return [(rec, p) for rec in (record("profile-threads1.json"), record("profile.json")) for p in rec["profiles"]]


def profile_summary() -> list[str]:
    profiles = _profiles()
    header = ["", *(f"{p['recipe']} {p['threads']} thread{'s' if p['threads'] > 1 else ''}" for _, p in profiles)]
    rows = [["machine", *(machine(rec["cpu"]) for rec, _ in profiles)],
            ["date", *(day(rec.get("date")) for rec, _ in profiles)],
            ["ms per step", *(n(p["ms_per_step"], 0) for _, p in profiles)],
            ["ms per real token", *(f"{p['ms_per_step'] / p['real_tokens_per_batch']:.2g}" for _, p in profiles)]]
    order = ["matmul (dense)", "attention (SDPA)", "element-wise / norms / other aten", "dtype casts / copies",
             "dropout (LoRA input)", "framework (autograd, python ranges)", "matmul (LoRA, r=12)", "optimizer math"]
    for category in order:
        rows.append([category, *(pct(p["categories"][category]["share"]) for _, p in profiles)])
    return table(header, rows, "l" + "r" * len(profiles))


def profile_details() -> list[str]:
    out: list[str] = []
    threads_seen = None
    for rec, p in _profiles():
        if p["threads"] != threads_seen:
            threads_seen = p["threads"]
            out += [f"#### {threads_seen} thread{'s' if threads_seen > 1 else ''}", ""]
        steps = p["steps"]
        out += [f"##### {p['recipe']} ({p['task']}, {p['compute_dtype']}, batch {p['batch_size']}, {p['threads']} threads)", "",
                f"{steps} profiled steps, {n(p['ms_per_step'], 0)} ms self CPU per step; per batch "
                f"{n(p['real_tokens_per_batch'], 0)} real tokens of {n(p['computed_tokens_per_batch'], 0)} computed "
                f"({machine(rec['cpu'])}, date {day(rec.get('date'))}).", "",
                "Phases (inclusive): " + ", ".join(f"{k.split('.')[1]} {n(v / steps, 0)} ms/step" for k, v in p["phases_ms"].items()),
                ""]
        out += table(["category", "ms", "share"],
                     [[c, f"{n(v['ms'], 0)}", pct(v["share"])] for c, v in p["categories"].items()], "lrr")
        out.append("")
        out += table(["op (top by self CPU)", "self ms", "share", "calls", "category"],
                     [[f"`{o['op']}`", f"{n(o['self_ms'], 0)}", pct(o["share"]), str(o["calls"]), o["category"]] for o in p["top_ops"]],
                     "lrrrl")
        out.append("")
    return out[:-1]


# ---------------------------------------------------------------- bench/sft_speed.py


def _sft_where(rec: dict) -> list[str]:
    return [machine(rec["machine"], f", core {','.join(map(str, rec['affinity']))}, {rec['threads']} thread"),
            day(rec.get("date")), f"{SFT_SPEED_SEED} (script)"]


def sft_training() -> list[str]:
    rec = record("sft_speed.json")
    t = rec["training"]
    rows = [[label, f"{t[k]['real_tokens']:,}", f"{n(t[k]['per_s_cpu'], 0)}", f"{n(t[k]['per_s_wall'], 0)}", *_sft_where(rec)]
            for label, k in (("SFT, TRL `SFTTrainer` as it comes (padding-free)", "sft_trl_stock"),
                             ("SFT, lsllm (`sft.training.build_trainer`)", "sft"), ("LS, lsllm", "ls"))]
    return [*table(["path", "real tokens / epoch", "tokens/s (CPU time)", "tokens/s (wall)", "machine", "date", "seed"],
                   rows, "lrrrlll"),
            "",
            f"SFT / LS = **{n(t['sft_vs_ls_tokens_per_s_cpu'], 2)}x** tokens/s (CPU time; {n(t['sft_vs_ls_tokens_per_s_wall'], 2)}x "
            f"wall; target ≥ 0.7x); lsllm's SFT is {n(t['sft_vs_trl_stock_cpu'], 2)}x TRL's as it comes."]


def sft_evaluation() -> list[str]:
    rec = record("sft_speed.json")
    ev = rec["evaluation"]
    rows = []
    for label, k in (("before: `model.generate`, 32 left-padded prompts, 8 new tokens", "before"),
                     ("after, 8 new tokens", "after_8_tokens"),
                     (f"after, as `sft eval` runs ({ev['max_new_tokens_after']} new tokens, from the longest label)", "after"),
                     ("label likelihood (`--scoring likelihood`)", "likelihood")):
        runs = ev["runs"][k]
        rows.append([label, " / ".join(f"{n(r['per_s_cpu'], 2)}" for r in runs), " / ".join(f"{n(r['per_s_wall'], 2)}" for r in runs),
                     *_sft_where(rec)])
    return table(["path", "examples/s (CPU time), per repeat", "examples/s (wall), per repeat", "machine", "date", "seed"],
                 rows, "lrrlll")


# ---------------------------------------------------------------- bench/demo.py


def _makefile_demo_limit() -> str | None:
    """--train-limit of the Makefile's demo command: the row that is 'the demo now'."""
    match = re.search(r"^demo:.*?--train-limit (\d+)", (ROOT / "Makefile").read_text(), re.S | re.M)
    return match.group(1) if match else None


def _demo_where(r: dict, note: str = "") -> list[str]:
    threads = r.get("threads")
    cores = f", {threads} thread" if threads else ", torch's threads"
    return [machine(r["machine"], cores + note), day(r.get("date")), seed_of(r, TRAIN_SEED_DEFAULT)]


def demo() -> list[str]:
    now = _makefile_demo_limit()
    rows = []
    for r in record("demo.json"):
        if r.get("isa_limits"):
            continue
        limit = flag_value(r["command"], "--train-limit")
        epochs = flag_value(r["command"], "--epochs")
        recipe = f"{int(limit):,} sentences, {epochs} epoch" + (" (the demo now)" if limit == now else
                                                                ", label-word head behind a prompt")
        acc = pct(r["test_accuracy"], 2)
        rows.append([recipe, f"**{acc}**" if limit == now else acc, f"{n(r['train_seconds'], 0)} s", f"{n(r['wall_seconds'], 0)} s",
                     *_demo_where(r)])
    return table(["recipe", "test accuracy (872 SST-2 sentences)", "training", "wall-clock", "machine", "date", "seed"],
                 rows, "lrrrlll")


def demo_emulated() -> list[str]:
    rows = []
    for r in record("demo.json"):
        if not r.get("isa_limits"):
            continue
        dtype = _dtype(r)
        rows.append([f"the demo ({int(flag_value(r['command'], '--train-limit')):,} sentences, "
                     f"{flag_value(r['command'], '--epochs')} epoch), {dtype}, kernels capped at AVX2 (emulated)",
                     f"**{pct(r['test_accuracy'], 2)}**", f"**{n(r['train_seconds'], 0)} s**", f"{n(r['wall_seconds'], 0)} s",
                     *_demo_where(r, "; an emulation, not an AVX2 chip")])
    return table(["recipe", "test accuracy (872 sentences)", "training", "wall-clock", "machine", "date", "seed"], rows, "lrrrlll")


def _demo_now(emulated: bool) -> dict:
    now = _makefile_demo_limit()
    [r] = [r for r in record("demo.json")
           if flag_value(r["command"], "--train-limit") == now and bool(r.get("isa_limits")) == emulated]
    return r


def _dtype(r: dict) -> str:
    name = r["machine"].get("fast_dtype") if r.get("dtype") == "auto" else r.get("dtype")
    return {"float32": "fp32", "bfloat16": "bf16"}.get(name, str(name))


def readme_demo() -> list[str]:
    r = _demo_now(False)
    threads = "one thread" if r.get("threads") == 1 else f"{r.get('threads') or 'all'} threads"
    return [f"{day(r['date'])}, {machine(r['machine'])}, {_dtype(r)}, {threads}: **{pct(r['test_accuracy'], 2)}** after "
            f"{n(r['train_seconds'], 0)} s of training, {n(r['wall_seconds'], 0)} s in all"]


def readme_demo_avx2() -> list[str]:
    r = _demo_now(True)
    return [f"({day(r['date'])}): **{pct(r['test_accuracy'], 2)}** after {n(r['train_seconds'], 0)} s of training, "
            f"{n(r['wall_seconds'], 0)} s in all"]


# ---------------------------------------------------------------- bench/matmul_kernels.py


def _kernels_where(rec: dict) -> list[str]:
    ids = rec["machine"].get("cpu_ids", {})
    family = f", family {ids['cpu family']} model {ids['model']}" if ids else ""
    return [machine(rec["machine"]) + family, day(rec.get("date")), "0"]  # the script seeds torch (the head) with 0


def matmul_kernels() -> list[str]:
    rec = record("matmul_kernels.json")
    names = ["torch.matmul", "F.linear", "onednn-packed", "mkl-packed", "inductor-freezing", "onnxruntime"]
    rows = []
    for row in rec["kernels"]:
        rates = row["gflop_per_s"]
        best = max(rates, key=rates.get)
        cells = [(f"**{n(rates[k], 0)}**" if k == best else n(rates[k], 0)) if k in rates else "-" for k in names]
        rows.append([row["dtype"], "×".join(str(d) for d in row["shape"]), *cells, *_kernels_where(rec)])
    return table(["dtype", "M×K×N", *names, "machine", "date", "seed"], rows, "ll" + "r" * len(names) + "lll")


def matmul_end_to_end() -> list[str]:
    rec = record("matmul_kernels.json")
    e2e = rec["end_to_end"]
    rows = []
    for name, r in e2e["results"].items():
        a = e2e["agreement"][name]
        rows.append([name, n(r["cpu_s"], 2), n(r["texts_per_cpu_s"]), n(r["gflop_per_cpu_s"], 0), f"{a['max_abs_diff']:.1e}",
                     f"{a['argmax_same']}/{a['of']}", *_kernels_where(rec)])
    return table(["scorer", "CPU s", "texts per CPU-s", "GFLOP per CPU-s", "max. probability difference from lsllm fp32 nn.Linear",
                  "same decision", "machine", "date", "seed"], rows, "lrrrrrlll")


def matmul_ratios() -> list[str]:
    rec = record("matmul_kernels.json")
    rows = [[key, f"**{n(value, 2)}x**", *_kernels_where(rec)] for key, value in rec["end_to_end"]["ratios_cpu_time"].items()]
    return table(["ratio of texts per CPU-second", "value", "machine", "date", "seed"], rows, "lrlll")


# ---------------------------------------------------------------- bench/serve_load.py


def _serve_load(name: str) -> list[str]:
    rec = record(name)
    where = [machine(rec["machine"]), day(rec.get("date")), "-"]
    rows = [[str(level["concurrency"]), str(level["requests"]), str(level["errors"]), n(level["requests_per_s"]),
             n(level["p50_ms"], 0), n(level["p99_ms"], 0), *where] for level in rec["levels"]]
    return table(["clients", "requests", "errors", "requests/s", "p50 ms", "p99 ms", "machine", "date", "seed"], rows,
                 "rrrrrrlll")


def serve_vllm() -> list[str]:
    """bench/serve_vllm.py: lsllm serve and vllm serve on one run, the same texts, cores and dtype."""
    rec = record("serve_vllm.json")
    where = [machine(rec["machine"]), day(rec.get("date")), "-"]
    rows = [[engine, str(level["concurrency"]), str(level["requests"]), str(level["errors"]), n(level["examples_per_s"]),
             n(level["p50_ms"], 0), n(level["p99_ms"], 0), *where]
            for engine, result in rec["engines"].items() for level in result["levels"]]
    return table(["server", "clients", "requests", "errors", "examples/s", "p50 ms", "p99 ms", "machine", "date", "seed"],
                 rows, "lrrrrrrlll")


GENERATORS: dict[str, Callable[[], list[str]]] = {
    "throughput-repeats": throughput_repeats,
    "throughput-summary": throughput_summary,
    "throughput-ratios": throughput_ratios,
    "throughput-targets": throughput_targets,
    "throughput-accuracy": throughput_accuracy,
    "readme-speed": readme_speed,
    "onnx-speed": onnx_speed,
    "profile-summary": profile_summary,
    "profile-details": profile_details,
    "sft-training": sft_training,
    "sft-evaluation": sft_evaluation,
    "demo": demo,
    "demo-emulated": demo_emulated,
    "readme-demo": readme_demo,
    "readme-demo-avx2": readme_demo_avx2,
    "matmul-kernels": matmul_kernels,
    "matmul-end-to-end": matmul_end_to_end,
    "matmul-ratios": matmul_ratios,
    "serve-vllm": serve_vllm,
    "serve-load": lambda: _serve_load("serve_load.json"),
    "serve-load-tuned": lambda: _serve_load("serve_load-tuned.json"),
    "serve-load-tiny": lambda: _serve_load("serve_load-tiny.json"),
}


def render(name: str, inline: bool) -> str:
    """A block's content: inline figures as they are, tables on their own lines between the markers."""
    lines = GENERATORS[name]()
    return lines[0] if inline else "\n" + "\n".join(lines) + "\n"


def rewrite(text: str, where: str) -> tuple[str, list[str]]:
    """``text`` with every generated block rendered from its record; the names of the blocks that changed."""
    changed: list[str] = []

    def one(match: re.Match) -> str:
        name, body = match.group("name"), match.group("body")
        if name not in GENERATORS:
            raise SystemExit(f"{where}: <!-- table: {name} --> has no generator in docs/tables.py")
        new = render(name, inline="\n" not in body)
        if new != body:
            changed.append(name)
        return f"<!-- table: {name} -->{new}<!-- /table -->"

    return BLOCK.sub(one, text), changed


def blocks() -> dict[str, list[Path]]:
    """Each generated block's name -> the files it appears in."""
    found: dict[str, list[Path]] = {}
    for path in doc_files():
        for match in BLOCK.finditer(path.read_text()):
            found.setdefault(match.group("name"), []).append(path)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="rewrite nothing; list the blocks that differ from their records")
    args = parser.parse_args(argv)
    stale = []
    for path in doc_files():
        text = path.read_text()
        new, changed = rewrite(text, str(path.relative_to(ROOT)))
        stale += [f"{path.relative_to(ROOT)}: {name}" for name in changed]
        if changed and not args.check:
            path.write_text(new)
    unused = sorted(set(GENERATORS) - set(blocks()))
    for name in unused:
        print(f"docs/tables.py: generator {name} has no block in README.md or docs/", file=sys.stderr)  # noqa: T201
    for line in stale:
        print(f"{'differs from its record' if args.check else 'rewritten'}: {line}")  # noqa: T201
    return 1 if (args.check and stale) or unused else 0


if __name__ == "__main__":
    sys.exit(main())
