#!/usr/bin/env bash
# ansible-test sanity on a copy of the collection under ansible_collections/medimg/dicom_tls.
# ansible-test's own --venv mode downloads a pip bootstrap script from a host outside the package
# registries, so the sanity requirements (pinned by ansible-test itself) go into .venv-sanity instead.
set -euo pipefail
cd "$(dirname "$0")/.."
SVENV=${SANITY_VENV:-.venv-sanity}
if [ ! -x "$SVENV/bin/ansible-test" ] || [ requirements-test.txt -nt "$SVENV/.installed" ]; then
  python3 -m venv "$SVENV"
  "$SVENV/bin/pip" install -q --disable-pip-version-check 'ansible-core>=2.19,<2.20'
  reqs=$("$SVENV/bin/python" -c 'import ansible_test, os; print(os.path.dirname(ansible_test.__file__))')/_data/requirements
  args=()
  for t in ansible-doc import import.plugin integration-aliases pep8 pylint runtime-metadata validate-modules yamllint; do
    args+=(-r "$reqs/sanity.$t.txt")
  done
  "$SVENV/bin/pip" install -q --disable-pip-version-check "${args[@]}" -r requirements.txt
  touch "$SVENV/.installed"
fi
# ansible-test's import test builds venvs with a downloaded pip bootstrap script: give it ours.
pipver=$(grep -oP "pip='\K[0-9.]+" "$("$SVENV/bin/python" -c 'import ansible_test, os; print(os.path.dirname(ansible_test.__file__))')/_internal/python_requirements.py")
mkdir -p ~/.ansible/test/cache
cp scripts/ansible-test/get_pip.py ~/.ansible/test/cache/"get_pip_${pipver//./_}.py"
dest=.build/sanity/ansible_collections/medimg/dicom_tls
rm -rf .build/sanity
mkdir -p "$dest"
git ls-files -z --cached --others --exclude-standard | rsync -a --from0 --files-from=- ./ "$dest/"
cd "$dest"
# ansible-test lists the collection's files through git.
git init -q . && git add -A >/dev/null
PATH="$OLDPWD/$SVENV/bin:$PATH" ansible-test sanity --python 3.11 --color no "$@"
