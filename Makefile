# The two commands a newcomer needs: `make demo` and `make test`. Both set everything up first.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# Keep DDS on this machine (no discovery packets leave it) and away from other runs.
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST

.PHONY: setup demo test lint bench clean

setup:
	@bash scripts/setup.sh

demo: setup
	@ROS_DOMAIN_ID=$$(( RANDOM % 100 + 100 )) $(VENV)/bin/ocl-infer demo

test: setup lint
	$(PY) -m pytest

lint:
	$(PY) -m ruff check ocl_infer test bench setup.py launch

bench: setup
	$(VENV)/bin/ocl-infer bench --write docs/performance.md

clean:
	rm -rf $(VENV) .cache build install log .pytest_cache .ruff_cache
