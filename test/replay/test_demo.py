"""`ocl-infer demo` end to end, shortened: footage → bag → node → outputs, report, plot and overlay video."""

import json
import subprocess
import sys

import cv2
import pytest
from rosbags.rosbag2 import Reader

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def test_demo_writes_every_output_it_announces(tmp_path):
    out = tmp_path / "demo"
    run = subprocess.run(
        [sys.executable, "-m", "ocl_infer.cli", "demo", "--frames", "12", "--rate", "4", "--out", str(out),
         "--backend", "onnxruntime"],
        capture_output=True, text=True, timeout=150, check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    for name in ("input_bag", "output_bag", "report.json", "latency.png", "overlay.avi"):
        assert str(out / name) in run.stdout
    report = json.loads((out / "report.json").read_text())
    f = report["frames"]
    assert f["sent"] == 12 == f["processed"] + f["dropped"] + f["errors"]
    with Reader(out / "output_bag") as reader:
        arrays = sum(c.msgcount for c in reader.connections if c.msgtype == "vision_msgs/msg/Detection2DArray")
    assert arrays == f["processed"]
    video = cv2.VideoCapture(str(out / "overlay.avi"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    ok, frame = video.read()
    video.release()
    assert ok and frame.shape == (576, 768, 3)
    assert cv2.imread(str(out / "latency.png")) is not None
    assert "Result" in run.stdout and "latency   p50" in run.stdout
