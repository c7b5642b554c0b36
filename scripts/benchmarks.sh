#!/usr/bin/env bash
# Run each benchmark in turn with the venv's python (make benchmarks runs this inside scripts/netns.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
export PATH="$PWD/.venv/bin:$PATH"
"$PY" benchmarks/tls_echo.py "$@"
