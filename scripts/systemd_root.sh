#!/usr/bin/env bash
# The Debian root that tests/integration/test_systemd.py boots with systemd-nspawn: systemd as PID 1
# of a container, because the test machine's own PID 1 need not be systemd. Built once with
# debootstrap from the Debian mirror apt uses, cached in .build/systemd-root, rebuilt only when the
# suite or the package list below changes. The root stays read-only: the test boots it with
# --volatile=overlay, so every boot starts from the same state.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=.build/systemd-root
SUITE=${DICOM_TLS_SYSTEMD_SUITE:-bookworm}
PACKAGES=systemd,systemd-sysv,dbus,dcmtk,openssl
# installed by apt inside the root after debootstrap: orthanc depends on a virtual package
# (libboost-regex1.74.0-icu72) that debootstrap does not resolve
APT_PACKAGES=orthanc
mirror=${DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
  # the first Debian (not security) mirror of apt's sources, deb822 or one-line style
  mirror=$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
    | sed -n -E 's#^(URIs:[[:space:]]*|deb[[:space:]]+)(https?://[^[:space:]]+/debian)/?([[:space:]].*)?$#\2#p' \
    | head -n 1 || true)
fi
mirror=${mirror:-http://deb.debian.org/debian}
stamp="$SUITE $PACKAGES $APT_PACKAGES"
if [ -f "$ROOT/.dicom-tls-root" ] && [ "$(cat "$ROOT/.dicom-tls-root")" = "$stamp" ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v debootstrap >/dev/null; then
  echo "systemd_root: building $ROOT needs root and debootstrap (scripts/bootstrap.sh installs it)" >&2
  exit 1
fi
mkdir -p .build
tmp=$(mktemp -d .build/systemd-root.new.XXXXXX)
trap 'rm -rf --one-file-system "$tmp"' EXIT
echo "systemd_root: debootstrap $SUITE ($PACKAGES) from $mirror into $ROOT"
start=$(date +%s)
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$tmp" "$mirror" > "$tmp.log" 2>&1 || {
  tail -n 20 "$tmp.log" >&2
  exit 1
}
cp /etc/resolv.conf "$tmp/etc/resolv.conf"
{ chroot "$tmp" apt-get -q update && chroot "$tmp" env DEBIAN_FRONTEND=noninteractive \
    apt-get -q install -y --no-install-recommends $APT_PACKAGES; } > "$tmp.log" 2>&1 || {
  tail -n 20 "$tmp.log" >&2
  exit 1
}
# Debian's own orthanc.service would start at boot on the stock ports; the tests run their own units
chroot "$tmp" systemctl disable orthanc.service >> "$tmp.log" 2>&1
chroot "$tmp" apt-get -q clean
rm -f "$tmp.log" "$tmp/etc/resolv.conf"
echo "$stamp" > "$tmp/.dicom-tls-root"
rm -rf --one-file-system "$ROOT"
mv "$tmp" "$ROOT"
trap - EXIT
echo "systemd_root: built in $(($(date +%s) - start)) s"
