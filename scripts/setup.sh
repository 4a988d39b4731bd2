#!/usr/bin/env bash
# Install what kubeboot needs on a Debian 12 or Ubuntu 24.04 machine, as root:
# the host packages the sandbox and the tests use, and a Python virtualenv in .venv with the pinned tools.
# Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  python3 python3-venv python3-pip git openssh-client iproute2 iptables util-linux
  systemd-container debootstrap debian-archive-keyring apt-cacher-ng busybox-static
  dpkg-dev apt-utils gpg containernetworking-plugins
  qemu-system-x86 qemu-utils libvirt-daemon-system libvirt-clients dnsmasq-base vagrant vagrant-libvirt
  fdisk e2fsprogs
)

if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/setup.sh: run as root (it installs packages and the sandbox needs root)" >&2
  exit 2
fi

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3}
stamp=.venv/.kubeboot-requirements
want=$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing Python packages into .venv"
  "$PYTHON" -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r requirements.txt
  .venv/bin/pip install -q --disable-pip-version-check --no-deps -e .
  echo "$want" > "$stamp"
fi
echo "setup: ready (.venv/bin/kubeboot, .venv/bin/ansible-playbook)"
