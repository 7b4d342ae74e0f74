# The two set-up commands of the README. Each creates .venv (Python 3.11) when missing and installs what it needs.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test install lint

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1

$(VENV)/.installed: $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/pip install -q -e '.[test,postgres]'
	$(BIN)/pip install -q --no-deps resemblyzer==0.1.4  # voice-only reference; see setup.cfg for why --no-deps
	touch $@

install: $(VENV)/.installed

run: install
	$(BIN)/evalkit run

# ruff (rules in pyproject.toml), mypy on generator/ evalkit/ reports/, the import contracts (pyproject.toml); the
# same checks as .pre-commit-config.yaml. Every finding fails.
lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: install
	CI=$${CI:-} $(BIN)/python -m pytest -m "slow or not slow" $(PYTEST_ARGS)
