# Two commands do everything: `make demo` and `make test` (see README).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OUT ?= out

.PHONY: demo test lint lab samples bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/kforensics load data/samples/native --case $(OUT)/demo.duckdb
	@echo "case: $(OUT)/demo.duckdb"

test: $(STAMP)
	$(BIN)/ruff check kforensics tests bench
	$(BIN)/ruff format --check kforensics tests bench
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check --fix kforensics tests bench
	$(BIN)/ruff format kforensics tests bench

samples: $(STAMP)
	$(BIN)/kforensics sample --out data/samples

bench: $(STAMP)
	$(BIN)/python bench/ingest.py

lab: $(STAMP)
	$(BIN)/python -m pip install --quiet jupyterlab
	$(BIN)/jupyter lab notebooks/

clean:
	rm -rf $(VENV) $(OUT)
