# Everything a fresh machine needs: `make demo` runs the main job, `make test` the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN := run

.PHONY: install demo walk lint test clean reliability

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,scale,bench]'
	touch $(STAMP)

install: $(STAMP)

# the main job: the whole 4,000-post programme in fast-forward, on a temporary Prefect server of its own;
# report in run/sim/report.html
demo: $(STAMP)
	rm -rf $(RUN)/sim
	$(BIN)/conum simulate --posts 4000 --seed 1 --report $(RUN)/sim/report.html

# a scripted walk of a few cases through every path, printing their histories
walk: $(STAMP)
	mkdir -p $(RUN)
	rm -f $(RUN)/walk.db $(RUN)/walk.db-wal $(RUN)/walk.db-shm
	$(BIN)/conum demo --db sqlite:///$(RUN)/walk.db

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy states flows reliability

# the suite in TEST_JOBS processes (pytest-xdist), each test file whole in one of them
TEST_JOBS ?= 2
test: lint
	$(BIN)/pytest -n $(TEST_JOBS) --dist loadfile

# fault campaigns (races, kills, database faults, fuzzed inputs) on SQLite and PostgreSQL: one table,
# written to docs/reliability.md
reliability: $(STAMP)
	$(BIN)/python -m reliability --jobs 8

clean:
	rm -rf $(VENV) $(RUN) .pytest_cache .mypy_cache .ruff_cache .hypothesis

.PHONY: up down

up: $(STAMP)
	bash scripts/up.sh

down:
	bash scripts/down.sh

# Prefect's scaled layout on this machine: Prefect and Conum on PostgreSQL, Redis, two API servers,
# the background services apart, two workers (docs/scaling.md)
.PHONY: up-scaled down-scaled bench

up-scaled: $(STAMP)
	bash scripts/up-scaled.sh

down-scaled:
	bash scripts/down.sh

# every figure beside its floor, written to bench/results.md (about ten minutes);
# BENCH_FULL=1 adds the sweep and the payment run at 1,000,000 cases (about ten minutes more)
bench: $(STAMP)
	$(BIN)/python bench/run.py $(if $(BENCH_FULL),--full)
