VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: install serve test lint types openapi sandbox ci

$(BIN)/omni-sales:
	python3.11 -m venv $(VENV) && $(BIN)/pip install -e ".[dev]"

install: $(BIN)/omni-sales

serve: install
	$(BIN)/omni-sales serve

sandbox: install
	$(BIN)/omni-sales sandbox

test: install
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

types: install
	$(BIN)/mypy

openapi: install
	$(BIN)/omni-sales openapi -o openapi.yaml

ci:
	bash .ci/run
