# The two commands the README starts with:
#   make run   — the service on the embedded SQLite store, with real outbreak data loaded
#   make test  — the whole test suite, against SQLite and a real Neo4j 5.26 started here
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DATASETS ?= $(abspath ../shared/datasets)
DEMO_DB ?= var/demo.db
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run demo-data test test-fast neo4j-start neo4j-stop bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

$(DEMO_DB): | $(STAMP)
	@mkdir -p $(dir $(DEMO_DB))
	$(BIN)/tracegraph import --store sqlite:///$(DEMO_DB).partial --dataset mers_korea_2015 --dir $(DATASETS)/mers_korea_2015 --quiet
	$(BIN)/tracegraph import --store sqlite:///$(DEMO_DB).partial --dataset ds4c_korea_covid19 --dir $(DATASETS)/ds4c_korea_covid19 --quiet
	$(BIN)/tracegraph import --store sqlite:///$(DEMO_DB).partial --dataset measles_hagelloch_1861 --dir $(DATASETS)/measles_hagelloch_1861 --quiet
	mv $(DEMO_DB).partial $(DEMO_DB)
	@rm -f $(DEMO_DB).partial-wal $(DEMO_DB).partial-shm

demo-data: $(DEMO_DB)

run: $(STAMP) $(DEMO_DB)
	TRACEGRAPH_STORE=sqlite:///$(DEMO_DB) $(BIN)/python -m api --host $(HOST) --port $(PORT) --demo-tokens

# Starts Neo4j (fresh), runs everything with Neo4j required, stops Neo4j whatever happened.
test: $(STAMP)
	scripts/neo4j/neo4j.sh start --fresh
	status=0; \
	TRACEGRAPH_TEST_NEO4J=required TRACEGRAPH_DATASETS=$(DATASETS) $(BIN)/pytest $(PYTEST_ARGS) || status=$$?; \
	scripts/neo4j/neo4j.sh stop; \
	exit $$status

# SQLite only, no server: for a quick loop while editing.
test-fast: $(STAMP)
	TRACEGRAPH_DATASETS=$(DATASETS) $(BIN)/pytest -q -m "not neo4j" $(PYTEST_ARGS)

neo4j-start:
	scripts/neo4j/neo4j.sh start

neo4j-stop:
	scripts/neo4j/neo4j.sh stop

bench: $(STAMP)
	$(BIN)/python scripts/bench/bench_core.py

clean:
	rm -rf $(VENV) var .pytest_cache
