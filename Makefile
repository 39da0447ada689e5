# Netloom. Every target installs what it needs on a fresh machine (npm ci; apt-get as root).
SHELL := /bin/bash
NETLOOM := node bin/netloom.js
export PATH := $(CURDIR)/node_modules/.bin:$(PATH)

.PHONY: all deps build crds lint format test test-unit test-integration control-plane \
        cluster-up cluster-down demo demo-down demo-mesh demo-mesh-down bench clean bpf-if-possible

all: build

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

deps: node_modules/.package-lock.json
	@bash hack/install-deps.sh

build: deps
	tsc -p tsconfig.json

## crds: regenerate crds/ from the zod schemas in src/api
crds: build
	$(NETLOOM) crds crds

lint: deps
	biome ci --colors=off .

format: deps
	biome check --write .

## control-plane: find or build kube-apiserver + kubectl (cached in ~/.cache/netloom)
control-plane: build
	$(NETLOOM) cluster binaries

## test: lint, type-check, unit tests, integration tests on a real kube-apiserver
# Node 20's runner takes no globs; list the test files (dist/test also holds support modules).
# Beside spec, test/support/skip-report lists every skipped suite and test with its reason, and
# fails the run where skipping is not allowed (CI=true or NETLOOM_REQUIRE_REAL=1).
TESTS = $$(find dist -name '*.test.js' | sort)
NODE_TEST = node --test --test-concurrency=1 --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=./dist/test/support/skip-report.js --test-reporter-destination=stdout

test: lint build control-plane bpf-if-possible
	$(NODE_TEST) $(TESTS)

test-unit: build
	$(NODE_TEST) $$(find dist/src -name '*.test.js' | sort)

test-integration: build control-plane bpf-if-possible
	$(NODE_TEST) $$(find dist/test -name '*.test.js' | sort)

## bpf-if-possible: the eBPF object where this machine can build it; else say why (e2e skips)
bpf-if-possible: deps
	@if command -v clang >/dev/null && command -v bpftool >/dev/null && [ -r /sys/kernel/btf/vmlinux ]; then \
	  $(MAKE) --no-print-directory bpf; \
	else echo "[bpf] not building the eBPF object: needs clang, bpftool and /sys/kernel/btf/vmlinux (real-kernel tests will skip)"; fi

cluster-up: build
	$(NETLOOM) cluster up

cluster-down: build
	$(NETLOOM) cluster down

demo: build bpf-if-possible
	$(NETLOOM) demo up

demo-down: build
	$(NETLOOM) demo down

## demo-mesh: two clusters-in-a-box peered by ClusterMeshPeers (cluster mesh), measured
demo-mesh: build bpf-if-possible
	$(NETLOOM) demo mesh

demo-mesh-down: build
	$(NETLOOM) demo mesh down

## bench: figures against floors and baselines measured in the same run, written into
## docs/benchmarks.md. The datapath half (bench/datapath.ts, as root: ~10 min here; lookup cost,
## rate accuracy, WireGuard and rotation loss, drift healing, agent footprint; BENCH_QUICK=1 for
## a short run that leaves the document alone), then the control-plane half
## (BENCH_CP_NODES=1000 by default, "100,1000" adds the small size; it prints each phase's wall
## time. Its 1,000 simulated agents now outgrow this machine: it stops itself, see the docs)
bench: build bpf-if-possible control-plane
	node dist/bench/run.js
	node --expose-gc dist/bench/agent-render.js
	node dist/bench/datapath.js
	node dist/bench/control-plane.js

clean:
	rm -rf dist

## bpf: compile bpf/netloom.bpf.c against this kernel's BTF (needs clang + bpftool; not part of build)
BPF_CLANG ?= clang
BPFTOOL ?= bpftool
.PHONY: bpf
bpf: deps dist/bpf/netloom.bpf.o

dist/bpf/vmlinux.h: /sys/kernel/btf/vmlinux
	@mkdir -p dist/bpf
	$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > $@.tmp && mv $@.tmp $@

dist/bpf/netloom.bpf.o: bpf/netloom.bpf.c dist/bpf/vmlinux.h
	$(BPF_CLANG) -O2 -g -Wall -target bpf -D__TARGET_ARCH_x86 -Idist/bpf -c $< -o $@

## gitops-tools: what the GitOps tests use, ahead of time: promtool (make deps) and the Go tools
## built from the module proxy (lua-health = gopher-lua, kstatus)
.PHONY: gitops-tools
gitops-tools: build
	node --input-type=module -e 'for (const [m, f] of [["lua-health", "luaHealthBinary"], ["kstatus", "kstatusBinary"]]) console.log(await (await import(`./dist/test/support/$${m}.js`))[f]())'
