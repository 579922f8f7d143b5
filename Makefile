# messagehooks: `make run` starts the whole pipeline, `make test` runs every test,
# `make test-fast` the unit and property tests only (for iteration).
# Both create .venv on first use (python3 -m venv; pip install -e '.[dev]').

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
KAFKA_LIBS := $(VENV)/kafka/libs
TOOLS_STAMP := tools/node_modules/.installed-stamp

.DEFAULT_GOAL := help
.PHONY: help venv kafka-jars tools run test test-fast check bench format clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-9s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The Apache Kafka broker's jars, from Maven Central (skipped, with a note, without Java 17+ and Maven).
kafka-jars: $(STAMP)
	kafka/fetch $(abspath $(KAFKA_LIBS))

# The contract validators subscribers run (@asyncapi/cli, @redocly/cli, ajv), pinned by
# tools/package-lock.json; without npm, a note, and tests/contracts/test_tools.py skips them.
$(TOOLS_STAMP): tools/package.json tools/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
	  cd tools && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error && touch node_modules/.installed-stamp; \
	else echo "npm not found: the contract validators (tools/) are not installed; install Node.js 20+ and npm"; fi

tools: $(TOOLS_STAMP)  ## install the contract validators (tools/package-lock.json) with npm ci

venv: $(STAMP) kafka-jars  ## create .venv, install the project with its dev tools and Kafka's jars

run: venv  ## run broker (Apache Kafka if Java is here, else Tansu) + ingest + worker + sink + traffic
	$(BIN)/messagehooks up

# Two workers (pytest-xdist), each with its own broker of each engine: the suite mostly waits on
# brokers and child processes, so two halve its time on two cores (measured: 23 min 48 s -> 12 min 34 s).
test: venv tools  ## run every test (unit, property, integration on both broker engines), on 2 workers
	$(BIN)/pytest -n 2

# What needs no broker, no server and no child process of ours: the `integration` tests are those,
# `slow` ones do long real work without them (pyproject.toml, [tool.pytest.ini_options] markers).
test-fast: $(STAMP)  ## run the unit and property tests only (no broker, server or process), on 2 workers
	$(BIN)/pytest -q -n 2 -m "not integration and not slow"

check: $(STAMP) tools  ## format check, lint, type check, dependency audit
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	.ci/audit $(BIN)/pip-audit

bench: $(STAMP)  ## run the benchmarks on Tansu and Apache Kafka (needs wrk) -> benchmarks/results/latest.json
	$(BIN)/python -m benchmarks.run_all

format: $(STAMP)  ## apply ruff's formatting and safe fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:  ## remove .venv, caches and local data
	rm -rf $(VENV) tools/node_modules .pytest_cache .mypy_cache .ruff_cache data dist
