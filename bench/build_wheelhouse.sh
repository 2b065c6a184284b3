#!/usr/bin/env bash
# What bench/gpu_check.sh needs on a GPU machine that has no network, built here (where PyPI answers):
#
#   bench/build_wheelhouse.sh            # -> bench/gpu-carry/ (ignored by git): wheels/, data/, MANIFEST.txt
#
# The GPU image (Python 3.12, torch 2.11 + CUDA, transformers 5.17, peft, accelerate, tokenizers,
# scikit-learn, matplotlib, tensorboard, httpx ...) lacks what lsllm imports for the paths the GPU tier
# runs and for the rest of the CLI:
#   seqeval (lsllm.evaluation, lsllm.inference.prediction: every train/predict/eval)   sdist only: a wheel is built here
#   fastapi + starlette + pydantic(+core) + uvicorn (+ their small deps)      lsllm serve
#   trl + datasets (+ dill, multiprocess), gguf                               lsllm sft, GGUF models
#   bitsandbytes                                                              QLoRA (--quantize 4bit)
# Versions are those of this checkout's .venv (the ones the test suite passed with), as pure-Python
# or cp312 manylinux x86_64 wheels, installed there with `pip install --no-deps --no-index`.
#
# bitsandbytes' wheel (43 MB) ships a library for every CUDA (11.8 ... 13.2), ROCm and XPU version;
# the GPU's torch is built for CUDA 13.0, so only the CPU and CUDA 13.x libraries are kept
# (about 3 MB; the wheel's RECORD is rewritten to match). Nothing else is changed.
#
# data/: sst2/ and conll03/ train + validation from ../shared/data (or $LSLLM_DATA_DIR), else the
# SST-2 sample that ships in lsllm; the throughput benchmark reads them (a GPU machine has no ../shared).
# The whole folder is carried to the GPU machine with the working tree: 64 MiB in all; checked below.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${GPU_CARRY:-bench/gpu-carry}
PY=${PYTHON:-.venv/bin/python}
PYVER=${PYVER:-3.12}  # the GPU image's Python (another, e.g. 3.11, to try the install step on this machine)
LIMIT_MIB=64
[ -x "$PY" ] || { echo "build_wheelhouse: $PY not found: run 'make install' first (or set PYTHON=...)" >&2; exit 2; }

PACKAGES=(fastapi starlette pydantic pydantic-core typing-inspection annotated-types annotated-doc opentelemetry-api
          typing-extensions uvicorn trl datasets dill multiprocess gguf)
version_of() { "$PY" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$1"; }

rm -rf "$OUT" && mkdir -p "$OUT/wheels" "$OUT/data"
PINS=()
for name in "${PACKAGES[@]}"; do PINS+=("$name==$(version_of "$name")"); done
echo "build_wheelhouse: downloading ${PINS[*]}"
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$OUT/wheels" "${PINS[@]}"

echo "build_wheelhouse: building seqeval==$(version_of seqeval) (published as an sdist only)"
"$PY" -m pip wheel --quiet --no-deps -w "$OUT/wheels" "seqeval==$(version_of seqeval)"

BNB_VERSION=${BNB_VERSION:-0.50.2}
echo "build_wheelhouse: bitsandbytes==$BNB_VERSION, keeping the CPU and CUDA 13.x libraries"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
    --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 -d "$TMP" "bitsandbytes==$BNB_VERSION"
"$PY" - "$TMP"/bitsandbytes-*.whl "$OUT/wheels" <<'EOF'
import re, sys, zipfile
from pathlib import Path

src, out = Path(sys.argv[1]), Path(sys.argv[2])
keep = re.compile(r"libbitsandbytes_(cpu|cuda13\d)\.so$")
with zipfile.ZipFile(src) as zin, zipfile.ZipFile(out / src.name, "w", zipfile.ZIP_DEFLATED) as zout:
    dropped = {n for n in zin.namelist() if n.endswith(".so") and not keep.search(n)}
    for info in zin.infolist():
        if info.filename in dropped:
            continue
        data = zin.read(info)
        if info.filename.endswith(".dist-info/RECORD"):
            lines = data.decode().splitlines()
            data = ("\n".join(line for line in lines if line.split(",")[0] not in dropped) + "\n").encode()
        zout.writestr(info, data)
print(f"  dropped {len(dropped)} libraries for other CUDA/ROCm/XPU versions")
EOF

DATA=${LSLLM_DATA_DIR:-../shared/data}
for task in sst2 conll03; do
    if [ -d "$DATA/$task" ]; then
        mkdir -p "$OUT/data/$task"
        for f in "$DATA/$task"/{train,validation}.* "$DATA/$task/labels.txt"; do [ -f "$f" ] && cp "$f" "$OUT/data/$task/"; done
    fi
done
if [ ! -d "$OUT/data/sst2" ]; then
    echo "build_wheelhouse: no $DATA/sst2: using the SST-2 sample shipped in lsllm (6,000 train sentences)"
    mkdir -p "$OUT/data/sst2" && cp src/lsllm/resources/sst2-sample/{train.tsv,validation.tsv,labels.txt} "$OUT/data/sst2/"
fi

(cd "$OUT" && find . -type f | sort | xargs ls -l | awk '{print $5, $9}') > "$OUT/MANIFEST.txt"
carry=$(du -sb "$OUT" | cut -f1)
tree=$(git ls-files -z --cached --others --exclude-standard | xargs -0 -r du -cb 2>/dev/null | tail -1 | cut -f1)
total=$((carry + tree))
printf 'build_wheelhouse: %s = %.1f MiB, working tree %.1f MiB, together %.1f MiB of %d MiB\n' \
    "$OUT" "$(echo "$carry / 1048576" | bc -l)" "$(echo "$tree / 1048576" | bc -l)" "$(echo "$total / 1048576" | bc -l)" "$LIMIT_MIB"
if [ "$total" -ge $((LIMIT_MIB * 1048576)) ]; then
    echo "build_wheelhouse: too big to carry (limit $LIMIT_MIB MiB): drop data/conll03 or a package" >&2
    exit 1
fi
ls "$OUT/wheels"
