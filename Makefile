# hfloop — every target sets itself up on a fresh machine (virtualenv, packages, Kafka jars).
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.8
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements.lock deploy/overrides.txt hatch_build.py services/hfloop/events/native/_avroenc.c 2>/dev/null | sha1sum | cut -c1-12)

.DEFAULT_GOAL := help
.PHONY: help install test test-fast demo bench chaos lint fmt typecheck lock kafka-start kafka-stop clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*?## "}{printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(STAMP):
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@$(BIN)/python -m pip install -q "uv==$(UV_VERSION)"
	# faust-streaming caps click<8.4 while huggingface-hub needs >=8.4.2; the override lifts faust's cap.
	$(BIN)/uv pip install --python $(BIN)/python --override deploy/overrides.txt -c requirements.lock -e ".[dev]"
	@rm -f $(VENV)/.installed-*; touch $@

install: $(STAMP) ## Create .venv and install hfloop with pinned dependencies
	@$(BIN)/hfloop kafka fetch

lock: ## Re-resolve requirements.lock from pyproject.toml
	@test -x $(BIN)/uv || ($(PY) -m venv $(VENV) && $(BIN)/python -m pip install -q "uv==$(UV_VERSION)")
	$(BIN)/uv pip compile pyproject.toml --extra dev --override deploy/overrides.txt -o requirements.lock --python-version 3.11 -q

test: install ## Run the test suite (starts and stops its own Kafka broker)
	$(BIN)/python -m pytest

test-fast: install ## Tests without the slow (training, end-to-end) ones
	$(BIN)/python -m pytest -m "not slow"

demo: install ## The main job: the closed loop on embedded stores, with a report
	$(BIN)/hfloop demo

bench: install ## Benchmarks; results go to benchmarks/results/
	$(BIN)/python -m benchmarks.run

chaos: install ## Kill/restart workers and the broker under load; checks every invariant
	$(BIN)/python -m pytest tests/test_chaos.py -m chaos -p no:cacheprovider

lint: install ## ruff check + format check
	$(BIN)/ruff check services tests benchmarks && $(BIN)/ruff format --check services tests benchmarks

fmt: install ## Format the code
	$(BIN)/ruff format services tests benchmarks && $(BIN)/ruff check --fix services tests benchmarks

typecheck: install ## mypy
	$(BIN)/mypy services/hfloop

kafka-start: install ## Start the local Kafka broker
	$(BIN)/hfloop kafka start

kafka-stop: install ## Stop the local Kafka broker
	$(BIN)/hfloop kafka stop

clean: ## Remove the virtualenv and local data
	rm -rf $(VENV) .hfloop .pytest_cache
