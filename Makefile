# The two commands a newcomer needs: `make run` and `make test`.
# Every target installs what it needs into .venv/ first (idempotent: a stamp file tracks pyproject.toml).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_QUICK ?=
CHROMIUM := /usr/bin/chromium

.PHONY: run test lint typecheck generate verify bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $(STAMP)

## run: start a local agent from examples/local.yaml, send demo traffic, print what happened
run: $(STAMP)
	$(BIN)/python -m tools.demo examples/local.yaml

## test: lint, type-check, then the whole test suite (unit, integration, e2e)
test: lint typecheck $(CHROMIUM)
	$(BIN)/pytest -q tests

# Headless Chromium for the WebSocket browser test: Debian's package, never a downloaded browser.
$(CHROMIUM):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

lint: $(STAMP)
	$(BIN)/ruff check agent operator tools tests bench
	$(BIN)/ruff format --check agent operator tools tests bench
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

## generate: rewrite every generated file (CRD, chart CRD, configuration reference) from otlp_agent.api.spec
generate: $(STAMP)
	$(BIN)/python -m tools.generate

## bench: compare the agent with rotel on the same machine; BENCH_QUICK=1 for a short run
bench: $(STAMP)
	$(BIN)/python -m bench.run $(if $(BENCH_QUICK),--quick,)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
