#!/usr/bin/env bash
# Run every Molecule scenario under extensions/molecule/ (default driver, local connection), each
# inside its own network namespace with only loopback. Run from the collection root, so that
# Molecule sees the collection (galaxy.yml), takes its scenarios from extensions/molecule/ and its
# shared settings from extensions/molecule/config.yml. MOLECULE_SCENARIOS="a b" runs only those.
# Every scenario runs; the exit status is non-zero when any failed.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
shopt -s nullglob
scenarios=(extensions/molecule/*/molecule.yml)
if [ ${#scenarios[@]} -eq 0 ]; then echo "molecule: no scenarios yet"; exit 0; fi
names=()
for s in "${scenarios[@]}"; do names+=("$(basename "$(dirname "$s")")"); done
if [ -n "${MOLECULE_SCENARIOS:-}" ]; then read -r -a names <<<"$MOLECULE_SCENARIOS"; fi
failed=()
for name in "${names[@]}"; do
  echo "== molecule test -s $name"
  start=$SECONDS
  if scripts/netns.sh molecule test -s "$name"; then
    echo "== $name: passed in $((SECONDS - start))s"
  else
    echo "== $name: FAILED after $((SECONDS - start))s"
    failed+=("$name")
  fi
done
passed=$(( ${#names[@]} - ${#failed[@]} ))
if [ ${#failed[@]} -gt 0 ]; then
  echo "molecule: failed scenarios: ${failed[*]}"
  echo "molecule: $passed passed, ${#failed[@]} failed"
  exit 1
fi
echo "molecule: $passed passed, 0 failed"
