"""An exported ONNX detector through the node, as a user brings one: `ocl-infer prepare-model --onnx` on a small
YOLOv8-style graph (raw head) and on an end-to-end (YOLOv10-style) one, each folder given to vehicle_detector
as its `model` parameter unchanged; the node's detections on a real frame equal the library's on that folder."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2DArray

from ocl_infer.ros.image_conversion import bgr_to_image
from ocl_infer.ros.messages import msg_to_boxes, stamp_to_ns

pytestmark = [pytest.mark.ros, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
RELIABLE = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
NAMES = ["person", "bicycle", "car"]  # the default vehicle classes the node reports: bicycle, car
WAIT_S = 60.0


def _yolo_onnx() -> object:
    """test/detection/yolo_onnx.py (the graph builder the detection tests use), loaded by path."""
    spec = importlib.util.spec_from_file_location("yolo_onnx", ROOT / "test" / "detection" / "yolo_onnx.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("onnx_models")
    build = _yolo_onnx().yolo_onnx  # type: ignore[attr-defined]
    out = {}
    for kind in ("raw", "e2e"):
        src = build(tmp / f"{kind}.onnx", NAMES, end_to_end=kind == "e2e")
        out[kind] = tmp / f"{kind}-model"
        res = subprocess.run([sys.executable, "-m", "ocl_infer.cli", "prepare-model", "--onnx", str(src), "-o",
                              str(out[kind])], capture_output=True, text=True, timeout=300, env=dict(os.environ),
                             check=False)
        assert res.returncode == 0, res.stderr
    return out


@pytest.mark.parametrize("kind", ["raw", "e2e"])
def test_the_node_runs_a_prepared_onnx_folder_like_the_library(kind, folders, start_node, harness, backend,
                                                              data_dir) -> None:
    from ocl_infer.detection import Detector

    frame = cv2.imread(str(data_dir / "dog.jpg"))
    params = {"backend": backend, "model": str(folders[kind]), "score_threshold": 0.5,
              "qos_reliability": "reliable", "deadline_ms": 600000.0, "expected_rate_hz": 0.0}
    node = start_node("vehicle_detector", params, f"vd_onnx_{kind}", ["-r", f"__ns:=/onnx_{kind}"])
    out = harness.subscribe(Detection2DArray, f"/onnx_{kind}/detections", RELIABLE)
    pub = harness.node.create_publisher(Image, f"/onnx_{kind}/image", RELIABLE)
    harness.wait_matched(pub)
    harness.wait_publishers(f"/onnx_{kind}/detections")
    msg = bgr_to_image(frame)
    msg.header.stamp = harness.now_msg()
    msg.header.frame_id = "front"
    pub.publish(msg)
    stamp = stamp_to_ns(msg.header.stamp)
    got = harness.wait_for(lambda: [m for m in list(out) if stamp_to_ns(m.header.stamp) == stamp], WAIT_S,
                           f"detections from the {kind} ONNX model")[0]
    with Detector(folders[kind], backend=backend, score_threshold=0.5) as det:
        want = det.detect(frame)
    boxes = msg_to_boxes(got)
    assert len(boxes) == len(want) > 0, node.log()[-2000:]
    assert {label for label, _, _ in boxes} <= {"bicycle", "car"}
    for (label, score, box), ref in zip(boxes, want, strict=True):
        assert label == ref.label and score == pytest.approx(ref.score, abs=1e-5)
        np.testing.assert_allclose(box, ref.box, atol=1e-3)
    assert got.header.frame_id == "front"
