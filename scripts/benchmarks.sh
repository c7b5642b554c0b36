#!/usr/bin/env bash
# Run every benchmark in turn with the venv python; each prints its medians and its ratio
# against the anchor tool measured in the same run. Extra arguments go to every benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${VENV:-.venv}/bin/python
"$PY" benchmarks/dicom_sign.py "$@"
