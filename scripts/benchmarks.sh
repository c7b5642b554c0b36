#!/usr/bin/env bash
# Run every benchmark in turn with the venv's python; each prints medians and ratios against the
# tool it is compared with, measured in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${VENV:-.venv}/bin/python
"$PY" benchmarks/truststore.py --runs "${BENCH_RUNS:-5}"
