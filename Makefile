# One command each: `make test` (lint, types, the whole suite) and `make demo`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install test lint pytest demo bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install -q -e '.[test,dev]'

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

pytest: install
	$(BIN)/python -m pytest -q

test: lint pytest

# The quickstart service on an embedded broker, fed sample orders; Ctrl-C stops it.
# Options: make demo DEMO_ARGS="--duration 10 --rate 500" (or --bootstrap-servers HOST:9092).
demo: install
	$(BIN)/evkafka demo $(DEMO_ARGS)

# evkafka against raw aiokafka and FastStream on an embedded broker (about 5 minutes);
# results in bench/results/. Options: make bench BENCH_ARGS="--rounds 3" (or --scaling, --smoke).
bench: install
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
