#!/usr/bin/env bash
# Bootstrap the slt-deploy development environment: a virtualenv with the project
# (editable), its test dependencies and the optional frameworks the conformance tests
# compare against. `make test` and `make demo` call it first; run it by hand with
#
#     tools/bootstrap.sh
#
# Idempotent: a stamp file .venv/.slt-bootstrap-<hash> (hash of this script,
# pyproject.toml, setup.py, the checkout path and the knobs below) makes a complete
# environment a fast no-op. Delete the stamp or set SLT_BOOTSTRAP_FORCE=1 to redo.
#
# Knobs (environment variables):
#   SLT_VENV             virtualenv path (default: <repo>/.venv)
#   SLT_PYTHON           interpreter used to create it (default: python3.11, else python3 >= 3.11)
#   SLT_WITH_LAVA=0      skip lava-nc
#   SLT_BOOTSTRAP_FORCE=1  ignore the stamp
#   CI=true              no prompts, no progress bars (nothing here prompts anyway)
#
# Why it is not one `pip install`:
#   * torch: `pip install torch==2.13.0` takes the local CPU wheel; anything asking for
#     a newer torch, torchvision or torchaudio pulls GBs of CUDA packages. torch goes
#     in first and every later step runs under a constraints file pinning it, so a
#     dependency that wants another torch makes pip fail instead of downloading.
#   * spikingjelly 2.0.0 declares torch/torchvision/torchaudio/tensorboard/...: it is
#     installed with --no-deps plus what its neuron modules import (loguru scipy packaging).
#   * lava-nc 0.10.0 declares Python <3.11 and numpy <2 but runs here: installed with
#     --no-deps --ignore-requires-python; its real runtime deps come from the [lava]
#     extra. Its Python 3.11 dataclass fix is applied by slt_deploy.targets.lava at import.
#   * neurobench 2.3.0 (the energy tests' oracle for the ANN baseline) declares tonic, which
#     pulls torchaudio and librosa: with the torch pin pip picks torchaudio 2.11, which does
#     not match torch 2.13, and the verify step below refuses torchaudio. Its metrics,
#     models and Benchmark import only torch, snntorch, numpy and tqdm, so it is installed
#     with --no-deps plus tqdm (tests/test_energy_ann.py imports exactly that path).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SLT_VENV:-$ROOT/.venv}"
case "$VENV" in /*) ;; *) VENV="$PWD/$VENV" ;; esac
WITH_LAVA="${SLT_WITH_LAVA:-1}"

TORCH_VERSION="2.13.0"
SPIKINGJELLY_VERSION="2.0.0"
NEUROBENCH_VERSION="2.3.0"
LAVA_VERSION="0.10.0"
EXTRAS="dev,torch,nir,onnx,lava,report,fast,lnp"
# Debian packages the build or tests need; installed by ensure_apt when missing. Every one is
# named: ensure_apt uses --no-install-recommends, which drops what a package only recommends.
# gcc-arm-none-eabi (+ its binutils) gives the Cortex-M flash/RAM figures of `slt export --to c`;
# libnewlib-arm-none-eabi is its C library: without it every compile fails on <string.h> (the
# exporter then still writes the C files and reports estimated sizes, saying why).
# chromium + chromium-driver (+ a font) render the energy report's HTML headless in a test
# (tests/test_energy_report.py) and in tools/render_html.sh.
APT_PACKAGES=(gcc-arm-none-eabi binutils-arm-none-eabi libnewlib-arm-none-eabi chromium chromium-driver
              fonts-dejavu-core)

START=$SECONDS
say() { printf '[bootstrap %3ds] %s\n' "$((SECONDS - START))" "$*"; }
die() { printf '[bootstrap] ERROR: %s\n' "$*" >&2; exit 1; }

export PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1
if [[ "${CI:-}" == "true" ]]; then
    export PIP_PROGRESS_BAR=off
fi

# ensure_apt PKG...: install the Debian packages that are not installed yet.
# Runs `apt-get update` at most once per bootstrap; a no-op when all are present.
APT_UPDATED=0
ensure_apt() {
    local missing=() pkg sudo=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$pkg")
    done
    ((${#missing[@]})) || return 0
    if [[ "$(id -u)" -ne 0 ]]; then
        command -v sudo >/dev/null || die "need root (or sudo) to install: ${missing[*]}"
        sudo=(sudo -n)
    fi
    say "apt: installing ${missing[*]}"
    if ((APT_UPDATED == 0)); then
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        APT_UPDATED=1
    fi
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

ensure_apt ${APT_PACKAGES[@]+"${APT_PACKAGES[@]}"}

# ---- fast path -------------------------------------------------------------------
HASH="$(
    {
        cat "$ROOT/tools/bootstrap.sh" "$ROOT/pyproject.toml" "$ROOT/setup.py"
        printf '%s\n' "$ROOT" "$VENV" "lava=$WITH_LAVA"
    } | sha256sum | cut -c1-16
)"
STAMP="$VENV/.slt-bootstrap-$HASH"
VPY="$VENV/bin/python"

is_complete() { [[ -z "${SLT_BOOTSTRAP_FORCE:-}" && -f "$STAMP" && -x "$VPY" ]]; }
if is_complete; then
    say "environment up to date ($VENV)"
    exit 0
fi

mkdir -p "$VENV"
if command -v flock >/dev/null; then   # serialize concurrent `make -j` runs
    exec 9>"$VENV/.slt-bootstrap.lock"
    flock 9
    if is_complete; then say "environment up to date ($VENV)"; exit 0; fi
fi

# ---- virtualenv -------------------------------------------------------------------
if ! { [[ -x "$VPY" ]] && "$VPY" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; }; then
    PY="${SLT_PYTHON:-}"
    if [[ -z "$PY" ]]; then
        for cand in python3.11 python3; do
            if command -v "$cand" >/dev/null \
                && "$cand" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
                PY="$cand"
                break
            fi
        done
    fi
    [[ -n "$PY" ]] || die "no Python >= 3.11 found (set SLT_PYTHON)"
    if [[ -e "$VENV/pyvenv.cfg" ]]; then
        say "removing broken virtualenv $VENV"
        rm -rf "$VENV/bin" "$VENV/lib" "$VENV/lib64" "$VENV/include" "$VENV/pyvenv.cfg"
    fi
    say "creating virtualenv $VENV ($("$PY" --version 2>&1))"
    "$PY" -m venv "$VENV"
fi

# pip, minus known noise: this machine's pip config (extra file:// indexes that lack
# most projects), setuptools' editable-install banner, and the resolver's complaint
# about the deliberately unmet metadata of spikingjelly and lava-nc (see top).
# Any other message, and pip's exit status, still come through.
PIP_LOG="$VENV/.slt-bootstrap-pip.log"
pip() {
    local rc=0
    PYTHONWARNINGS="ignore:Editable installation" "$VPY" -m pip "$@" 2>"$PIP_LOG" || rc=$?
    grep -v -E \
        -e 'is ignored: it is neither a file nor a directory' \
        -e "^ERROR: pip's dependency resolver does not currently take into account" \
        -e '^(spikingjelly|lava-nc|neurobench) [0-9.]+ (requires|has requirement) ' \
        "$PIP_LOG" >&2 || true
    return "$rc"
}
say "upgrading pip"
pip install -q --upgrade pip

# ---- torch first, then everything else under a torch pin ---------------------------
say "installing torch==$TORCH_VERSION (CPU wheel)"
pip install -q "torch==$TORCH_VERSION"
CONSTRAINTS="$VENV/.slt-constraints.txt"
printf 'torch==%s\n' "$TORCH_VERSION" >"$CONSTRAINTS"

say "installing slt-deploy (editable) with extras [$EXTRAS]"
pip install -q -c "$CONSTRAINTS" -e "$ROOT[$EXTRAS]"

say "installing spikingjelly==$SPIKINGJELLY_VERSION (--no-deps) + loguru scipy packaging"
pip install -q -c "$CONSTRAINTS" loguru scipy packaging
pip install -q --no-deps "spikingjelly==$SPIKINGJELLY_VERSION"

say "installing neurobench==$NEUROBENCH_VERSION (--no-deps) + tqdm"
pip install -q -c "$CONSTRAINTS" tqdm
pip install -q --no-deps "neurobench==$NEUROBENCH_VERSION"

if [[ "$WITH_LAVA" != "0" ]]; then
    say "installing lava-nc==$LAVA_VERSION (--no-deps --ignore-requires-python)"
    pip install -q --no-deps --ignore-requires-python "lava-nc==$LAVA_VERSION"
fi

# ---- verify ---------------------------------------------------------------------
say "verifying"
SLT_WITH_LAVA="$WITH_LAVA" SLT_TORCH_VERSION="$TORCH_VERSION" "$VPY" - <<'EOF'
import importlib, importlib.metadata as md, os, sys

want = os.environ["SLT_TORCH_VERSION"]
import torch
if not torch.__version__.startswith(want):
    sys.exit(f"[bootstrap] ERROR: torch {torch.__version__} installed, expected {want} "
             "(a dependency pulled another torch; see tools/bootstrap.sh)")
heavy = sorted(d.metadata["Name"] for d in md.distributions()
               if (d.metadata["Name"] or "").lower().startswith(("torchvision", "torchaudio", "nvidia-")))
if heavy:
    sys.exit(f"[bootstrap] ERROR: unwanted heavy packages installed: {', '.join(heavy)}")
mods = ["numpy", "safetensors", "typer", "rich", "pytest", "hypothesis", "sklearn",
        "snntorch", "h5py", "nir", "onnx", "onnxruntime", "matplotlib", "numba",
        "spikingjelly.activation_based.neuron", "neurobench.metrics.workload", "neurobench.benchmarks",
        "selenium.webdriver"]
for m in mods:
    try:
        importlib.import_module(m)
    except Exception as e:
        sys.exit(f"[bootstrap] ERROR: import {m} failed: {type(e).__name__}: {e}")
md.version("slt-deploy")  # the project itself; its imports are the tests' business
if os.environ["SLT_WITH_LAVA"] != "0":
    md.version("lava-nc")
EOF

rm -f "$VENV"/.slt-bootstrap-* "$PIP_LOG"
printf 'bootstrapped %s\n' "$(date -u +%FT%TZ)" >"$STAMP"
say "done ($VENV)"
