#!/usr/bin/env bash
# Tools the GitOps tests use that do not come from npm:
#   promtool  (Debian package `prometheus`) for `promtool check rules` / `promtool test rules`.
# The Go tools (test/tools/kstatus, test/tools/lua-health) are built on first use from the Go
# module proxy by test/support/*.ts; `make gitops-tools` builds them ahead of time.
#
# Run as root (CI is). Without root it only says what is missing. Installing the package must
# not start a Prometheus server: a temporary policy-rc.d refuses service starts during the install.
set -euo pipefail

if command -v promtool >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "[gitops-tools] promtool is missing (run as root, or: sudo apt-get install --no-install-recommends prometheus)" >&2
  exit 1
fi
echo "[gitops-tools] installing promtool (Debian package prometheus)" >&2
export DEBIAN_FRONTEND=noninteractive
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# added by netloom hack/install-gitops-tools.sh for the duration of an install\nexit 101\n' >"$policy"
  chmod 0755 "$policy"
  created_policy=1
fi
cleanup() { if [ "$created_policy" -eq 1 ]; then rm -f "$policy"; fi; }
trap cleanup EXIT
apt-get update -qq
apt-get install -y -qq --no-install-recommends prometheus >/dev/null
command -v promtool >/dev/null 2>&1 || { echo "[gitops-tools] prometheus installed but no promtool on PATH" >&2; exit 1; }
promtool --version 2>&1 | head -1 >&2
