# Pairwise — every command a contributor or operator needs. Only Python 3.11+ is assumed.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PROTOS := $(wildcard proto/pairwise/v1/*.proto)
RUN_DIR ?= run

.PHONY: install proto proto-check lint check test test-fast up down demo status clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Regenerate the committed stubs from proto/ (directory == proto package == Python package).
proto: $(STAMP)
	$(PY) -m grpc_tools.protoc -Iproto --python_out=services --pyi_out=services \
	    --grpc_python_out=services $(PROTOS)

# Fails when the committed stubs are not what the protos generate.
proto-check: $(STAMP)
	@rm -rf $(VENV)/proto-check && mkdir -p $(VENV)/proto-check
	@$(PY) -m grpc_tools.protoc -Iproto --python_out=$(VENV)/proto-check \
	    --pyi_out=$(VENV)/proto-check --grpc_python_out=$(VENV)/proto-check $(PROTOS)
	@for f in $(VENV)/proto-check/pairwise/v1/*; do \
	    cmp -s $$f services/pairwise/v1/$$(basename $$f) || { \
	        echo "stale stub services/pairwise/v1/$$(basename $$f): run 'make proto'"; exit 1; }; \
	done
	@echo "proto stubs match proto/"

lint: $(STAMP)
	$(PY) -m ruff check services tests

check: lint
	$(PY) -m mypy services

test: $(STAMP) proto-check lint
	$(PY) -m pytest -q -p no:cacheprovider

test-fast: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider -m "not slow"



up: $(STAMP)
	$(PY) -m cluster up --run-dir $(RUN_DIR)

down: $(STAMP)
	$(PY) -m cluster down --run-dir $(RUN_DIR)

status: $(STAMP)
	$(PY) -m cluster status --run-dir $(RUN_DIR)

demo: $(STAMP)
	$(PY) -m cluster demo --run-dir $(RUN_DIR)

clean: down
	rm -rf $(RUN_DIR) $(VENV)
