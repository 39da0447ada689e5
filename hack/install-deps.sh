#!/usr/bin/env bash
# System packages Netloom's tests, demo and benchmarks use, from Debian (run as root; CI is).
# Without root it only reports what is missing.
set -euo pipefail
packages=(etcd-server openssl clang llvm libbpf-dev libbpf1 bpftool iproute2 iperf3 tcpdump iputils-ping)
need=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if ! command -v go >/dev/null 2>&1; then
  # Debian's golang-go is too old for Kubernetes 1.37; Go >= 1.21 fetches the toolchain
  # go.mod asks for through the module proxy (GOTOOLCHAIN=auto).
  echo "[deps] Go is needed once, to build kube-apiserver: install Go >= 1.21 or set KUBEBUILDER_ASSETS" >&2
fi
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "[deps] missing Debian packages: ${need[*]} (run as root, or: sudo apt-get install ${need[*]})" >&2
  exit 0
fi
echo "[deps] installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
