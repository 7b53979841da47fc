# Two commands for a fresh clone: `make demo` and `make test`. Both build .venv themselves:
# `make demo` installs the core package only, `make test` adds the [dev] extra (every optional
# package, pytest, ruff). Either order works: each has its own stamp.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORE := $(VENV)/.installed-core
DEV := $(VENV)/.installed-dev

.PHONY: demo test lint format clean venv

venv: $(CORE)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(CORE): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(DEV): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@ $(CORE)

demo: $(CORE)
	$(BIN)/python -m dinolab.demo

test: $(DEV)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

lint: $(DEV)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(DEV)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) runs/demo
