#!/usr/bin/env bash
# Set-up of the benchmark (not of netlab): the peers it compares against.
#  - mininet (Debian 2.3.0), run as `mn --switch lxbr --controller none`, so no Open vSwitch is
#    needed (--no-install-recommends keeps openvswitch-switch out);
#  - bridge-utils: Mininet's LinuxBridge switch drives `brctl`;
#  - iproute2 for the `ip -batch` floor (already on a Debian machine).
# Installs only what is missing. Never fails: if Mininet cannot be installed, it says why and the
# bench skips the Mininet column (exit status stays 0; run.ts checks for `mn` itself).
#
# Note: Mininet's own cleanup (`mn -c`) deletes every link named `*-ethN` and every bridge it
# thinks it made. netlab's names (`nl...`, no '-') cannot match, but never run `mn -c` on a
# machine where someone else's Mininet (or other `*-ethN` links) may be up. The bench only
# runs `mn -c` if a Mininet run of its own failed half-way.
set -u

log() { echo "bench/setup.sh: $*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  log "not root: cannot install packages; the bench needs root anyway"
  exit 0
fi

wanted=(mininet bridge-utils iproute2)
missing=()
for p in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
  log "already installed: ${wanted[*]}"
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
log "apt-get update"
if ! apt-get update -qq >/tmp/netlab-bench-apt.log 2>&1; then
  log "apt-get update failed (see /tmp/netlab-bench-apt.log); continuing with the package lists there are"
fi

installable=()
for p in "${missing[@]}"; do
  cand=$(apt-cache policy "$p" 2>/dev/null | awk '/Candidate:/ {print $2}')
  if [ -z "$cand" ] || [ "$cand" = "(none)" ]; then
    log "$p: no installation candidate (apt-cache policy $p); skipped"
  else
    installable+=("$p")
  fi
done
if [ "${#installable[@]}" -gt 0 ]; then
  log "installing ${installable[*]}"
  if ! apt-get install -y -qq --no-install-recommends "${installable[@]}" >>/tmp/netlab-bench-apt.log 2>&1; then
    log "apt-get install ${installable[*]} failed (see /tmp/netlab-bench-apt.log)"
  fi
fi
command -v mn >/dev/null 2>&1 || log "mn not available: the bench will skip the Mininet column"
exit 0
