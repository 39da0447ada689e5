#!/usr/bin/env bash
# Builds the current wireguard-go from the Go module proxy into the cache the agent looks in
# first (src/datapath-driver/wireguard/backend.ts: findWireguardGo), like the control plane
# (hack/build-control-plane.sh). Debian's wireguard-go (0.0.20220316) stays the fallback: it
# predates UDP GSO/GRO and batched crypto. Once built, a run is a no-op (the binary is cached).
#   WIREGUARD_GO_MODULE_VERSION  the module version (default: what @latest resolved to, below;
#                                backend.ts's WIREGUARD_GO_MODULE_VERSION and the Dockerfile's
#                                ARG of that name must name the same: the tests check both)
#   OUT                          where to put wireguard-go (default: the cache directory)
set -euo pipefail
VERSION="${WIREGUARD_GO_MODULE_VERSION:-v0.0.0-20260522210424-ecfc5a8d5446}"
OUT="${OUT:-${XDG_CACHE_HOME:-$HOME/.cache}/netloom/wireguard-go/$VERSION}"

say() { printf '[wireguard-go] %s\n' "$*" >&2; }

if [ -x "$OUT/wireguard-go" ]; then exit 0; fi
if ! command -v go >/dev/null 2>&1; then
  say "go not found: not building golang.zx2c4.com/wireguard@$VERSION; the agent runs Debian's wireguard-go"
  exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
say "building golang.zx2c4.com/wireguard@$VERSION into $OUT (once; cached afterwards)"
# The module's root package is the daemon; go install names it after the module ("wireguard").
GOBIN="$work/bin" CGO_ENABLED=0 GOFLAGS=-mod=mod go install -trimpath "golang.zx2c4.com/wireguard@$VERSION"
mkdir -p "$OUT"
mv "$work/bin/wireguard" "$OUT/wireguard-go.tmp"
mv "$OUT/wireguard-go.tmp" "$OUT/wireguard-go"
say "built: $("$OUT/wireguard-go" --version | head -1) ($SECONDS s)"
