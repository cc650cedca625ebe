# Aidline — developer commands. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The lock files (requirements/*.txt, from pyproject.toml by `make lock`) say exactly what is
# installed, with hashes; a stamp per lock file's content re-installs only when it changes.
UV := $(BIN)/uv
RUN_LOCK := requirements/run.txt
DEV_LOCK := requirements/dev.txt
RUN_STAMP := $(VENV)/.run-$(shell cat $(RUN_LOCK) | sha1sum | cut -c1-12)
STAMP := $(VENV)/.dev-$(shell cat $(DEV_LOCK) | sha1sum | cut -c1-12)
INFRA := deploy/local/infra.sh
PYTEST_ARGS ?=
# Tests and benchmarks get a broker and database of their own (own state folder and ports), so
# their events never show up in the stack `make run` starts, and both can run at once.
# The tests also start brokers of their own (tests/brokers.py): a three-node cluster (node n on
# TEST_CLUSTER_PORT + 10(n-1), its controller one above) and a TLS/SCRAM broker (TEST_SECURE_PORT
# to +3). Choose other ports to run two suites at once: make test TEST_CLUSTER_PORT=20400 ...
TEST_CLUSTER_PORT ?= 20100
TEST_SECURE_PORT ?= 20200
# `make test` runs the tests on TEST_WORKERS pytest-xdist workers (2, the default), the isolated
# ones (they stop the broker, crash PostgreSQL...) beside them on a broker and PostgreSQL of
# their own (TEST_ISOLATED=after: when the others are done), or in one pytest, in line
# (TEST_WORKERS=0); see deploy/local/test-suite.sh.
TEST_WORKERS ?= 2
TEST_ISOLATED ?= beside
TEST_HOME := $(CURDIR)/.aidline/test
TEST_INFRA := AIDLINE_HOME=$(TEST_HOME) KAFKA_PORT=19092 CONTROLLER_PORT=19093 \
	AIDLINE_PG_PORT=15433 AIDLINE_TEST_CLUSTER_PORT=$(TEST_CLUSTER_PORT) \
	AIDLINE_TEST_SECURE_PORT=$(TEST_SECURE_PORT)

.PHONY: help
help: ## List the commands
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(BIN)/uv:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "Aidline needs Python 3.11 or newer (found: $$($(PYTHON) --version))"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install -q --disable-pip-version-check $$(grep -o '^uv==[^ ]*' $(DEV_LOCK))

# Development and tests: exactly the dev lock (sync removes what it does not name).
# --compile-bytecode: where PYTHONDONTWRITEBYTECODE is set (as on our 2-core machine, and in many
# CI images), Python would otherwise compile the ~6,000 installed modules again in every process
# it starts; importing the four services took 4.2 s, 1.8 s with the bytecode written once here.
$(STAMP): $(DEV_LOCK) | $(BIN)/uv
	@echo "==> installing Aidline and its locked dependencies (run, dev, bench) into $(VENV)"
	@$(UV) pip sync -q --compile-bytecode --python $(BIN)/python --require-hashes $(DEV_LOCK)
	@$(UV) pip install -q --python $(BIN)/python --no-deps -e .
	@rm -f $(VENV)/.dev-* $(VENV)/.run-* && touch $@ $(RUN_STAMP)

# Running only: what the services need, nothing for tests (kept when the dev set is there).
$(RUN_STAMP): $(RUN_LOCK) | $(BIN)/uv
	@echo "==> installing Aidline and its locked runtime dependencies into $(VENV)"
	@$(UV) pip install -q --compile-bytecode --python $(BIN)/python --require-hashes -r $(RUN_LOCK)
	@$(UV) pip install -q --python $(BIN)/python --no-deps -e .
	@rm -f $(VENV)/.run-* && touch $@

.PHONY: lock
lock: | $(BIN)/uv ## Re-resolve requirements/*.txt from pyproject.toml (after changing a pin)
	@$(UV) pip compile -q pyproject.toml --universal --python-version 3.11 --generate-hashes -o $(RUN_LOCK)
	@$(UV) pip compile -q pyproject.toml --extra dev --extra bench --universal --python-version 3.11 --generate-hashes -o $(DEV_LOCK)

.PHONY: install
install: $(STAMP) ## Create the virtual environment and install the project

.PHONY: infra-up
infra-up: ## Start local Kafka (KRaft) and PostgreSQL; prints their addresses
	@$(INFRA) up

.PHONY: infra-down
infra-down: ## Stop the local Kafka and PostgreSQL started by infra-up
	@$(INFRA) down

.PHONY: infra-status
infra-status: ## Is local Kafka / PostgreSQL running?
	@$(INFRA) status

.PHONY: test
test: $(STAMP) ## Run the whole test suite against real Kafka and PostgreSQL
	@$(TEST_INFRA) TEST_WORKERS=$(TEST_WORKERS) TEST_ISOLATED=$(TEST_ISOLATED) \
	  deploy/local/test-suite.sh $(PYTEST_ARGS)

.PHONY: test-unit
test-unit: $(STAMP) ## Only the pure unit tests (no infrastructure)
	@$(BIN)/pytest tests/unit $(PYTEST_ARGS)

.PHONY: bench
bench: $(STAMP) ## Benchmarks beside their baselines; writes bench-results/results.{json,md}
	@$(TEST_INFRA) deploy/local/with-infra.sh $(BIN)/python -m bench $(BENCH)

.PHONY: mutation
mutation: $(STAMP) ## Mutation testing of the domain layers and the projector (not in CI; ~25 min)
	@$(UV) pip install -q --python $(BIN)/python -e '.[dev,mutation]'
	@$(BIN)/mutmut run --max-children 2
	@$(BIN)/mutmut results

.PHONY: lint
lint: $(STAMP) ## ruff and mypy
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .
	@$(BIN)/mypy shared services bench tests

.PHONY: run
run: $(RUN_STAMP) ## Start Kafka and the four services with demo data; prints the dashboard address
	@$(BIN)/python -m shared.cli.run

.PHONY: up
up: ## Docker Compose: the whole stack (needs a key, or AIDLINE_ENVIRONMENT=development)
	docker compose up -d --build

.PHONY: down
down: ## Docker Compose: stop the stack
	docker compose down

# `clean` removes the PostgreSQL clusters of `make run`, `make test` and its isolated tests
# (test-suite.sh: <home>/isolated) by name: as root they may live outside .aidline (postgres.sh,
# in /var/tmp).
.PHONY: clean
clean: ## Remove the virtual environment and local state (keeps the Kafka jar cache)
	-@$(INFRA) down
	-@for home in $(CURDIR)/.aidline $(TEST_HOME) $(TEST_HOME)/isolated; do \
	  AIDLINE_HOME=$$home deploy/local/postgres.sh remove; done
	rm -rf $(VENV) .aidline .pytest_cache .mypy_cache .ruff_cache mutants
