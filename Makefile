# Two commands for a fresh machine: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 5000
export PORT

.PHONY: demo test lint format install install-test chromium bench translations clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

## The platform with demo data on the embedded SQLite default, at http://127.0.0.1:$(PORT)
demo: install
	$(BIN)/dct demo --port $(PORT)

chromium:
	@sh scripts/install-chromium.sh

## The whole suite: lint, layering, unit, integration and browser tests (DATABASE_URL picks the database)
test: install-test chromium
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/lint-imports

format: install-test
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## Extract new strings, update the .po catalogues, compile the .mo files
translations: install-test
	$(BIN)/python scripts/translations.py

## Figures for the closing note: API latency, audited writes in parallel, audit verification (PostgreSQL)
bench: install-test
	$(BIN)/python bench/foundation.py
	$(BIN)/python bench/audit.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
