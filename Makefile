# regate-db developer targets. Every target creates or updates the virtual environment itself.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: help venv demo test test-pg15 lint format bench bench-quick perf-doc dist clean stop-servers

help: ## List the targets
	@grep -E '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "regate-db needs Python >= 3.11, found " + sys.version.split()[0])'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing regate-db and its development tools into $(VENV) ..."
	@$(PY) -m pip install -q --disable-pip-version-check -e '.[dev,mlflow]'
	@touch $@

venv: $(STAMP) ## Create or update the virtual environment (.venv)

demo: $(STAMP) ## Run the demo on the embedded PostgreSQL
	$(VENV)/bin/regate-db demo

# REGATE_EXPECT_SERVER_MAJOR: tests/conftest.py stops the session when the server is another major version.
test: $(STAMP) ## Run the test suite on the embedded PostgreSQL 18
	REGATE_EXPECT_SERVER_MAJOR=18 $(PY) -m pytest $(PYTEST_ARGS)

# pg15.sh runs on its own first: `eval "$$(failing command)"` would succeed and test the embedded server instead.
# REGATE_REQUIRE_PLPGSQL_CHECK: tests/test_static_checks.py fails instead of skipping without the extension.
test-pg15: $(STAMP) ## Run the test suite on Debian's PostgreSQL 15 (installs and starts it; needs root)
	@env_line=$$(scripts/pg15.sh) || { echo "make test-pg15: PostgreSQL 15 is not available (scripts/pg15.sh failed, see above); no tests were run" >&2; exit 1; }; \
	eval "$$env_line" && \
	REGATE_EXPECT_SERVER_MAJOR=15 REGATE_REQUIRE_PLPGSQL_CHECK=1 $(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP) ## sqlfluff + squawk + pgspot on the SQL, ruff + mypy on the Python
	$(VENV)/bin/sqlfluff lint sql migrations
	$(VENV)/bin/squawk --config .squawk.toml migrations/*.sql
	$(PY) scripts/pgspot_check.py migrations/*.sql sql/*.sql
	$(VENV)/bin/ruff check regate_db tests bench scripts
	$(VENV)/bin/ruff format --check regate_db tests bench scripts
	$(VENV)/bin/mypy

format: $(STAMP) ## Reformat the Python and fix what sqlfluff can
	$(VENV)/bin/ruff format regate_db tests bench scripts
	$(VENV)/bin/ruff check --fix regate_db tests bench scripts
	$(VENV)/bin/sqlfluff fix sql migrations

bench: $(STAMP) ## Run the benchmarks (full mode)
	$(PY) -m bench

bench-quick: $(STAMP) ## Run the benchmarks in quick mode (under a minute)
	$(PY) -m bench --quick

perf-doc: $(STAMP) ## Regenerate the figure tables of docs/performance.md from bench/results.json
	$(PY) -m bench.report

dist: $(STAMP) ## Build the sdist and the wheel into dist/ (pip install 'dist/regate_db-<version>-py3-none-any.whl[embedded]')
	rm -rf dist
	$(PY) -m build --outdir dist .

stop-servers: ## Stop embedded PostgreSQL servers leaked by killed test runs
	@scripts/stop-stale-servers.sh

clean: ## Remove the virtual environment and build output
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
