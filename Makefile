# The two commands of the quick start are `make run` and `make test`; both bootstrap .venv.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
RUN_STAMP := $(VENV)/.stamp-run
TEST_STAMP := $(VENV)/.stamp-test
BENCH_STAMP := $(VENV)/.stamp-bench

.PHONY: run test quick lint typecheck bench docs clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(RUN_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	touch $@

$(TEST_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

$(BENCH_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[test,bench]'
	touch $@

## run: the guided demo against the embedded simulator (no API key, no network)
run: $(RUN_STAMP)
	$(VENV)/bin/midstream demo

## test: the whole suite: pytest, ruff check, ruff format --check and mypy --strict on src/
test: $(TEST_STAMP)
	@command -v tmux >/dev/null || { apt-get update -qq && apt-get install -y -qq tmux; } >/dev/null 2>&1 || echo "tmux could not be installed: the terminal test will be skipped"
	$(PY) -m pytest
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy --strict src

## quick: the suite without the tests marked slow (the whole suite is `make test`, and what CI runs)
quick: $(TEST_STAMP)
	$(PY) -m pytest -m "not slow"

lint: $(TEST_STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

typecheck: $(TEST_STAMP)
	$(VENV)/bin/mypy --strict src

## bench: side-by-side benchmarks against named peers (minutes; figures in the README)
bench: $(BENCH_STAMP)
	@for f in bench/*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

## docs: the API reference site from the docstrings (mkdocs + mkdocstrings, strict) into site/
docs: $(TEST_STAMP)
	$(PY) -m mkdocs build --strict

clean:
	rm -rf $(VENV) site .pytest_cache .mypy_cache .ruff_cache .hypothesis
