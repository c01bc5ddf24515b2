"""Reliability test set-up: the ROS test helpers (node subprocess, harness node) reused from test/ros.

The top-level conftest has already kept DDS on loopback with a random domain id; child processes inherit it.
Every node started here is stopped in a fixture finaliser whatever the test did.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ocl_infer.child_process import ChildProcess

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # model_cases, frame_cases, ... beside the tests

_spec = importlib.util.spec_from_file_location("ocl_infer_ros_test_helpers", ROOT / "test" / "ros" / "conftest.py")
ros_helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ros_helpers)
Harness = ros_helpers.Harness
SMALL_MODEL = "yolov3-tiny-320"  # prepared by `make setup` next to the default 416 one


@pytest.fixture(scope="session")
def small_model_dir(model_dir) -> Path:
    path = model_dir.parent / SMALL_MODEL
    if not (path / "model.json").is_file():
        pytest.fail(f"{path} not prepared: run `make setup` (a missing model is a failure, as for model_dir)")
    return path


start_node = ros_helpers.start_node  # the same fixture as test/ros: NodeProcess children, stopped at the end


@pytest.fixture(scope="module")
def harness() -> Iterator[Any]:
    h = Harness("ocl_infer_reliability_harness")
    try:
        yield h
    finally:
        h.close()


@pytest.fixture
def start_child(tmp_path) -> Iterator[Callable[..., ChildProcess]]:
    """start_child(cmd, name, env) -> ChildProcess; all stopped when the test ends."""
    started: list[ChildProcess] = []

    def start(cmd: list[str], name: str, env: dict[str, str] | None = None) -> ChildProcess:
        # Own process group: the final SIGKILL also takes what the child started.
        child = ChildProcess(cmd, tmp_path / f"{name}.log", env=ros_helpers.child_environment(env), cwd=ROOT,
                             new_session=True, stdin=None)
        started.append(child)
        return child

    try:
        yield start
    finally:
        for child in started:
            child.stop(grace_s=15.0)
