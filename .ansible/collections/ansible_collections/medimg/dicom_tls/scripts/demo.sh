#!/usr/bin/env bash
# make demo: roll DICOM TLS out to the demo fleet on this machine (2 dcmtk storescp listeners and
# 1 Orthanc on loopback ports, playbooks/inventory/demo.yml), check it with a full-mesh TLS C-ECHO
# matrix, print the matrix, then stop the demo listeners by PID.
# Runs inside scripts/netns.sh (a network namespace with only loopback), as the Makefile does.
set -euo pipefail
cd "$(dirname "$0")/.."
export DICOM_TLS_DEMO_DIR=${DICOM_TLS_DEMO_DIR:-/var/tmp/dicom-tls-demo}
export ANSIBLE_COLLECTIONS_PATH=${ANSIBLE_COLLECTIONS_PATH:-$PWD/.build/collections}
export ANSIBLE_CALLBACK_RESULT_FORMAT=yaml
mkdir -p "$DICOM_TLS_DEMO_DIR"
inventory=playbooks/inventory/demo.yml

stop_listeners() {
  local pidfile pid
  for pidfile in "$DICOM_TLS_DEMO_DIR"/run/*/*.pid; do
    [ -e "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    if kill -TERM "$pid" 2>/dev/null; then
      for _ in $(seq 100); do
        if [ ! -e "/proc/$pid" ] || grep -q '^[^)]*) Z' "/proc/$pid/stat" 2>/dev/null; then break; fi
        sleep 0.1
      done
      kill -KILL "$pid" 2>/dev/null || true
      echo "demo: stopped $(basename "$(dirname "$pidfile")") (PID $pid)"
    fi
    rm -f "$pidfile"
  done
}
trap stop_listeners EXIT

ansible-playbook -i "$inventory" playbooks/rollout.yml
ansible-playbook -i "$inventory" playbooks/verify.yml
echo
cat "$DICOM_TLS_DEMO_DIR/verify-report.txt"
