# Two commands for a fresh clone: `make run` and `make test`. Both create .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck pytest chat check bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m bot run

test: $(STAMP) lint typecheck check pytest

lint: $(STAMP)
	$(BIN)/ruff check bot tests bench
	$(BIN)/ruff format --check bot tests bench
	$(BIN)/hadolint Dockerfile

typecheck: $(STAMP)
	$(BIN)/mypy

check: $(STAMP)
	$(BIN)/python -m bot flows check flows
	$(BIN)/python -m bot flows test flows

pytest: $(STAMP)
	$(BIN)/python -m pytest

chat: $(STAMP)
	$(BIN)/python -m bot chat

bench: $(STAMP)
	$(BIN)/python bench/engine.py
	$(BIN)/python bench/throughput.py
	$(BIN)/python bench/leads.py
	$(BIN)/python bench/faq.py
	$(BIN)/python bench/staff_list.py
	$(BIN)/python bench/load.py
	$(BIN)/python bench/webchat.py
	$(BIN)/python bench/wechat.py
	$(BIN)/python bench/alerts.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
