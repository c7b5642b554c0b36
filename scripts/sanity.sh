#!/usr/bin/env bash
# ansible-test sanity on a copy of the collection under ansible_collections/medimg/dicom_tls.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.build/sanity/ansible_collections/medimg/dicom_tls
rm -rf .build/sanity
mkdir -p "$dest"
git ls-files -z --cached --others --exclude-standard | rsync -a --from0 --files-from=- ./ "$dest/"
cd "$dest"
# ansible-test lists the collection's files through git.
git init -q . && git add -A >/dev/null
ansible-test sanity --venv --python 3.11 --color no "$@"
