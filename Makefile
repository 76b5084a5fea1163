# Two commands for a fresh machine: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 5000
export PORT
# pytest-xdist processes for `make test`: the tests wait on databases, browsers and
# served processes as much as on the CPU, so two cores keep two busy.
TEST_WORKERS ?= 2

.PHONY: demo test lint format install install-test chromium bench translations clean lock

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Exact versions with their hashes from the lock files (`make lock` refreshes them), then
# the project itself without resolving anything again.
$(VENV)/.installed: pyproject.toml requirements/app.lock | $(BIN)/python
	$(BIN)/pip install --quiet --require-hashes -r requirements/app.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml requirements/test.lock | $(BIN)/python
	$(BIN)/pip install --quiet --require-hashes -r requirements/test.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $(VENV)/.installed $@

## Re-resolve the lock files from pyproject.toml (newest versions the ranges allow)
lock: | $(BIN)/python
	$(BIN)/pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml requirements/build.in --generate-hashes \
		--python-version 3.11 --upgrade -o requirements/app.lock
	$(BIN)/uv pip compile pyproject.toml requirements/build.in --extra test --generate-hashes \
		--python-version 3.11 --upgrade -c requirements/app.lock -o requirements/test.lock

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
	$(BIN)/mypy
	$(BIN)/pytest -n $(TEST_WORKERS) --dist worksteal

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
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/ediary.py
	$(BIN)/python bench/reminders.py
	$(BIN)/python bench/booking.py
	$(BIN)/python bench/hhcrsp.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
