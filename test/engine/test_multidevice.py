"""Several OpenCL devices at once (three PoCL pthread devices, in a subprocess because pyopencl enumerates
platforms once per process): identical outputs, every device used, order kept, failures and hangs lose no
frame, no device left gives DeviceError."""

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from onnx import helper
from onnx_models import convert, make_model

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    import numpy as np

    tmp = tmp_path_factory.mktemp("multi")
    rng = np.random.default_rng(2)
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("LeakyRelu", ["c1"], ["l1"], alpha=0.1),
             helper.make_node("MaxPool", ["l1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
             helper.make_node("Sigmoid", ["c2"], ["s2"]),
             helper.make_node("Concat", ["s2", "c2"], ["y"], axis=1)]
    shapes = {"w1": (16, 3, 3, 3), "b1": (16,), "w2": (10, 16, 3, 3), "b2": (10,)}
    inits = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
    model = convert(make_model(nodes, {"x": (1, 3, 64, 64)}, ["y"], inits), tmp / "m.nnef")
    env = dict(os.environ, POCL_DEVICES="pthread pthread pthread", ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               ROS_DOMAIN_ID=str(random.randint(1, 100)), PYTHONPATH=str(HERE.parent.parent))
    proc = subprocess.run([sys.executable, str(HERE / "multidevice_worker.py"), str(model)], env=env,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_three_devices_identical_and_all_used(report):
    assert len(report["devices_seen"]) == 3
    assert report["identical"] is True
    assert all(n > 0 for n in report["frames_per_device"]) and sum(report["frames_per_device"]) == 12
    assert len(report["tags"]) == 3 and all(t.startswith("cl:") for t in report["tags"])


def test_failed_device_loses_no_frame_and_returns(report):
    assert report["fault_identical"] is True
    assert report["fault_errors"] == [0, 1, 0]
    assert any("out of rotation" in e and "injected OpenCL failure" in e for e in report["fault_events"])
    assert any("back in rotation" in e for e in report["events_after_retry"])
    assert report["retried_frames"] > 0


def test_hung_device_frame_rerun_elsewhere(report):
    assert report["hang_identical"] is True
    assert report["hangs"][0] == 1 and sum(report["hangs"]) == 1


def test_no_device_left_is_a_clear_error(report):
    assert report["all_failed_error"] and "no OpenCL device left" in report["all_failed_error"]
    assert "device lost" in report["all_failed_error"]
    assert report["all_failed_wall_s"] < 20
    assert report["after_all_failed"] and "no OpenCL device left" in report["after_all_failed"]


def test_layer_pipeline_over_three_devices(report):
    assert report["pipeline_identical"] is True
    assert report["pipeline_stage_frames"] == [12, 12, 12]
    assert report["pipeline_device"].count(" > ") == 2
