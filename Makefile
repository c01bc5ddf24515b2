# The two commands a newcomer needs: `make demo` and `make test`. Both set everything up first.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# Keep DDS on this machine (no discovery packets leave it) and away from other runs.
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST

.PHONY: setup demo demo-multi test lint bench clean

setup:
	@bash scripts/setup.sh

demo: setup
	@ROS_DOMAIN_ID=$$(( RANDOM % 100 + 100 )) $(VENV)/bin/ocl-infer demo

# Two cameras at 20 Hz through one node (fair shares, per-camera report), with vehicle track ids.
demo-multi: setup
	@ROS_DOMAIN_ID=$$(( RANDOM % 100 + 100 )) $(VENV)/bin/ocl-infer demo --cameras 2 --rate 20 --tracking \
		--out out/demo-multi

test: setup lint
	$(PY) -m pytest

lint:
	$(PY) -m ruff check ocl_infer test bench setup.py launch

# YOLOv3-tiny (416 and 320) plus YOLOv8n and YOLO11n built from Ultralytics' architecture YAMLs (no weights are
# downloaded; bench/modern_models.py, docs/performance.md "Modern detectors"), all in one run and one table.
MODERN := .cache/models/modern
TORCH_VENV := .cache/torch-venv

bench: setup $(MODERN)/yolov8n/model.json $(MODERN)/yolo11n/model.json
	$(VENV)/bin/ocl-infer bench --model yolov3-tiny --model $(MODERN)/yolov8n --model $(MODERN)/yolo11n \
		--write docs/performance.md

# The torch venv only when a model is missing; torch==2.13.0 is the CPU wheel on this machine kind, onnxslim and
# onnxruntime are what Ultralytics' export wants.
$(MODERN)/%/model.json:
	test -x $(TORCH_VENV)/bin/python || { python3 -m venv $(TORCH_VENV) && \
		$(TORCH_VENV)/bin/pip install -q torch==2.13.0 ultralytics onnx onnxslim onnxruntime; }
	$(PY) bench/modern_models.py export --models $* --torch-python $(TORCH_VENV)/bin/python

clean:
	rm -rf $(VENV) .cache build install log .pytest_cache .ruff_cache
