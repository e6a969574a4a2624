# regate-db developer targets. Every target creates or updates the virtual environment itself.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: help venv demo test test-pg15 test-integrations lint format bench bench-quick perf-doc dist clean stop-servers

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

# Its own virtual environment: the frameworks weigh 1.2 GB and are not needed by `make test` (fakes replay their
# events there). torch stays pinned in the same pip command, or pip takes a CUDA build of several GB.
VENV_FW ?= .venv-integrations
test-integrations: ## Run tests/test_integrations.py with a real Hugging Face Trainer and Lightning fit (CPU; own venv)
	@test -x $(VENV_FW)/bin/python || $(PYTHON) -m venv $(VENV_FW)
	@echo "installing regate-db with torch, transformers and lightning into $(VENV_FW) ..."
	@$(VENV_FW)/bin/python -m pip install -q --disable-pip-version-check -e '.[test,mlflow,integrations]'
	REGATE_REQUIRE_FRAMEWORKS=1 REGATE_EXPECT_SERVER_MAJOR=18 $(VENV_FW)/bin/python -m pytest $(PYTEST_ARGS) \
		tests/test_integrations.py tests/test_integrations_doc.py tests/test_importers.py

lint: $(STAMP) ## sqlfluff + squawk + pgspot on the SQL, ruff + mypy on the Python
	$(VENV)/bin/sqlfluff lint sql migrations
	$(VENV)/bin/squawk --config .squawk.toml migrations/*.sql
	$(PY) scripts/pgspot_check.py migrations/*.sql sql/*.sql
	$(VENV)/bin/ruff check regate_db tests bench scripts examples
	$(VENV)/bin/ruff format --check regate_db tests bench scripts examples
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy --strict examples/user-project   # a user's project: type-checked on its own

format: $(STAMP) ## Reformat the Python and fix what sqlfluff can
	$(VENV)/bin/ruff format regate_db tests bench scripts examples
	$(VENV)/bin/ruff check --fix regate_db tests bench scripts examples
	$(VENV)/bin/sqlfluff fix sql migrations

bench: $(STAMP) ## Run the benchmarks (full mode)
	$(PY) -m bench

bench-quick: $(STAMP) ## Run the benchmarks in quick mode (about 4 minutes)
	$(PY) -m bench --quick

perf-doc: $(STAMP) ## Regenerate the figure tables of docs/performance.md from bench/results.json
	$(PY) -m bench.report

dist: $(STAMP) ## Build the sdist and the wheel into dist/ (pip install 'dist/regate_db-<version>-py3-none-any.whl[embedded]')
	rm -rf dist
	$(PY) -m build --outdir dist .

stop-servers: ## Stop embedded PostgreSQL servers leaked by killed test runs
	@scripts/stop-stale-servers.sh

clean: ## Remove the virtual environment and build output
	rm -rf $(VENV) $(VENV_FW) build dist .pytest_cache .mypy_cache .ruff_cache
