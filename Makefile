# The two commands of the quick start are `make run` and `make test`; both bootstrap .venv.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
RUN_STAMP := $(VENV)/.stamp-run
TEST_STAMP := $(VENV)/.stamp-test
JS_STAMP := tests/js/node_modules/.package-lock.json
BENCH_STAMP := $(VENV)/.stamp-bench

.PHONY: run test quick lint typecheck bench fuzz docs soak interop clean screenshot

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(RUN_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	touch $@

$(TEST_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

# The real AI SDK and AG-UI client parsers the relay adapters are tested with (pinned in tests/js).
$(JS_STAMP): tests/js/package.json tests/js/package-lock.json
	@command -v node >/dev/null && command -v npm >/dev/null || { apt-get update -qq && apt-get install -y -qq nodejs npm; } >/dev/null 2>&1 || echo "nodejs could not be installed: the client-parser tests will fail"
	cd tests/js && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(BENCH_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[test,bench]'
	touch $@

## run: the guided demo against the embedded simulator (no API key, no network)
run: $(RUN_STAMP)
	$(VENV)/bin/midstream demo

## test: the whole suite: pytest, ruff check, ruff format --check and mypy --strict on src/
test: $(TEST_STAMP) $(JS_STAMP)
	@command -v tmux >/dev/null || { apt-get update -qq && apt-get install -y -qq tmux; } >/dev/null 2>&1 || echo "tmux could not be installed: the terminal test will be skipped"
	@{ command -v redis-server && command -v curl; } >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server curl; } >/dev/null 2>&1 || echo "redis-server or curl could not be installed: the relay tests that need them will fail or be skipped"
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium; } >/dev/null 2>&1 || echo "chromium could not be installed: the web page tests will fail"
	$(PY) -m pytest
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy --strict src

## quick: the suite without the tests marked slow (the whole suite is `make test`, and what CI runs)
quick: $(TEST_STAMP) $(JS_STAMP)
	$(PY) -m pytest -m "not slow"

lint: $(TEST_STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

typecheck: $(TEST_STAMP)
	$(VENV)/bin/mypy --strict src

## bench: side-by-side benchmarks against named peers (minutes; figures in the README)
bench: $(BENCH_STAMP)
	@for f in bench/*.py; do case $$f in *soak_streams.py|*fleet_campaign.py) continue;; esac; echo "== $$f"; $(PY) $$f || exit 1; done

## soak: the load and fault campaigns (minutes): 1,000+ concurrent client streams, then the fleet of
## 2 serve + 3 workers on one redis-server with kill -9 (figures in the README)
soak: $(TEST_STAMP)
	@command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server; } >/dev/null 2>&1 || echo "redis-server could not be installed: the fleet campaign needs it"
	$(PY) bench/soak_streams.py
	$(PY) bench/fleet_campaign.py

## docs: the API reference site from the docstrings (mkdocs + mkdocstrings, strict) into site/
docs: $(TEST_STAMP)
	$(PY) -m mkdocs build --strict

## fuzz: every fuzz target (decoders, partial JSON, tool arguments, journal) FUZZ_SECONDS each; see fuzz/README.md
FUZZ_SECONDS ?= 60
fuzz: $(TEST_STAMP)
	@$(PY) -m pip install --quiet atheris >/dev/null 2>&1 || echo "atheris does not install here: fuzzing with hypothesis"
	$(PY) fuzz/run.py --seconds $(FUZZ_SECONDS)

## interop: pydantic-ai, openai-agents, LangChain, LiteLLM, ollama and the Vercel AI SDK against the
## simulator (pinned in interop/); fails when a cell of the matrix changes. Minutes; not part of `make test`
INTEROP_STAMP := interop/.venv/.stamp
INTEROP_JS_STAMP := interop/js/node_modules/.package-lock.json
$(INTEROP_STAMP): interop/requirements.txt
	$(PYTHON) -m venv interop/.venv
	interop/.venv/bin/pip install --quiet -r interop/requirements.txt
	touch $@
$(INTEROP_JS_STAMP): interop/js/package.json interop/js/package-lock.json
	@command -v node >/dev/null && command -v npm >/dev/null || { apt-get update -qq && apt-get install -y -qq nodejs npm; } >/dev/null 2>&1 || echo "nodejs could not be installed: the Vercel AI SDK row will fail"
	cd interop/js && npm ci --no-audit --no-fund --loglevel=error
	touch $@
interop: $(RUN_STAMP) $(INTEROP_STAMP) $(INTEROP_JS_STAMP)
	$(PY) interop/run.py

## screenshot: docs/web-page.png, the web page mid-stream (Debian's chromium, the embedded simulator)
screenshot: $(TEST_STAMP)
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium; } >/dev/null 2>&1
	$(PY) docs/web_screenshot.py docs/web-page.png

clean:
	rm -rf $(VENV) site .pytest_cache .mypy_cache .ruff_cache .hypothesis
