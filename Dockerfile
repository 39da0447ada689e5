# syntax=docker/dockerfile:1
# Netloom: one image for the operator and the node agent (docs/image.md).
#   docker build -t netloom:dev .
# The operator runs as the image's default user 65532 (non-root); the agent's DaemonSet runs it
# as root with only CAP_BPF and CAP_NET_ADMIN (config/agent/daemonset.yaml).

ARG NODE_IMAGE=node:24-slim
ARG GO_IMAGE=golang:1.26
# The wireguard-go the agent prefers: hack/build-wireguard-go.sh's default version, which is
# src/datapath-driver/wireguard/backend.ts's WIREGUARD_GO_MODULE_VERSION (the tests hold all
# three equal). Debian's 0.0.20220316 predates UDP GSO/GRO and batched crypto.
ARG WIREGUARD_GO_MODULE_VERSION=v0.0.0-20260522210424-ecfc5a8d5446

# ---- wireguard-go: golang.zx2c4.com/wireguard from the Go module proxy ------------------------
# The same build as hack/build-wireguard-go.sh: static, so it runs on the slim runtime image.
FROM ${GO_IMAGE} AS wireguard-go
ARG WIREGUARD_GO_MODULE_VERSION
# The module's root package is the daemon; go install names it after the module ("wireguard").
RUN GOBIN=/out CGO_ENABLED=0 GOFLAGS=-mod=mod \
      go install -trimpath "golang.zx2c4.com/wireguard@${WIREGUARD_GO_MODULE_VERSION}" \
 && mv /out/wireguard /out/wireguard-go \
 && /out/wireguard-go --version

# ---- build: TypeScript -> dist/src, bpf/netloom.bpf.c -> dist/bpf/netloom.bpf.o ------------
FROM ${NODE_IMAGE} AS build
ARG TARGETARCH
RUN apt-get update \
 && apt-get install -y --no-install-recommends clang llvm libbpf-dev bpftool make ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY tsconfig.json ./
COPY bin ./bin
COPY src ./src
RUN npx tsc -p tsconfig.json
COPY bpf ./bpf
# The same compile as `make bpf`. The object is CO-RE: libbpf relocates it against each node's
# kernel BTF at load time. vmlinux.h comes from the build host's BTF (BuildKit exposes /sys
# read-only), or from bpf/vmlinux.h when the build host has no BTF.
RUN set -eu; \
    case "${TARGETARCH:-amd64}" in \
      amd64) arch=x86 ;; \
      arm64) arch=arm64 ;; \
      *) echo "unsupported TARGETARCH ${TARGETARCH}" >&2; exit 1 ;; \
    esac; \
    mkdir -p dist/bpf; \
    if [ -f bpf/vmlinux.h ]; then cp bpf/vmlinux.h dist/bpf/vmlinux.h; \
    elif [ -r /sys/kernel/btf/vmlinux ]; then \
      bpftool btf dump file /sys/kernel/btf/vmlinux format c > dist/bpf/vmlinux.h; \
    else echo "no kernel BTF on the build host and no bpf/vmlinux.h" >&2; exit 1; fi; \
    for c in bpf/*.bpf.c; do \
      clang -O2 -g -Wall -target bpf -D__TARGET_ARCH_${arch} -Idist/bpf \
        -c "$c" -o "dist/bpf/$(basename "${c%.c}").o"; \
    done; \
    rm dist/bpf/vmlinux.h
RUN npm prune --omit=dev --no-audit --no-fund --loglevel=error

# ---- runtime ----------------------------------------------------------------------------------
FROM ${NODE_IMAGE}
# libbpf1 for the FFI datapath driver; iproute2 (tc, ip) and wireguard-tools (wg) for the driver
# and for debugging on the node.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libbpf1 iproute2 wireguard-tools ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# wireguard-go where the kernel has no WireGuard module: the agent runs the first on PATH
# (src/datapath-driver/wireguard/backend.ts: findWireguardGo).
COPY --from=wireguard-go /out/wireguard-go /usr/local/bin/wireguard-go
WORKDIR /app
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist/src ./dist/src
COPY --from=build /src/dist/bpf ./dist/bpf
COPY --from=build /src/bin ./bin
RUN chmod 0755 /app/bin/netloom.js \
 && ln -s /app/bin/netloom.js /usr/local/bin/netloom
ENV NODE_ENV=production
USER 65532:65532
ENTRYPOINT ["netloom"]
CMD ["--help"]
