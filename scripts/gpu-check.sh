#!/usr/bin/env bash
# The GPU checks, in one command (<10 min on one GPU, no network): see scripts/gpu_check.py.
#   bash scripts/gpu-check.sh [--out gpu-check.json] [--skip run,vllm,8bit,plan]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
exec "$PY" scripts/gpu_check.py "$@"
