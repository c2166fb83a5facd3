#!/usr/bin/env bash
# netlab set-up for a Debian 12 machine with Node 20, as root: installs the Debian packages that
# labs and tests use (only the missing ones), the npm dependencies, and builds the TypeScript.
# Safe to run again: it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")"

# Debian packages: busybox (the default image), ping for checks, nft for lab firewalls, a C
# compiler for runtime/shim.c (the small helper that starts containers), and Chromium for the
# web view's browser tests and render benchmark (driven by playwright-core, which downloads nothing).
# The image tests' peers: a real OCI registry (docker-registry) and the tools that build and copy
# images (umoci, skopeo), zstd for a compressed test layer; netlab itself never runs them, it
# speaks the registry API on its own. mmdebstrap builds the images a topology declares from
# Debian packages (`images:`).
# test/vm/ boots Debian's own kernel (linux-image-amd64: it has sch_netem, which some kernels,
# this project's CI machine's among them, lack) in QEMU. The machine keeps booting its own kernel:
# the package only puts one under /boot and its modules under /usr/lib/modules (no boot loader is
# installed, so nothing runs update-grub). xz unpacks that kernel for a faster boot.
packages=(iproute2 iputils-ping busybox-static nftables util-linux procps curl gcc libc6-dev chromium docker-registry skopeo umoci zstd mmdebstrap qemu-system-x86 linux-image-amd64 xz-utils)
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
missing=()
for p in "${packages[@]}"; do
  installed "$p" || missing+=("$p")
done
# The kernel package needs an initramfs generator. apt's first choice, initramfs-tools, brings udev
# and with it a new systemd; tiny-initramfs needs neither (test/vm/ builds its own initramfs).
if [[ " ${missing[*]} " == *" linux-image-amd64 "* ]] && ! installed initramfs-tools && ! installed dracut && ! installed tiny-initramfs; then
  missing+=(tiny-initramfs)
fi
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup.sh: missing Debian packages (${missing[*]}); run as root to install them" >&2
    exit 1
  fi
  echo "setup.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # docker-registry's package starts (and enables) a registry on every interface: the tests
  # run their own on loopback, so no service may start now or at the next boot.
  made_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\n# netlab setup.sh: no service starts while it installs packages\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    made_policy=1
  fi
  status=0
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || status=$?
  if [ -n "$made_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
  [ "$status" -eq 0 ] || exit "$status"
  if [[ " ${missing[*]} " == *" docker-registry "* ]] && command -v systemctl >/dev/null; then
    systemctl disable docker-registry >/dev/null 2>&1 || true
  fi
fi

# npm dependencies: reinstall only when the lock file changed since the last install.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
npm run --silent build
