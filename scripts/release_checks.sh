#!/usr/bin/env bash
# What Galaxy, Automation Hub and docs.ansible.com check before they take a release, run here:
#   1. the tarball built from galaxy.yml (its file list: tests/unit/test_release.py)
#   2. antsibull-docs lint-collection-docs --plugin-docs --validate-collection-refs all
#   3. antsibull-changelog lint, and CHANGELOG.md as antsibull-changelog generates it
#   4. galaxy-importer on the tarball (galaxy-importer.cfg: everything but ansible-test in a container)
#   5. ansible-builder create from execution-environment.yml, refusing a missing input
# Usage: scripts/release_checks.sh [tarball|docs|changelog|importer|ee]...   (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=$root/.build/release
export ANSIBLE_COLLECTIONS_PATH=$root/.build/collections
coll=$root/.build/collections/ansible_collections/medimg/dicom_tls

galaxy_field() { python3 -c 'import sys, yaml; print(yaml.safe_load(open("galaxy.yml"))[sys.argv[1]])' "$1"; }

tarball_name() { echo "$(galaxy_field namespace)-$(galaxy_field name)-$(galaxy_field version).tar.gz"; }

tarball() {
  local name
  name=$(tarball_name)
  rm -rf "$out" && mkdir -p "$out"
  ansible-galaxy collection build --force --output-path "$out" . >/dev/null
  [ -f "$out/$name" ] || { echo "release-checks: ansible-galaxy built no $name" >&2; exit 1; }
  # execution-environment.yml takes the tarball under one name that carries no version
  cp "$out/$name" "$out/collection.tar.gz"
  echo "release-checks: built $name"
}

docs() {
  antsibull-docs lint-collection-docs --plugin-docs --validate-collection-refs all "$coll"
  echo "release-checks: antsibull-docs lint clean"
}

changelog() {
  antsibull-changelog lint
  local tmp
  tmp=$(mktemp -d)
  # generate into a copy, so that a stale CHANGELOG.md fails here instead of being rewritten
  cp -r changelogs galaxy.yml CHANGELOG.md "$tmp/"
  (cd "$tmp" && antsibull-changelog generate)
  if ! diff -u CHANGELOG.md "$tmp/CHANGELOG.md"; then
    rm -rf "$tmp"
    echo "release-checks: CHANGELOG.md is not what antsibull-changelog generates from changelogs/ (run: antsibull-changelog generate)" >&2
    exit 1
  fi
  rm -rf "$tmp"
  echo "release-checks: antsibull-changelog lint clean, CHANGELOG.md up to date"
}

importer() {
  local name log=$root/.build/galaxy-importer.log
  name=$(tarball_name)
  [ -f "$out/$name" ] || tarball
  # galaxy-importer reads namespace, name and version from the tarball's name, and writes
  # importer_result.json into the current directory
  if ! (cd "$root/.build" && GALAXY_IMPORTER_CONFIG=$root/galaxy-importer.cfg python -m galaxy_importer.main "$out/$name") >"$log" 2>&1; then
    cat "$log" >&2
    echo "release-checks: galaxy-importer refused the collection" >&2
    exit 1
  fi
  # galaxy-importer exits 0 with findings it only warns about; a release has none
  if grep -nE '^(WARNING|ERROR)' "$log" >&2; then
    echo "release-checks: galaxy-importer findings above (full log: $log)" >&2
    exit 1
  fi
  echo "release-checks: galaxy-importer clean"
}

ee() {
  [ -f "$out/collection.tar.gz" ] || tarball
  # ansible-builder create only warns when an input is missing; here a missing one is an error
  python3 - <<'PY'
import os, sys, yaml
ee = yaml.safe_load(open("execution-environment.yml"))
deps = ee.get("dependencies", {})
need = [f["src"] for f in ee.get("additional_build_files", [])]
need += [deps[k] for k in ("python", "system") if isinstance(deps.get(k), str)]
missing = [p for p in need if not os.path.exists(p)]
if missing:
    sys.exit("release-checks: execution-environment.yml names missing inputs: " + ", ".join(missing))
PY
  rm -rf .build/ee
  ansible-builder create -f execution-environment.yml --context .build/ee --output-filename Containerfile >/dev/null
  [ -s .build/ee/_build/collection/collection.tar.gz ] || { echo "release-checks: the EE build context has no collection tarball" >&2; exit 1; }
  echo "release-checks: ansible-builder create: .build/ee/Containerfile"
}

if [ $# -eq 0 ]; then
  set -- tarball docs changelog importer ee
fi
for step in "$@"; do
  case $step in
    tarball | docs | changelog | importer | ee) "$step" ;;
    *) echo "release-checks: no step $step (tarball, docs, changelog, importer, ee)" >&2 && exit 2 ;;
  esac
done
