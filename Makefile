# Chard: the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
PLUGIN_DIR := target/plugins
HOST := target/release/host
RUST_PLUGINS := math faults io canvas
GUEST_PLUGINS := $(notdir $(wildcard plugins/pymath plugins/jsmath plugins/cmath plugins/pyio plugins/jsio plugins/cio))
# Built with wasi:http, which workers do not provide yet: not part of `plugins`.
HTTP_PLUGINS := pyhttp jshttp chttp
VENV := .venv
PYTHON := $(VENV)/bin/python

.PHONY: deps all build install plugins rust-plugins guest-plugins toolchains demo test test-sdk fuzz fuzz-canvas bench bench-eta bench-eta-timing bench-celery bench-metrics bench-peers bench-cost bench-latency bench-startup venv clean

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

## The outbound-HTTP examples (tests/e2e/guest_http.rs), for a worker with wasi:http.
http-plugins: toolchains
	@mkdir -p $(PLUGIN_DIR)
	@for p in $(HTTP_PLUGINS); do echo "building $$p"; plugins/$$p/build.sh $(PLUGIN_DIR) || exit 1; done

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

## A longer run of the generated-message test (make test runs 10,000):
## FUZZ_COUNT=1000000 FUZZ_SEED=7 make fuzz
FUZZ_COUNT ?= 200000
FUZZ_SEED ?= $(shell date +%s)
fuzz: build plugins venv
	CHARD_FUZZ_COUNT=$(FUZZ_COUNT) CHARD_FUZZ_SEED=$(FUZZ_SEED) CHARD_PYTHON=$(abspath $(PYTHON)) \
		$(CARGO) test --release -p chard-host --test e2e fuzz:: -- --nocapture

test-sdk:
	$(CARGO) test --release -p chard-sdk
	@if [ -d .venv-guest ]; then python3 -m unittest discover -s sdk/python/tests; fi
	@if [ -d sdk/js/node_modules ]; then node --test sdk/js/test/; fi
	sdk/c/test/run.sh

## Random canvases on a Python and a Chard worker, compared task by task
## (CHARD_CANVAS_SEED, CHARD_CANVAS_COUNT; `make test` runs 200).
fuzz-canvas: build plugins venv
	CHARD_PYTHON=$(abspath $(PYTHON)) CHARD_CANVAS_SEED=$${CHARD_CANVAS_SEED:-$$RANDOM} CHARD_CANVAS_COUNT=$${CHARD_CANVAS_COUNT:-2000} \
		$(CARGO) test --release -p chard-host --test e2e -- canvas::random --nocapture

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

## CPU per job of a 50,000-job drain, independent of the machine's load:
## worker utime+stime, Redis INFO commandstats and CPU, callgrind instructions.
bench-cost: build plugins venv
	$(PYTHON) bench/drain_cost.py --messages 50000 --rounds 3 --callgrind 2000

## Submit -> result latency, one job at a time on an idle worker (p50/p99),
## next to a Redis-only floor. On a shared machine, run it under `nice -n -15`.
bench-latency: build plugins venv
	$(PYTHON) bench/latency.py --samples 2000

## Exec -> "worker ready" with the four example plugins, warm compile cache.
bench-startup: build plugins venv
	$(PYTHON) bench/startup.py --runs 7

## Same queue drained by a stock Celery worker and by host run; prints both rates and the ratio.
## Worker memory with 1,000,000 jobs an hour ahead (ETA_JOBS=100000 for a quicker run).
ETA_JOBS ?= 1000000
bench-eta: build plugins venv
	$(PYTHON) bench/eta_memory.py $(ETA_JOBS)

## Far-ETA jobs run once and on time: 100,000 due 40 to 160 s ahead on two
## workers; prints results, duplicate runs and lateness percentiles.
bench-eta-timing: build plugins venv
	$(PYTHON) bench/eta_memory.py --timing $${ETA_TIMING_JOBS:-100000} $${ETA_TIMING_SPREAD:-120}

bench-celery: build plugins venv
	$(PYTHON) bench/celery_vs_chard.py

## What `--metrics` costs: CPU and instructions per job (valgrind) with
## and without it, then alternating drains.
bench-metrics: build plugins venv
	$(PYTHON) bench/drain_cost.py --messages 50000 --rounds 3 --callgrind 1000
	$(PYTHON) bench/drain_cost.py --messages 50000 --rounds 3 --callgrind 1000 --chard-args "--metrics 127.0.0.1:0"
	$(PYTHON) bench/celery_vs_chard.py --chard-only --messages 50000 --rounds 5 --versus "--metrics 127.0.0.1:0"

clean:
	$(CARGO) clean
