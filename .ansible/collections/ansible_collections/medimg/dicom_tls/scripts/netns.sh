#!/usr/bin/env bash
# Run a command in a network namespace of its own that has only loopback:
# dcmtk's storescp and Orthanc listen on every address, so test listeners live here.
set -euo pipefail
if [ "${DICOM_TLS_NETNS:-}" = 1 ]; then exec "$@"; fi
exec unshare --net -- env DICOM_TLS_NETNS=1 bash -c 'ip link set lo up && exec "$@"' netns "$@"
