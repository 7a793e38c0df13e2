# Everything a fresh machine needs: `make demo` runs the main job, `make test` the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN := run

.PHONY: install demo lint test clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	mkdir -p $(RUN)
	rm -f $(RUN)/demo.db $(RUN)/demo.db-wal $(RUN)/demo.db-shm
	$(BIN)/conum demo --db sqlite:///$(RUN)/demo.db

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy states flows

test: lint
	$(BIN)/pytest

clean:
	rm -rf $(VENV) $(RUN) .pytest_cache .mypy_cache .ruff_cache .hypothesis

.PHONY: up down

up: $(STAMP)
	bash scripts/up.sh

down:
	bash scripts/down.sh
