# fhirsched: the commands a newcomer needs. Everything real lives in scripts/.
#   make demo   build, start PostgreSQL + the server on :8080, load demo data
#   make test   ASan build, unit tests, integration/conformance suites
.DEFAULT_GOAL := build

JOBS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: deps build build-asan demo demo-reset test docs clean bench bench-subscriptions

deps:
	scripts/deps.sh

build:
	cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build build --parallel $(JOBS)

build-asan:
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DFHIRSCHED_ASAN=ON
	cmake --build build-asan --parallel $(JOBS)

# Plain prerequisites would run in parallel under make -j; the order matters.
demo:
	$(MAKE) --no-print-directory deps
	$(MAKE) --no-print-directory build
	scripts/demo.sh

demo-reset:
	scripts/pg.sh stop var/demo/pg
	rm -rf var/demo

test:
	$(MAKE) --no-print-directory deps
	scripts/test.sh

# Benchmarks (tests/bench/bench.mjs, docs/performance.md "Running it"): the release build against a private PostgreSQL,
# the issue 8 scenarios (wrk at 32 connections, HL7 over MLLP, subscription delivery), memory, and the scaling run up to
# 1M Slots; ratios to pgbench and /healthz; results in tests/bench/results/. BENCH_ONLY, BENCH_SCALING=0, ... narrow it.
bench:
	$(MAKE) --no-print-directory deps
	$(MAKE) --no-print-directory build
	cd tests && npm ci --silent && FHIRSCHED_BIN=../build/fhirsched node bench/bench.mjs

# Subscription delivery latency with 1,000 active Subscriptions alone (tests/bench/subscriptions.mjs; also a make bench
# scenario), on a server of its own: quicker than BENCH_ONLY=Subscription make bench when iterating on delivery.
bench-subscriptions:
	$(MAKE) --no-print-directory deps
	$(MAKE) --no-print-directory build
	cd tests && npm ci --silent && FHIRSCHED_BIN=../build/fhirsched node bench/subscriptions.mjs

# Generated documentation (a unit test fails when it is out of date).
docs: build
	build/fhirsched search-params > docs/search.md

# Test clusters live in var/test/run.*/pg (scripts/test.sh); stop any left over.
clean:
	for d in var/test/run.*/pg; do [ ! -d "$$d" ] || scripts/pg.sh stop "$$d"; done
	rm -rf build build-asan var/test
