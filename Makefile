# voexec — run `make help` for the list of targets.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install run serve test test-all lint typecheck format bench services services-stop golden openapi clean

help: ## show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install voexec with its development tools

run: $(STAMP) ## run voexec on its embedded default (SQLite + tantivy) with demo data, on http://127.0.0.1:8000
	$(BIN)/voexec serve --demo

serve: run ## alias of run

lint: $(STAMP) ## ruff, mypy (strict) and the import-direction contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

typecheck: $(STAMP) ## mypy only
	$(BIN)/mypy

format: $(STAMP) ## fix what ruff can fix and format the code
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: $(STAMP) lint ## lint, then the whole test suite (services it finds are used; set VOEXEC_REQUIRE_SERVICES=1 to insist)
	@# pytest exits 5 when it collects nothing: with a PYTEST_ARGS filter (say, a -k that matches no
	@# test) that is reported, not failed; the whole suite collecting nothing is a failure.
	@status=0; $(BIN)/pytest $(PYTEST_ARGS) || status=$$?; \
	if [ $$status -eq 5 ] && [ -n "$(strip $(PYTEST_ARGS))" ]; then echo "make test: pytest collected no tests"; exit 0; fi; exit $$status

test-all: $(STAMP) ## start PostgreSQL, OpenSearch, Slurm and DaCHS, then the whole suite insisting on them
	bash scripts/services/run-with-services.sh $(MAKE) test VOEXEC_REQUIRE_SERVICES=1

services: ## start PostgreSQL and OpenSearch on loopback and print their URLs
	bash scripts/services/postgres start
	bash scripts/services/opensearch start
	bash scripts/services/slurm start

services-stop: ## stop the services started by `make services`
	-bash scripts/services/slurm stop
	-bash scripts/services/opensearch stop
	-bash scripts/services/postgres stop

bench: $(STAMP) ## run the benchmarks and rewrite docs/benchmarks.md
	$(BIN)/python -m bench

golden: $(STAMP) ## regenerate recorded data (the OpenAPI snapshot, the publisher JSON Schema)
	VOEXEC_REGENERATE_GOLDEN=1 $(BIN)/pytest tests/api/test_openapi.py -q
	VOEXEC_REGENERATE_GOLDEN=1 $(BIN)/pytest tests/unit/catalogue/test_publisher.py -k json_schema -q

openapi: $(STAMP) ## print the OpenAPI document
	$(BIN)/voexec openapi

clean: ## remove the virtualenv, caches and local data
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache build *.egg-info
