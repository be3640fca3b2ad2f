# Two commands on a fresh machine with Python 3.11 and make:
#   make demo   set up, then run three simulated weeks of the sample cadence
#   make test   set up, then run the whole suite (PostgreSQL tests need
#               TOUCHFLOW_TEST_POSTGRES_URL; .ci/run sets it)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/touchflow demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python bench/tick.py

clean:
	rm -rf demo-run .pytest_cache .hypothesis touchflow.db* outbox
