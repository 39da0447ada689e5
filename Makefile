# Netloom. Every target installs what it needs on a fresh machine (npm ci; apt-get as root).
SHELL := /bin/bash
NETLOOM := node bin/netloom.js
export PATH := $(CURDIR)/node_modules/.bin:$(PATH)

.PHONY: all deps build crds lint format test test-unit test-integration control-plane \
        cluster-up cluster-down demo demo-down bench clean

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
	biome ci .

format: deps
	biome check --write .

## control-plane: find or build kube-apiserver + kubectl (cached in ~/.cache/netloom)
control-plane: build
	$(NETLOOM) cluster binaries

## test: lint, type-check, unit tests, integration tests on a real kube-apiserver
test: lint build control-plane
	node --test --test-concurrency=1 dist/

test-unit: build
	node --test dist/src/

test-integration: build control-plane
	node --test --test-concurrency=1 dist/test/

cluster-up: build
	$(NETLOOM) cluster up

cluster-down: build
	$(NETLOOM) cluster down

demo: build
	$(NETLOOM) demo up

demo-down: build
	$(NETLOOM) demo down

bench: build control-plane
	node dist/bench/run.js

clean:
	rm -rf dist
