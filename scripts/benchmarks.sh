#!/usr/bin/env bash
# Run every benchmark in turn (make benchmarks runs this inside the loopback network namespace);
# each prints medians and ratios against the tool it is compared with, measured in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${VENV:-.venv}/bin/python
$PY benchmarks/cert_rerun.py
$PY benchmarks/dicom_sign.py
$PY benchmarks/truststore.py --runs "${BENCH_RUNS:-5}"
$PY benchmarks/tls_echo.py
