# The two commands (README): `make demo` runs the main job on the embedded default,
# `make test` runs the test suite. Each creates .venv if it is missing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint wheel-check clean

$(BIN)/sparsify: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

demo: $(BIN)/sparsify
	$(BIN)/python -m sparsify

test: $(BIN)/sparsify
	$(BIN)/python -m pytest -q

lint: $(BIN)/sparsify
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) build dist *.egg-info
