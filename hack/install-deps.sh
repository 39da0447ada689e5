#!/usr/bin/env bash
# Installs the Debian packages of every system tool Netloom runs (hack/system-tools.tsv: the
# tests, the demo, the benchmarks, make bpf). Run as root (CI is); without root it only says
# what is missing and how to install it. Tools that do not come from Debian (Go, Node.js) are
# checked and named, not installed. Then builds the current wireguard-go with Go, once
# (hack/build-wireguard-go.sh; the agent prefers it to Debian's).
set -euo pipefail
cd "$(dirname "$0")/.."

present() { # a command on PATH, or a file
  case "$1" in
    /*) [ -e "$1" ] ;;
    *) command -v "$1" >/dev/null 2>&1 ;;
  esac
}

need=()
not_debian=()
while IFS=$'\t' read -r name pkg _; do
  case "$name" in '' | '#'*) continue ;; esac
  present "$name" && continue
  if [ "$pkg" = "-" ]; then
    not_debian+=("$name")
  elif [[ " ${need[*]} " != *" $pkg "* ]]; then
    need+=("$pkg")
  fi
done <hack/system-tools.tsv

for t in "${not_debian[@]}"; do
  grep -P "^\Q$t\E\t" hack/system-tools.tsv | cut -f3 | sed "s/^/[deps] missing $t: /" >&2
done
build_wireguard_go() {
  bash hack/build-wireguard-go.sh ||
    echo "[deps] building the current wireguard-go failed: the agent runs Debian's (see above)" >&2
}

if [ ${#need[@]} -eq 0 ]; then
  build_wireguard_go
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "[deps] missing Debian packages: ${need[*]} (run as root: make deps, or: sudo apt-get install --no-install-recommends ${need[*]})" >&2
  build_wireguard_go
  exit 0
fi
echo "[deps] installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Installing a package must not start its service (prometheus, etcd-server): a temporary
# policy-rc.d refuses service starts for the duration of the install.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# added by netloom hack/install-deps.sh for the duration of an install\nexit 101\n' >"$policy"
  chmod 0755 "$policy"
  trap 'rm -f "$policy"' EXIT
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
missing=()
while IFS=$'\t' read -r name pkg _; do
  case "$name" in '' | '#'*) continue ;; esac
  [ "$pkg" = "-" ] || present "$name" || missing+=("$name ($pkg)")
done <hack/system-tools.tsv
if [ ${#missing[@]} -gt 0 ]; then
  echo "[deps] installed, but still missing: ${missing[*]}" >&2
  exit 1
fi
build_wireguard_go
