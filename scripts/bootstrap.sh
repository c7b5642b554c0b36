#!/usr/bin/env bash
# Install what the tests and the demo need on a fresh Debian machine:
# Debian packages (as root, only when missing) and a venv with the pinned-range pip packages.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}

need_apt=()
command -v storescp >/dev/null || need_apt+=(dcmtk)
command -v Orthanc >/dev/null || need_apt+=(orthanc)
command -v openssl >/dev/null || need_apt+=(openssl)
command -v ip >/dev/null || need_apt+=(iproute2)
command -v unshare >/dev/null || need_apt+=(util-linux)
command -v git >/dev/null || need_apt+=(git)
command -v rsync >/dev/null || need_apt+=(rsync)
command -v shellcheck >/dev/null || need_apt+=(shellcheck)
command -v promtool >/dev/null || need_apt+=(prometheus)
# tests/integration/test_systemd_units.py: systemd-analyze verify on the roles' units (no running systemd needed).
command -v systemd-analyze >/dev/null || need_apt+=(systemd)
# tests/integration/test_systemd.py: a systemd in a container (systemd-nspawn over the debootstrap root
# that scripts/systemd_root.sh builds once, before make integration enters the network namespace).
command -v systemd-nspawn >/dev/null || need_apt+=(systemd-container)
command -v debootstrap >/dev/null || need_apt+=(debootstrap)
"$PY" -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
# The SSH fleet (tests/integration/test_ssh_fleet.py): sshd instances on loopback, become via sudo.
[ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
command -v ssh >/dev/null || need_apt+=(openssh-client)
command -v sudo >/dev/null || need_apt+=(sudo)
# The Python matrix runs modules with Debian's own python3 and its python3-cryptography (38.0.4 on
# Debian 12), as a node that installs nothing from pip would.
/usr/bin/python3 -c 'import cryptography' 2>/dev/null || need_apt+=(python3-cryptography)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "bootstrap: missing Debian packages: ${need_apt[*]} (run as root, or install them)" >&2
    exit 1
  fi
  echo "bootstrap: apt-get install ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Debian's orthanc package starts its service on install; keep it from doing so.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

stamp="$VENV/.installed"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
if [ ! -f "$stamp" ] || [ requirements-test.txt -nt "$stamp" ] || [ requirements.txt -nt "$stamp" ]; then
  "$VENV/bin/pip" install -q --disable-pip-version-check -r requirements-test.txt
  touch "$stamp"
fi

# The SSH fleet's managed-node user: unprivileged, reached by key only (its password field is '*',
# which sshd does not take for a locked account), passwordless sudo for become. As root only.
SSH_FLEET_USER=dicomops
if [ "$(id -u)" = 0 ]; then
  id "$SSH_FLEET_USER" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$SSH_FLEET_USER"
  [ "$(getent shadow "$SSH_FLEET_USER" | cut -d: -f2)" = '*' ] || usermod -p '*' "$SSH_FLEET_USER"
  sudoers=/etc/sudoers.d/dicom-tls-ssh-fleet
  if [ ! -f "$sudoers" ]; then
    printf '%s ALL=(ALL) NOPASSWD: ALL\n' "$SSH_FLEET_USER" > "$sudoers.tmp"
    chmod 0440 "$sudoers.tmp"
    visudo -cqf "$sudoers.tmp" && mv "$sudoers.tmp" "$sudoers"
  fi
  mkdir -p /run/sshd  # sshd's privilege separation directory (made by the ssh service, which is not run)
fi

# Ansible finds the collection through .build/collections/ansible_collections/medimg/dicom_tls.
mkdir -p .build/collections/ansible_collections/medimg
ln -sfn ../../../.. .build/collections/ansible_collections/medimg/dicom_tls

# Managed-node Pythons for tests/integration/test_pythons.py: one venv per pyenv interpreter present
# (3.9, 3.10, 3.12, 3.13), with requirements.txt. The 3.9 one gets cryptography at the floor, 36.0.1,
# as RHEL 9 (Python 3.9, python3-cryptography 36.0.1) has it. Missing interpreters are skipped here
# and reported as skipped by the test.
PYENV_ROOT=${PYENV_ROOT:-/root/.pyenv}
for minor in 3.9 3.10 3.12 3.13; do
  interp=""
  for candidate in "$PYENV_ROOT/versions/$minor".*/bin/python; do
    if [ -x "$candidate" ]; then interp=$candidate; fi
  done
  [ -n "$interp" ] || continue
  pvenv=.build/pythons/$minor
  pins=()
  if [ "$minor" = 3.9 ]; then pins=("cryptography==36.0.1"); fi
  if [ ! -f "$pvenv/.installed" ] || [ requirements.txt -nt "$pvenv/.installed" ]; then
    rm -rf "$pvenv"
    "$interp" -m venv "$pvenv"
    "$pvenv/bin/pip" install -q --disable-pip-version-check -r requirements.txt "${pins[@]}"
    touch "$pvenv/.installed"
  fi
done
