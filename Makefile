# The two quick-start commands: `make demo` (set up, then run one simulated day) and
# `make test` (set up, then run the test suite). Everything is installed into .venv.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
# Dagster's telemetry uploader deletes $$DAGSTER_HOME/logs: off for every Dagster process started here.
export DAGSTER_DISABLE_TELEMETRY = 1
DATE ?= 2026-10-20
MINERS ?= 8

.PHONY: setup demo test ui

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

demo: setup
	$(BIN)/gaia-dagster demo --miners $(MINERS) --date $(DATE)

test: setup
	$(BIN)/pytest -q

ui: setup
	export DAGSTER_HOME=$${DAGSTER_HOME:-$(CURDIR)/.dagster_home}; \
	$(BIN)/gaia-dagster instance init && $(BIN)/dagster dev -w workspace.yaml
