# Every target installs what it needs on first use: a virtualenv built from pyproject.toml
# (pinned by constraints.txt), so a fresh clone needs only Python and pip.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Root installs Debian packages itself; anyone else through sudo.
SUDO   := $(if $(filter 0,$(shell id -u)),,sudo)

.DEFAULT_GOAL := help
# The coverage floor of `make test` on services/hiker (in-process code; services run as child
# processes are not counted), just below what the suite reaches today.
COVERAGE_FLOOR ?= 82
# `make image PYTHON_IMAGE=...` builds on another base (make test-containers uses a local one).
PYTHON_IMAGE ?=

.PHONY: help install run test test-fast test-unit test-integration test-containers test-ha fuzz check fmt bench soak image constraints clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $@

install: $(STAMP) ## create .venv and install hiker with its dev tools

run: $(STAMP) ## run ingress, conversation, sender (+ graph mock) against local RabbitMQ and Redis
	$(BIN)/hiker dev

test: $(STAMP) ## the whole suite: unit, integration (real RabbitMQ and Redis), deploy checks, coverage floor
	$(BIN)/pytest --cov --cov-report=term --cov-fail-under=$(COVERAGE_FLOOR)

test-fast: $(STAMP) ## the edit loop: unit + the integration tests that took under 3 s last time
	$(BIN)/pytest --fast -q tests/unit tests/integration

test-unit: $(STAMP) ## pure logic only, no services needed
	$(BIN)/pytest tests/unit

test-integration: $(STAMP) ## against real RabbitMQ and Redis
	$(BIN)/pytest -m integration tests

test-containers: $(STAMP) ## images, compose stack, integration on testcontainers (Docker; minutes)
	BIN=$(BIN) deploy/compose/standins/run-tests

test-ha: $(STAMP) ## Redis Cluster, Sentinel and RabbitMQ cluster failovers; the tests start those engines (minutes)
	$(BIN)/pytest tests/ha

# Everywhere else property tests replay a fixed seed and the examples pinned with @example
# (tests/conftest.py); here they explore. Pin what this finds with @example.
fuzz: $(STAMP) ## property tests with fresh random seeds and 25 times the examples (minutes)
	HIKER_HYPOTHESIS_PROFILE=fuzz $(BIN)/pytest -m fuzz -p no:cacheprovider -o timeout=3600 tests/integration

check: $(STAMP) ## lint, format and type checks; changes nothing
	$(BIN)/ruff check services tests benchmarks
	$(BIN)/ruff format --check services tests benchmarks
	$(BIN)/mypy

fmt: $(STAMP) ## fix what ruff can fix and format
	$(BIN)/ruff check --fix services tests benchmarks
	$(BIN)/ruff format services tests benchmarks

bench: $(STAMP) ## benchmarks, tables in bench-results/ (BENCH_ARGS=--quick for a short run)
	@command -v wrk >/dev/null || { echo "installing wrk (Debian)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq wrk >/dev/null; }
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

soak: $(STAMP) ## the fault tests with ten times the traffic, and a real resource alarm (minutes)
	HIKER_SOAK_SCALE=10 $(BIN)/pytest tests/integration/test_faults.py \
	  tests/integration/test_graph_faults.py tests/integration/test_broker_alarm.py \
	  -p no:cacheprovider

image: ## build the container image (needs a Docker engine)
	docker build $(if $(PYTHON_IMAGE),--build-arg PYTHON_IMAGE=$(PYTHON_IMAGE)) -t hiker:dev .

constraints: ## re-pin constraints.txt from a fresh resolve
	rm -rf /tmp/hiker-constraints-venv
	$(PYTHON) -m venv /tmp/hiker-constraints-venv
	/tmp/hiker-constraints-venv/bin/pip install --quiet -e '.[dev]'
	/tmp/hiker-constraints-venv/bin/pip freeze --exclude-editable | grep -v '^-e' > constraints.txt

clean: ## remove the virtualenv and caches
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
