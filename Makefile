# emailrouter: the two commands of the README, and the few a developer needs.
#   make demo   route the bundled demo mailboxes into a demo CRM; report in runs/<run-id>/
#   make test   install the system packages (Dovecot, Postfix, Chromium) when .ci/ has the script,
#               then run pytest

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Re-made whenever pyproject.toml (the one list of dependencies) changes.
STAMP := $(VENV)/.emailrouter-installed
SYSTEM_PACKAGES := .ci/system-packages.sh

.PHONY: help venv demo test bench lint clean distclean

help:
	@echo "make demo       run notebooks/04_run_routing_batch.ipynb on the demo data (into runs/)"
	@echo "make test       system packages (when .ci/system-packages.sh exists), then pytest"
	@echo "make bench      routing benchmark"
	@echo "make lint       ruff check and ruff format --check"
	@echo "make clean      caches and build output (runs/ and .venv stay; distclean removes .venv)"

venv: $(STAMP)

$(STAMP): pyproject.toml
	@echo "Setting up the Python environment in $(VENV)/ (first run: a few minutes; pip shows what it fetches)"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --progress-bar on -e '.[dev]'
	touch $@

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

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf build dist *.egg-info .pytest_cache .ruff_cache benchmarks/_work
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
