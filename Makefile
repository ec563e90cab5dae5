# Conveyor: `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help setup system-deps demo up down status test test-unit bench lint format clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

setup: $(STAMP) ## Create .venv from the pinned requirements.txt

system-deps: ## OS packages the tests use: Chromium for the browser test (apt-get; root or sudo)
	@if command -v chromium >/dev/null; then echo "chromium: $$(command -v chromium)"; \
	else SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends chromium; fi

USE_CASE ?= predictive_maintenance

demo: $(STAMP) ## Start the local stack, run a pipeline through Airflow's REST API, predict (USE_CASE=...)
	$(BIN)/conveyor demo --use-case $(USE_CASE)

up: $(STAMP) ## Start the local stack (Ray head, MLflow, Airflow) without triggering a run
	$(BIN)/conveyor up

down: $(STAMP) ## Stop exactly what `make up`/`make demo` started (by recorded PID)
	$(BIN)/conveyor down

status: $(STAMP) ## Show the local stack's services
	$(BIN)/conveyor status

lint: $(STAMP) ## ruff check + ruff format --check + the import contracts (lint-imports)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

format: $(STAMP) ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test-unit: $(STAMP) ## Unit tests only (no services)
	$(BIN)/python -m pytest tests/unit

test: lint ## The whole suite: lint, unit, integration and e2e (real Ray, Airflow, MLflow, Serve)
	$(BIN)/python -m pytest

# The CPU benchmarks, in the order of bench/README.md (about 30 minutes on two cores). Not part
# of `make test`: they print ratios, and a shared machine's noise is no reason to fail a build.
BENCHES ?= ingest_vs_pyarrow validation_vs_pandas train_ray_vs_torchrun ray_data_feed_rate serve_latency \
	train_images serve_images train_scale

bench: $(STAMP) ## Run the benchmarks (side-by-side ratios); one: `make bench BENCHES=serve_latency`
	@for name in $(BENCHES); do echo "== bench.$$name"; $(BIN)/python -m bench.$$name || exit 1; done

clean: ## Remove the local stack's data (.local); run `make down` first
	rm -rf .local
