#!/usr/bin/env bash
# Run every Molecule scenario under extensions/molecule/ (default driver, local connection).
set -euo pipefail
cd "$(dirname "$0")/.."
shopt -s nullglob
scenarios=(extensions/molecule/*/molecule.yml)
if [ ${#scenarios[@]} -eq 0 ]; then echo "molecule: no scenarios yet"; exit 0; fi
cd extensions
for s in "${scenarios[@]}"; do
  name=$(basename "$(dirname "$s")")
  echo "== molecule test -s $name"
  ../scripts/netns.sh molecule test -s "$name"
done
