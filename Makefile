# emailrouter: the two commands of the README, and the few a developer needs.
#   make demo   route the bundled demo mailboxes into a demo CRM; report in runs/<run-id>/
#   make test   install the system packages (Dovecot, Postfix, Chromium) when .ci/ has the script,
#               then run pytest

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# pyproject.toml is the one list of dependency ranges; requirements.lock pins them with hashes
# (make lock). The environment is re-made whenever either changes.
STAMP := $(VENV)/.emailrouter-installed
LOCK := requirements.lock
SYSTEM_PACKAGES := .ci/system-packages.sh

.PHONY: help venv lock demo test bench fuzz lint clean distclean

help:
	@echo "make demo       run notebooks/04_run_routing_batch.ipynb on the demo data (into runs/)"
	@echo "make test       system packages (when .ci/system-packages.sh exists), then pytest"
	@echo "make bench      routing and start-up benchmarks"
	@echo "make fuzz       long fuzz run (FUZZ_CASES=50000 FUZZ_SEED=1), then the SIGKILL trials"
	@echo "make lint       ruff check and ruff format --check"
	@echo "make lock       re-pin requirements.lock from pyproject.toml's ranges (newest that fit)"
	@echo "make clean      caches and build output (runs/ and .venv stay; distclean removes .venv)"

venv: $(STAMP)

# The pinned, hash-checked set first, then this project itself without dependencies: an install
# that cannot fetch exactly what the lock names fails instead of drifting.
$(STAMP): pyproject.toml $(LOCK)
	@echo "Setting up the Python environment in $(VENV)/ (first run: a few minutes; pip shows what it fetches)"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --progress-bar on --require-hashes -r $(LOCK)
	$(PY) -m pip install --progress-bar on --no-deps -e .
	touch $@

# Every Python the project supports, every platform: uv's universal resolution, with hashes.
lock: $(STAMP)
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 \
		--generate-hashes --quiet -o $(LOCK)

demo: $(STAMP)
	$(PY) -m emailrouter_lib.runner notebooks/04_run_routing_batch.ipynb \
		-f params/04_run_routing_batch.demo.yaml

# System packages first: on a bare Debian they include python3-venv, which the venv needs.
test:
	if [ -f $(SYSTEM_PACKAGES) ]; then bash $(SYSTEM_PACKAGES); fi
	$(MAKE) --no-print-directory venv
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) benchmarks/routing.py
	$(PY) benchmarks/startup.py

# Issue 12's property over mutated corpus messages, at scale; reproducers in benchmarks/_work/.
FUZZ_CASES ?= 50000
FUZZ_SEED ?= 1
fuzz: $(STAMP)
	$(PY) benchmarks/fuzz.py --cases $(FUZZ_CASES) --seed $(FUZZ_SEED)
	$(PY) benchmarks/sigkill.py --seed $(FUZZ_SEED)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf build dist *.egg-info .pytest_cache .ruff_cache benchmarks/_work
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
