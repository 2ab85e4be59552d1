# Chard: the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
PLUGIN_DIR := target/plugins
HOST := target/release/host
RUST_PLUGINS := math faults
GUEST_PLUGINS := $(notdir $(wildcard plugins/pymath plugins/jsmath plugins/cmath))
VENV := .venv
PYTHON := $(VENV)/bin/python

.PHONY: deps all build install plugins rust-plugins guest-plugins toolchains demo test test-sdk bench bench-celery bench-peers venv clean

all: build plugins

## System packages and the Rust wasm target (idempotent).
deps:
	@tools/install-system-deps.sh

## Release build of the `host` binary.
build: deps
	$(CARGO) build --release -p chard-host

## Put `host` on PATH: $(PREFIX)/bin/host (default ~/.local/bin;
## `sudo make install PREFIX=/usr/local` for every user).
PREFIX ?= $(HOME)/.local
install: build
	install -D -m 755 $(HOST) $(DESTDIR)$(PREFIX)/bin/host
	@echo "installed $(DESTDIR)$(PREFIX)/bin/host"
	@case ":$$PATH:" in *":$(PREFIX)/bin:"*) ;; \
		*) echo "note: $(PREFIX)/bin is not on your PATH; add it: export PATH=\"$(PREFIX)/bin:\$$PATH\"" ;; esac
	@found=$$(command -v host || true); if [ -n "$$found" ] && [ "$$found" != "$(PREFIX)/bin/host" ]; then \
		echo "note: \`host\` on your PATH is $$found (Debian's DNS lookup tool has the same name); put $(PREFIX)/bin first in PATH or run $(PREFIX)/bin/host"; fi

## Every example plugin, into target/plugins/<name>.wasm.
plugins: rust-plugins guest-plugins

rust-plugins: deps
	@# The hot-reload tests' second version of `math` (built first: same output file).
	$(CARGO) build --target wasm32-wasip2 --profile plugin -p math --features plus1000
	@mkdir -p target/test-plugins && cp target/wasm32-wasip2/plugin/math.wasm target/test-plugins/math_plus1000.wasm
	$(CARGO) build --target wasm32-wasip2 --profile plugin $(addprefix -p ,$(RUST_PLUGINS))
	@mkdir -p $(PLUGIN_DIR)
	@for p in $(RUST_PLUGINS); do cp target/wasm32-wasip2/plugin/$$p.wasm $(PLUGIN_DIR)/$$p.wasm; done

guest-plugins: toolchains
	@mkdir -p $(PLUGIN_DIR)
	@for p in $(GUEST_PLUGINS); do echo "building $$p"; plugins/$$p/build.sh $(PLUGIN_DIR) || exit 1; done

## Toolchains for Python, JavaScript and C plugins (from PyPI, npm, Debian).
toolchains:
	@tools/install-guest-toolchains.sh

## Python venv with Celery, for the interoperability tests and benchmarks.
venv: $(PYTHON)
$(PYTHON): tests/python/requirements.txt
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
	@touch $(PYTHON)

## Build everything, start a worker on a private Redis, run a job through it.
demo: build plugins venv
	PYTHON=$(abspath $(PYTHON)) tests/demo.sh

## The whole test suite.
test: build plugins venv test-sdk
	CHARD_PYTHON=$(abspath $(PYTHON)) $(CARGO) test --release -p chard-host -- --test-threads=2

test-sdk:
	$(CARGO) test --release -p chard-sdk
	@if [ -d .venv-guest ]; then python3 -m unittest discover -s sdk/python/tests; fi
	@if [ -d sdk/js/node_modules ]; then node --test sdk/js/test/; fi

## Per-job cost of the sandbox, per plugin language: CPU time and page faults
## per job, and how throughput scales from one thread to every core.
bench: build plugins
	$(CARGO) bench -p chard-host --bench jobs

## The same 20,000-job drain for Chard, BullMQ and Celery next to the Redis
## floor (bench/redis_floor.lua); prints rates and ratios.
bench-peers: build plugins venv bench/peers/node_modules
	$(PYTHON) bench/peers.py

bench/peers/node_modules: bench/peers/package.json bench/peers/package-lock.json
	cd bench/peers && npm ci --no-audit --no-fund
	@touch $@

## Same queue drained by a stock Celery worker and by host run; prints both rates and the ratio.
bench-celery: build plugins venv
	$(PYTHON) bench/celery_vs_chard.py

clean:
	$(CARGO) clean
