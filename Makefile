# PeerLearn developer commands. Run `make` on its own to list them.

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
# Marks the last successful `pip install -r requirements.txt` into $(VENV).
STAMP := $(VENV)/.installed
BOOTSTRAP_PYTHON ?= $(shell command -v python3.11 || command -v python3)
PYTEST_ARGS ?=

.PHONY: help .venv run test lint format assets bench bench-quick clean-data

help:
	@echo "PeerLearn"
	@echo ""
	@echo "  make run         start everything on http://localhost:8000 (embedded Postgres/Redis unless"
	@echo "                   DATABASE_URL/REDIS_URL are set), migrate, seed the demo, print logins"
	@echo "  make test        run the test suite (PYTEST_ARGS=\"-k name\" to pick tests)"
	@echo "  make lint        ruff check + ruff format --check"
	@echo "  make format      ruff format + ruff check --fix"
	@echo "  make assets      rebuild static/css/app.css and static/vendor/ (needs Node/npm)"
	@echo "  make bench       run every benchmark in bench/ (about 15 min) and update docs/benchmarks.md"
	@echo "  make bench-quick the same at small sizes (a few minutes); prints only"
	@echo "  make .venv       create/update the virtualenv from requirements.txt"
	@echo "  make clean-data  DESTRUCTIVE: delete .data/ (embedded Postgres and Redis data)"

.venv: $(STAMP)

# Re-runs whenever requirements.txt is newer than the stamp.
$(STAMP): requirements.txt
	@if ! $(PY) -m pip --version >/dev/null 2>&1; then \
		if [ -z "$(BOOTSTRAP_PYTHON)" ]; then \
			echo "Python 3.11 is required: neither python3.11 nor python3 is on PATH." >&2; exit 1; \
		fi; \
		if ! $(BOOTSTRAP_PYTHON) -c "import sys; sys.exit(sys.version_info[:2] < (3, 11))"; then \
			echo "Python 3.11+ is required; $(BOOTSTRAP_PYTHON) is $$($(BOOTSTRAP_PYTHON) -V 2>&1)." >&2; \
			echo "Install python3.11 or run: make BOOTSTRAP_PYTHON=/path/to/python3.11" >&2; exit 1; \
		fi; \
		echo "Creating $(VENV) with $(BOOTSTRAP_PYTHON) ($$($(BOOTSTRAP_PYTHON) -V 2>&1))"; \
		$(BOOTSTRAP_PYTHON) -m venv $(VENV); \
	fi
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install -r requirements.txt
	@touch $@

run: .venv
	$(PY) scripts/run.py

test: .venv
	$(PY) scripts/with_services.py $(VENV)/bin/pytest $(PYTEST_ARGS)

lint: .venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: .venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

assets:
	npm ci && npm run build

bench: .venv
	$(PY) scripts/with_services.py $(PY) bench/run.py

bench-quick: .venv
	$(PY) scripts/with_services.py $(PY) bench/run.py --quick

# Deletes the embedded Postgres and Redis data. Refuses while the embedded
# Postgres is running (stop `make run` / `make test` first).
clean-data:
	@pid=$$(head -n1 .data/postgres/postmaster.pid 2>/dev/null); \
	if [ -n "$$pid" ] && kill -0 "$$pid" 2>/dev/null; then \
		echo "The embedded Postgres (pid $$pid) is running from .data/: stop make run/make test first." >&2; \
		exit 1; \
	fi
	rm -rf .data
	@echo "Deleted .data/: the next make run starts from an empty database."
