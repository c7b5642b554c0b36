#!/usr/bin/env bash
# Run every benchmark in turn (make benchmarks runs this inside the loopback network namespace).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
$PY benchmarks/cert_rerun.py
$PY benchmarks/dicom_sign.py
$PY benchmarks/tls_echo.py
