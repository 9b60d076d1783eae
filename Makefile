# voexec — run `make help` for the list of targets.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

# uv installs exactly uv.lock. Its version is pinned once, in pyproject.toml ([tool.uv]
# required-version, which uv itself enforces); it is installed into .venv with the venv's own pip,
# so a fresh machine needs nothing beyond Python, and everyone locks and installs with the same
# uv. `uv sync` keeps uv, pip and setuptools in the venv while removing anything not locked.
UV_VERSION := $(shell sed -n 's/^required-version = "==\(.*\)"$$/\1/p' pyproject.toml)
UV         := UV_PROJECT_ENVIRONMENT=$(VENV) $(BIN)/uv
UV_STAMP   := $(VENV)/.uv-$(UV_VERSION)
# `make test-latest` installs the newest releases pyproject.toml allows here, away from .venv.
LATEST     := .venv-latest

# `make run PORT=8100 HOST=0.0.0.0`. Only the make command line counts: a PORT or HOST that a
# shell or platform happens to export must not move the server. Without them the settings decide
# (server.host and server.port, 127.0.0.1:8000 unless configured).
from_command_line = $(filter command line,$(origin $(1)))
RUN_ARGS := $(if $(call from_command_line,HOST),--host $(HOST)) \
            $(if $(call from_command_line,PORT),--port $(PORT))

# pytest exits 5 when it collects nothing: with a PYTEST_ARGS filter (say, a -k that matches no
# test) that is reported, not failed; the whole suite collecting nothing is a failure.
# $(call pytest,<venv bin folder>)
define pytest
@status=0; $(1)/pytest $(PYTEST_ARGS) || status=$$?; \
if [ $$status -eq 5 ] && [ -n "$(strip $(PYTEST_ARGS))" ]; then echo "make: pytest collected no tests"; exit 0; fi; exit $$status
endef

.DEFAULT_GOAL := help
.PHONY: help install lock lock-upgrade run serve test test-latest test-all lint typecheck format bench services services-stop golden openapi clean

help: ## show this help: each target and what it starts (nothing, unless it says so)
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

# Messages go to stderr, so that `make openapi > openapi.json` on a fresh clone writes only JSON.
$(UV_STAMP):
	@echo "make: creating $(VENV) with uv $(UV_VERSION) (first run only)" >&2
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION) >&2
	@touch $@

# --locked installs exactly uv.lock and fails when pyproject.toml asks for something the lock does
# not hold (a dependency added without `make lock`), instead of quietly resolving anew.
$(STAMP): $(UV_STAMP) pyproject.toml uv.lock
	@echo "make: installing the dependencies pinned in uv.lock and voexec (editable) into $(VENV)" >&2
	@$(UV) sync --locked --extra dev >&2 || { \
	  echo "make: if uv says the lockfile needs to be updated, run \`make lock\` and commit uv.lock" >&2; exit 1; }
	@touch $@

install: $(STAMP) ## create .venv and install the locked dependencies (uv.lock), voexec and its development tools; starts nothing

lock: $(UV_STAMP) ## bring uv.lock in line with pyproject.toml, moving no pin it need not move (after adding a dependency)
	$(UV) lock
	@echo "make: review \`git diff uv.lock\`, run \`make test\`, then commit uv.lock with pyproject.toml" >&2

lock-upgrade: $(UV_STAMP) ## re-resolve uv.lock to the newest releases pyproject.toml allows (what `make test-latest` tried)
	$(UV) lock --upgrade
	@echo "make: review \`git diff uv.lock\`, run \`make test\`, then commit uv.lock" >&2

run: $(STAMP) ## start `voexec serve --demo` in the foreground on server.host:port, 127.0.0.1:8000 by default (demo catalogue, 3 simulated platforms, SQLite + tantivy in ./var); PORT=8100 HOST=0.0.0.0 to move it; Ctrl-C stops it
	$(BIN)/voexec serve --demo $(strip $(RUN_ARGS))

serve: run ## alias of run (starts the same server)

lint: $(STAMP) ## uv.lock up to date, ruff, mypy (strict) and the import-direction contracts
	$(UV) lock --check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

typecheck: $(STAMP) ## mypy only
	$(BIN)/mypy

format: $(STAMP) ## fix what ruff can fix and format the code
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: $(STAMP) lint ## lint, then the whole test suite; starts `voexec serve` subprocesses on free loopback ports (stopped after), uses services already running (VOEXEC_REQUIRE_SERVICES=1 to insist)
	$(call pytest,$(BIN))

# Not part of `make test`: it shows on purpose what the next `make lock-upgrade` would bring, before it
# surprises a fresh clone. uv.lock is neither read nor written.
test-latest: $(UV_STAMP) ## the test suite against the newest releases pyproject.toml allows, in .venv-latest (starts what `make test` starts)
	@test -x $(LATEST)/bin/python || $(PYTHON) -m venv $(LATEST)
	@echo "make: what \`make lock-upgrade\` would change in uv.lock:" >&2
	@$(UV) lock --upgrade --dry-run
	$(BIN)/uv pip install --python $(LATEST)/bin/python --upgrade --editable '.[dev]'
	$(call pytest,$(LATEST)/bin)

test-all: $(STAMP) ## start PostgreSQL, OpenSearch, Slurm, DaCHS and a container registry, run the whole suite insisting on them, then stop those it started
	bash scripts/services/run-with-services.sh $(MAKE) test VOEXEC_REQUIRE_SERVICES=1

services: ## start PostgreSQL, OpenSearch and a one-node Slurm on loopback (left running) and print their URLs
	bash scripts/services/postgres start
	bash scripts/services/opensearch start
	bash scripts/services/slurm start

services-stop: ## stop the services started by `make services` (Slurm, OpenSearch, PostgreSQL)
	-bash scripts/services/slurm stop
	-bash scripts/services/opensearch stop
	-bash scripts/services/postgres stop

bench: $(STAMP) ## run the benchmarks (starts `voexec serve` subprocesses for the HTTP ones) and rewrite docs/benchmarks.md
	$(BIN)/python -m bench

golden: $(STAMP) ## regenerate recorded data (the OpenAPI snapshot, the publisher JSON Schema)
	VOEXEC_REGENERATE_GOLDEN=1 $(BIN)/pytest tests/api/test_openapi.py -q
	VOEXEC_REGENERATE_GOLDEN=1 $(BIN)/pytest tests/unit/catalogue/test_publisher.py -k json_schema -q

openapi: $(STAMP) ## print the OpenAPI document as JSON (`voexec openapi --yaml` for YAML)
	@$(BIN)/voexec openapi

clean: ## remove the virtualenv, caches and local data
	rm -rf $(VENV) $(LATEST) var .pytest_cache .mypy_cache .ruff_cache build *.egg-info
