#!/usr/bin/env bash
# Builds kube-apiserver (and kubectl) of Kubernetes $K8S_VERSION from the k8s.io/kubernetes Go
# module through the Go module proxy, into $OUT. k8s.io/kubernetes is not meant to be consumed
# as a module: its go.mod pins every staging module at v0.0.0 and replaces it with ./staging.
# A consumer module must replace each one with v0.X.Y itself (kubernetes/kubernetes#79384).
set -euo pipefail
K8S_VERSION="${K8S_VERSION:?K8S_VERSION, e.g. 1.37.2}"
OUT="${OUT:?OUT directory}"
STAGING_VERSION="v0.${K8S_VERSION#*.}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"

step() { printf '[build-control-plane] %s (+%ss)\n' "$*" "$SECONDS" >&2; }

step "fetching k8s.io/kubernetes@v$K8S_VERSION go.mod"
gomod="$(go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
[ -f "$gomod" ] || { echo "cannot read go.mod of k8s.io/kubernetes@v$K8S_VERSION" >&2; exit 1; }
staging="$(sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$gomod")"
[ -n "$staging" ] || { echo "no staging replaces found in $gomod" >&2; exit 1; }
goversion="$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$gomod")"

{
  echo "module netloom.local/control-plane-build"
  echo
  echo "go $goversion"
  echo
  echo "require k8s.io/kubernetes v$K8S_VERSION"
  echo
  echo "replace ("
  for m in $staging; do echo "	$m => $m $STAGING_VERSION"; done
  echo ")"
} > go.mod

step "resolving dependencies ($(echo "$staging" | wc -w) staging modules at $STAGING_VERSION)"
GOFLAGS=-mod=mod go mod download k8s.io/kubernetes
mkdir -p "$OUT"
for cmd in kube-apiserver kubectl; do
  step "compiling $cmd (a cold build takes several minutes on 2 cores)"
  GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "-s -w \
    -X k8s.io/component-base/version.gitVersion=v$K8S_VERSION \
    -X k8s.io/component-base/version.gitMajor=1 \
    -X k8s.io/component-base/version.gitMinor=$(echo "$K8S_VERSION" | cut -d. -f2) \
    -X k8s.io/client-go/pkg/version.gitVersion=v$K8S_VERSION" \
    -o "$OUT/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd"
  mv "$OUT/$cmd.tmp" "$OUT/$cmd"
done
step "done: $(ls "$OUT" | tr '\n' ' ')"
