"""deadline_monitor watching a pipeline from outside, and `ocl-infer launch` running both nodes in one process."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import cv2
import pytest
import yaml
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2DArray

from ocl_infer.child_process import ChildProcess
from ocl_infer.ros.image_conversion import bgr_to_image
from ocl_infer.ros.messages import stamp_to_ns

pytestmark = [pytest.mark.ros, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 30.0
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


def pair_status(harness, suffix: str) -> dict[str, str] | None:
    """Values of the newest /diagnostics status whose name ends with `suffix`."""
    for arr in reversed(harness.messages("/diagnostics")):
        for st in arr.status:
            if st.name.endswith(suffix):
                return {"level": str(st.level[0]), "message": st.message, **{kv.key: kv.value for kv in st.values}}
    return None


def test_monitor_matches_by_stamp_and_counts_misses_and_unanswered(harness, start_node):
    harness.subscribe(DiagnosticArray, "/diagnostics")
    monitor = start_node("deadline_monitor", {
        "pairs": ["/mon/image -> /mon/detections"], "budget_ms": 100.0, "expire_s": 0.5,
        "diagnostics_period_s": 0.2, "window_s": 30.0,
    }, "monitor")
    images = harness.node.create_publisher(Image, "/mon/image", RELIABLE)
    outputs = harness.node.create_publisher(Detection2DArray, "/mon/detections", RELIABLE)
    harness.wait_matched(images)
    harness.wait_matched(outputs)
    frame = bgr_to_image(cv2.imread(str(ROOT / ".cache" / "data" / "dog.jpg")))
    clock = harness.node.get_clock()
    # 5 answered at once, 3 answered with stamps 300 ms old (over the 100 ms budget), 2 never answered.
    for i in range(10):
        age_ns = 300_000_000 if 5 <= i < 8 else 0
        frame.header.stamp.sec, frame.header.stamp.nanosec = divmod(clock.now().nanoseconds - age_ns, 10**9)
        images.publish(frame)
        time.sleep(0.05)
        if i < 8:
            outputs.publish(Detection2DArray(header=frame.header))
        time.sleep(0.05)

    def done() -> dict[str, str] | None:
        status = pair_status(harness, "/mon/image -> /mon/detections")
        return status if status and status["matched"] == "8" and status["unanswered"] == "2" else None

    status = harness.wait_for(done, WAIT_S, "8 matched and 2 unanswered in the monitor's diagnostics")
    assert status["inputs"] == "10" and status["outputs"] == "8" and status["misses"] == "3"
    assert float(status["latency_max_ms"]) >= 300.0 > float(status["latency_p50_ms"])
    assert status["level"] == "1"  # WARN: misses and unanswered inputs in the window
    assert monitor.alive()


@pytest.fixture(scope="module")
def launched(tmp_path_factory, backend):
    """`ocl-infer launch --params <multi_camera.yaml with this run's backend>` as a user runs it."""
    sections = yaml.safe_load((ROOT / "config" / "multi_camera.yaml").read_text())
    sections["/**/vehicle_detector"]["ros__parameters"].update(backend=backend, deadline_ms=60000.0)
    params = tmp_path_factory.mktemp("launch") / "multi.yaml"
    params.write_text(yaml.safe_dump(sections))
    with ChildProcess([str(Path(sys.executable).parent / "ocl-infer"), "launch", "--params", str(params)],
                      params.with_suffix(".log"), env=dict(os.environ, PYTHONUNBUFFERED="1"), stdin=None) as proc:
        yield proc


def test_launch_runs_detector_and_monitor_in_one_process(harness, launched, data_dir):
    harness.subscribe(DiagnosticArray, "/diagnostics")
    front = harness.subscribe(Detection2DArray, "/front/detections")
    pub = harness.node.create_publisher(Image, "/front/image_raw", QoSProfile(
        depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
    harness.wait_matched(pub)
    harness.wait_publishers("/front/detections")
    frame = cv2.imread(str(data_dir / "dog.jpg"))
    sent = None
    for _ in range(3):
        msg = bgr_to_image(frame)
        msg.header.stamp = harness.now_msg()
        msg.header.frame_id = "front"
        pub.publish(msg)
        try:
            harness.wait_for(lambda m=msg: [d for d in front if d.header == m.header], 10.0, "front detections")
            sent = msg
            break
        except AssertionError:
            continue
    assert sent is not None, "no detections from the launched node"
    labels = {d.results[0].hypothesis.class_id for d in next(d for d in front if d.header == sent.header).detections}
    assert "car" in labels
    # The monitor subscribes once the graph shows both topics: keep the camera going until it has matched one.
    status = None
    end = time.monotonic() + WAIT_S
    while status is None and time.monotonic() < end:
        msg = bgr_to_image(frame)
        msg.header.stamp = harness.now_msg()
        pub.publish(msg)
        time.sleep(1.0)
        current = pair_status(harness, "/front/image_raw -> /front/detections")
        status = current if current and int(current["matched"]) >= 1 else None
    assert status is not None, "the deadline_monitor never matched a front detection to its image"
    assert float(status["latency_max_ms"]) > 0
    assert pair_status(harness, "camera /rear/image_raw") is not None  # the second camera is served too
    assert launched.alive()
    launched.send_signal(signal.SIGINT)
    assert launched.wait(15) == 0
    assert stamp_to_ns(sent.header.stamp) > 0
