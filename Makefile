# The README's words: make demo, make test, make bench, make lint, make protos.
# demo and test bootstrap a fresh machine themselves (system packages, .venv).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROTOS := $(wildcard protos/*.proto)

.PHONY: help demo demo-reset test test-faults test-browser test-cluster test-e2e bench bench-short lint lock protos system clean deploy-check sizing

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' Makefile | sed -E 's/:.*## /\t/' | expand -t 14

system: ## install FFmpeg, redis-server, nginx (+njs), wrk, promtool... if missing (apt-get)
	@scripts/system-deps.sh

# The venv holds exactly requirements.lock's releases (pyproject.toml only bounds them; make
# lock re-resolves); the project goes in on top without resolving anything, then pip check.
$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "error: Python >= 3.11 is required (found $$($(PYTHON) --version))" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	$(BIN)/pip check
	@touch $@

lock: ## re-resolve requirements.lock: the newest releases pyproject.toml's ranges allow
	scripts/lock.sh $(PYTHON)

demo: system $(STAMP) ## run the whole platform locally and walk a set-top box's journey
	$(BIN)/headend demo

demo-reset: system $(STAMP) ## delete the demo's state (var/: its Redis data, keys, media, logs), then run it from empty
	$(BIN)/headend demo --reset

# Three workers on two cores: most of the suite waits on real time (live channels,
# players, timeouts), not on the CPU (measured: one core busy on average with two).
test: system $(STAMP) ## run the test suite (real Redis, FFmpeg, nginx, gRPC, HTTP)
	$(BIN)/pytest -q -n 3 --dist loadgroup

# Not in make test (pyproject.toml's norecursedirs): real outages last real seconds.
test-faults: system $(STAMP) ## inject faults (Redis killed and restarted, full disks, killed children, Sentinel failover)
	$(BIN)/pytest -q -n 2 --dist loadgroup tests/faults tests/ha

# Not in make test (pyproject.toml's norecursedirs): a real browser per module is slow.
test-browser: $(STAMP) ## play channels and assets with hls.js and dash.js in headless Chromium
	@scripts/system-deps.sh --browser
	@[ -e node_modules/hls.js/dist/hls.min.js ] && [ -e node_modules/dashjs/dist/modern/umd/dash.all.min.js ] || \
	  npm ci --no-audit --no-fund --ignore-scripts --silent
	$(BIN)/pytest -q tests/browser

# The store-level suites, which run unchanged on a three-master Redis Cluster.
CLUSTER_SUITES := tests/epg tests/cdn_ctl/test_store.py tests/cdn_ctl/test_frontdoor_guard.py \
	tests/subscriber tests/security/test_subscriber.py tests/headend/test_ratelimit.py \
	tests/headend/test_rpc.py tests/transcode/test_archive.py tests/transcode/test_queue.py \
	tests/transcode/test_farm_store.py tests/transcode/test_live_parts.py \
	tests/contentkeys/test_store.py

test-cluster: system $(STAMP) ## run the store suites against a real 3-master Redis Cluster
	TEST_REDIS=cluster $(BIN)/pytest -q -n 2 --dist loadgroup $(CLUSTER_SUITES)

bench: system $(STAMP) ## run the full benchmarks (full-size media; minutes)
	$(BIN)/pytest bench -q --benchmark-columns=median,ops,rounds -p no:randomly

bench-short: system $(STAMP) ## run the benchmarks in their short CI mode with guard ratios
	BENCH_SHORT=1 $(BIN)/pytest bench -q --benchmark-columns=median,ops,rounds

sizing: system $(STAMP) ## measure Redis bytes per subscriber, programme, segment; size a province
	$(BIN)/python scripts/sizing.py

lint: system $(STAMP) ## ruff, mypy, and buf lint + buf breaking on the protos
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	scripts/buf.sh

deploy-check: system $(STAMP) ## check deploy/ offline: systemd units, k8s manifests, Prometheus rules and their tests (promtool), dashboards
	scripts/check-deploy.sh

protos: $(STAMP) ## regenerate protos/*_pb2*.py from protos/*.proto
	$(BIN)/python -m protos.build

clean: ## remove the venv and local state
	rm -rf $(VENV) var
