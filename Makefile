# Pairwise — every command a contributor or operator needs. Only Python 3.11+ is assumed.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PROTOS := $(wildcard proto/pairwise/v1/*.proto)
RUN_DIR ?= run
BUF    := $(VENV)/bin/buf
LOCK   := requirements-dev.lock

.PHONY: install lock image-wheels proto proto-check proto-lint tools lint check test test-fast up down demo status loadtest selection-bench representative-bench many-causes export-bench manipulation-bench bench clean

# Installs are locked: requirements-*.lock pin every package with its hashes, so a release
# on PyPI never changes what a fresh clone installs or tests. The venv is rebuilt whenever a
# lock changes; the project itself goes in editable, built by the locked setuptools.
$(STAMP): $(LOCK) pyproject.toml
	$(PYTHON) -m venv --clear $(VENV)
	$(PY) -m pip install -q --require-hashes -r $(LOCK)
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	@# A dependency added to pyproject.toml but not to the lock fails here, not at import.
	$(PY) -m pip check
	touch $(STAMP)

install: $(STAMP)

# Re-resolves every dependency to its newest release allowed by pyproject.toml (generators
# and linters stay at their exact pins there), then regenerates the stubs with the locked
# grpcio-tools, so a lock change and the stubs it implies land in one commit.
# Only PyPI is asked: a hash it publishes matches whatever mirror serves the same file.
# `make lock LOCK_UPGRADE=` only adds what pyproject.toml gained, every other pin kept.
LOCK_UPGRADE ?= --upgrade
PIP_COMPILE := PIP_CONFIG_FILE=/dev/null $(VENV)/bin/pip-compile -q --strip-extras \
    --generate-hashes --allow-unsafe --index-url https://pypi.org/simple \
    --no-emit-index-url --no-emit-find-links $(LOCK_UPGRADE)
# Needs pip-tools only, not a venv matching pyproject.toml: a dependency just added there is
# not installed (nor locked) yet, and `make install` would refuse the venv for it.
lock:
	@test -x $(VENV)/bin/pip-compile || { $(PYTHON) -m venv $(VENV) && \
	    $(PY) -m pip install -q --require-hashes -r $(LOCK); }
	$(PIP_COMPILE) --extra dev -o requirements-dev.lock pyproject.toml
	$(PIP_COMPILE) -c requirements-dev.lock -o requirements-image.lock \
	    pyproject.toml requirements-image.in
	$(MAKE) install proto

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

# The public contract stays clean under buf's STANDARD lint rules (buf.yaml); the buf
# binary comes from PyPI (buf-bin, a dev dependency), so no npm is needed.
proto-lint: $(STAMP)
	$(BUF) lint

# System tools the tests use: docker-compose (Debian's 1.29) validates deploy/; Chromium and
# its WebDriver (Debian's chromium, chromium-driver) run the console's browser test. Installed
# only when missing and we are root; otherwise tests/e2e/test_deploy.py fails and
# tests/e2e/test_console_browser.py is skipped, each saying why.
tools:
	@command -v docker-compose >/dev/null 2>&1 || { \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	        echo "installing docker-compose (Debian package)"; \
	        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	            apt-get install -y -qq --no-install-recommends docker-compose; } >/dev/null 2>&1 \
	        || echo "WARNING: 'apt-get install docker-compose' failed (run it to see why)"; \
	    else \
	        echo "WARNING: docker-compose missing (install Debian's docker-compose package)"; \
	    fi; }
	@{ command -v chromium && command -v chromedriver; } >/dev/null 2>&1 || { \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	        echo "installing chromium and chromium-driver (Debian packages)"; \
	        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	            --no-install-recommends chromium chromium-driver; } >/dev/null 2>&1 \
	        || echo "WARNING: 'apt-get install chromium chromium-driver' failed (run it to see why)"; \
	    else \
	        echo "WARNING: chromium or chromedriver missing (install Debian's chromium and" \
	            "chromium-driver packages): the console's browser test is skipped"; \
	    fi; }

# The locked wheels the container image installs offline (deploy/Dockerfile), for its
# Debian Python 3.11 on x86_64; each checked against requirements-image.lock's hashes.
image-wheels: $(STAMP)
	$(PY) -m pip download -q --require-hashes -r requirements-image.lock -d deploy/wheels \
	    --only-binary=:all: --python-version 3.11 --platform manylinux2014_x86_64 \
	    --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64

lint: $(STAMP)
	$(PY) -m ruff check services tests docs/examples

check: lint
	$(PY) -m mypy services docs/examples

test: $(STAMP) tools proto-check proto-lint lint
	$(PY) -m pytest -q -p no:cacheprovider

test-fast: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider -m "not slow and not loadtest"



up: $(STAMP)
	$(PY) -m cluster up --run-dir $(RUN_DIR)

down: $(STAMP)
	$(PY) -m cluster down --run-dir $(RUN_DIR)

# Exit 3 (nothing runs) is an answer, not a failure, for make; a degraded cluster fails.
status: $(STAMP)
	@$(PY) -m cluster status --run-dir $(RUN_DIR) || [ $$? -eq 3 ]

demo: $(STAMP)
	$(PY) -m cluster demo --run-dir $(RUN_DIR)

# Simulated voters against the running cluster (`make up` first); flags go in LOADTEST_ARGS,
# e.g. make loadtest LOADTEST_ARGS="--mode bulk --duration 30" (python -m loadtest --help).
loadtest: $(STAMP)
	$(PY) -m loadtest $(LOADTEST_ARGS)

# Uniform against adaptive pair selection on a scratch cluster of its own (ports 50151-50153,
# 6398, console 8052): curves and figures under results/selection/; flags in SELECTION_ARGS, e.g.
# make selection-bench SELECTION_ARGS="--preset 34k" (python -m loadtest.selection --help).
selection-bench: $(STAMP)
	$(PY) -m loadtest.selection $(SELECTION_ARGS)

# Raw, representative and consensus rankings against a segmented population's true ranking,
# in simulation (no cluster): table on stdout, JSON and picture under results/representative/;
# flags in REPRESENTATIVE_ARGS (python -m loadtest.representative --help).
representative-bench: $(STAMP)
	$(PY) -m loadtest.representative $(REPRESENTATIVE_ARGS)

# One ranker with many causes (100,000 idle, 1,000 voted on for 60 s by default) on a scratch
# cluster of its own: connections, loads, CPU, the exact-count audit, as JSON under
# results/many_causes/; flags in MANY_CAUSES_ARGS (python -m loadtest.many_causes --help).
many-causes: $(STAMP)
	$(PY) -m loadtest.many_causes --out results/many_causes/report.json $(MANY_CAUSES_ARGS)

# An export of a large cause and its recompute, on a scratch cluster of its own (ports
# 50161-50163, 6396, console 8061): JSON under results/export/; flags in EXPORT_BENCH_ARGS, e.g.
# make export-bench EXPORT_BENCH_ARGS="--votes 7000000 --proposals 34000".
export-bench: $(STAMP)
	$(PY) -m loadtest.export_bench $(EXPORT_BENCH_ARGS)

# Attackers against a simulated consultation (1,000 proposals, 200,000 honest votes), with and
# without the defences, in process with the ranker's own counting, fit and detector: JSON
# under results/manipulation/; flags in MANIPULATION_ARGS, e.g. MANIPULATION_ARGS="--seeds 5"
# (python -m loadtest.manipulation --help).
manipulation-bench: $(STAMP)
	$(PY) -m loadtest.manipulation $(MANIPULATION_ARGS)

# Ranking engine benchmarks (docs/performance.md): tables on stdout, JSON under results/bench/
# e.g. make bench BENCH_ARGS="--sizes 1k,10k --repeats 5" (python -m bench --help).
bench: $(STAMP)
	$(PY) -m bench $(BENCH_ARGS)

clean: down
	rm -rf $(RUN_DIR) $(VENV)
