"""Live parameters (issue 15, point 3), set as `ros2 param set` does: through the node's parameter services,
from another process's node (rclpy's AsyncParameterClient). A valid change shows in the next frame's output;
an invalid one is refused with the reason and changes nothing; model, devices, precision and backend are
read-only and say so."""

from __future__ import annotations

from typing import Any

import cv2
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from ocl_infer_msgs.msg import FrameTiming
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2DArray

from ocl_infer.ros.image_conversion import bgr_to_image
from ocl_infer.ros.messages import msg_to_boxes, stamp_to_ns

pytestmark = [pytest.mark.ros, pytest.mark.slow]
WAIT_S = 30.0
RELIABLE = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
NODE = "/live/vd_live"


@pytest.fixture(scope="module")
def live(harness, start_node, backend):
    """The node, its parameter client, and a camera publisher, all matched."""
    node = start_node("vehicle_detector", {
        "backend": backend, "deadline_ms": 60000.0, "qos_reliability": "reliable", "expected_rate_hz": 0.0,
        "diagnostics_period_s": 0.2,
    }, "vd_live", ["-r", "__ns:=/live"])
    client = AsyncParameterClient(harness.node, NODE)
    assert client.wait_for_services(timeout_sec=WAIT_S + 60), "the node's parameter services"
    pub = harness.node.create_publisher(Image, "/live/image", RELIABLE)
    harness.subscribe(Detection2DArray, "/live/detections")
    harness.subscribe(FrameTiming, "/live/timing")
    harness.subscribe(Image, "/live/detections/overlay")
    harness.subscribe(DiagnosticArray, "/diagnostics")
    harness.wait_matched(pub)
    harness.wait_publishers("/live/detections", "/live/timing", "/live/detections/overlay")
    return node, client, pub


@pytest.fixture(scope="module")
def dog(data_dir):
    return cv2.imread(str(data_dir / "dog.jpg"))


@pytest.fixture(scope="module")
def reference(model_dir, backend):
    """The library's Detector; tests set its filters as the node should have set its own."""
    from ocl_infer.detection import Detector

    det = Detector(model=model_dir, backend=backend)
    try:
        yield det
    finally:
        det.close()


def call(harness, future: Any, what: str) -> Any:
    harness.wait_for(future.done, WAIT_S, what)
    return future.result()


def set_params(harness, client, atomically: bool = False, **values: Any) -> list[Any]:
    params = [Parameter(name, value=value) for name, value in values.items()]
    if atomically:
        return [call(harness, client.set_parameters_atomically(params), "set_parameters_atomically").result]
    return list(call(harness, client.set_parameters(params), "set_parameters").results)


def frame(harness, pub, image, age_ms: float = 0.0) -> tuple[Detection2DArray | None, FrameTiming, Image | None]:
    """Send one frame (stamped `age_ms` ago); its FrameTiming, and its detections and overlay when published."""
    msg = bgr_to_image(image)
    stamp = harness.node.get_clock().now().nanoseconds - int(age_ms * 1e6)
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
    pub.publish(msg)

    def mine(topic: str) -> list[Any]:
        return [m for m in harness.messages(topic) if stamp_to_ns(m.header.stamp) == stamp]

    timing = harness.wait_for(lambda: mine("/live/timing"), WAIT_S, "the frame's FrameTiming")[0]
    if timing.detections_published:
        harness.wait_for(lambda: mine("/live/detections"), WAIT_S, "the frame's detections")
    detections = mine("/live/detections")
    overlays = mine("/live/detections/overlay")
    return (detections[0] if detections else None), timing, (overlays[0] if overlays else None)


def same(msg: Detection2DArray, reference: list) -> bool:
    got = msg_to_boxes(msg)
    return len(got) == len(reference) and all(
        label == ref.label and score == pytest.approx(ref.score, abs=1e-5) for (label, score, _), ref in
        zip(got, reference, strict=True))


def test_read_only_and_live_parameters_are_described_as_such(harness, live):
    _, client, _ = live
    names = ["model", "devices", "precision", "backend", "deadline_ms", "score_threshold", "classes"]
    described = {d.name: d for d in call(harness, client.describe_parameters(names), "describe").descriptors}
    for name in ("model", "devices", "precision", "backend"):
        assert described[name].read_only and "read-only" in described[name].description, name
    for name in ("deadline_ms", "score_threshold", "classes"):
        assert not described[name].read_only and "live" in described[name].description, name
    result = set_params(harness, client, model="/elsewhere")[0]
    assert not result.successful and "read-only" in result.reason


def test_a_valid_change_holds_from_the_next_frame(harness, live, dog, reference):
    node, client, pub = live
    default, timing, overlay = frame(harness, pub, dog)
    assert same(default, reference.detect(dog)) and timing.deadline_ms == 60000.0 and overlay is not None
    scores = sorted(d.results[0].hypothesis.score for d in default.detections)
    threshold = (scores[0] + scores[-1]) / 2  # between the weakest and the strongest detection of this frame

    assert all(r.successful for r in set_params(harness, client, score_threshold=threshold, deadline_ms=50000.0))
    reference.score_threshold = threshold
    try:
        got, timing, _ = frame(harness, pub, dog)
        assert same(got, reference.detect(dog)) and 0 < len(got.detections) < len(default.detections)
        assert timing.deadline_ms == 50000.0
    finally:
        reference.score_threshold = 0.25

    assert set_params(harness, client, score_threshold=0.25, classes="car", nms_iou=0.3)[0].successful
    reference.class_ids = reference.description.class_ids(["car"])
    reference.nms_iou = 0.3
    try:
        got, _, _ = frame(harness, pub, dog)
        assert same(got, reference.detect(dog))
        assert {d.results[0].hypothesis.class_id for d in got.detections} == {"car"}
    finally:
        reference.class_ids = reference.description.class_ids(None)
        reference.nms_iou = 0.45

    # A 1 s budget with late_policy drop, and a frame aged so that it starts within the budget but the detector's
    # own time pushes it over: a miss, withheld. Overlay off: no overlay from then on.
    assert all(r.successful for r in set_params(harness, client, deadline_ms=1000.0, late_policy="drop",
                                                overlay=False, classes=""))
    got, timing, overlay = frame(harness, pub, dog, age_ms=1000.0 - timing.processing_ms / 2)
    assert timing.outcome == FrameTiming.OUTCOME_MISS and not timing.detections_published and got is None
    assert timing.deadline_ms == 1000.0 and "late_policy drop" in timing.detail
    assert set_params(harness, client, deadline_ms=60000.0, late_policy="publish")[0].successful
    got, timing, overlay = frame(harness, pub, dog)
    assert timing.outcome == FrameTiming.OUTCOME_PUBLISHED and got is not None and overlay is None
    assert set_params(harness, client, overlay=True)[0].successful
    got, _, overlay = frame(harness, pub, dog)
    assert overlay is not None

    # Diagnostics settings and the expected rate: the node's own report shows them at once.
    assert all(r.successful for r in set_params(harness, client, expected_rate_hz=4.0, diagnostics_window_s=2.0,
                                                stall_periods=50.0))

    def values() -> dict[str, str] | None:
        for arr in reversed(harness.messages("/diagnostics")):
            for st in arr.status:
                if st.name == f"{NODE}: camera /live/image":
                    return {kv.key: kv.value for kv in st.values}
        return None

    harness.wait_for(lambda: (v := values()) and v["expected_rate_hz"] == "4.00" and v["window_s"] == "2.00",
                     WAIT_S, "the new settings in /diagnostics")
    assert set_params(harness, client, expected_rate_hz=0.0)[0].successful
    assert "parameters changed: " in node.log()


@pytest.mark.parametrize(("values", "reason"), [
    ({"late_policy": "later"}, "parameter late_policy: 'later' is not one of publish, drop"),
    ({"classes": "car, spaceship"}, "parameter classes: unknown class 'spaceship'"),
    ({"score_threshold": 1.5}, "score_threshold"),
    ({"deadline_ms": 50}, "type"),  # an integer for a double: ROS's own type check
    ({"backend": "onnxruntime"}, "read-only"),
])
def test_an_invalid_change_is_refused_with_the_reason_and_changes_nothing(harness, live, dog, values, reason):
    _, client, pub = live
    result = set_params(harness, client, **values)[0]
    assert not result.successful and reason in result.reason, result.reason
    got = call(harness, client.get_parameters(list(values)), "get_parameters").values
    assert [v.string_value or v.double_value for v in got] != list(values.values())
    _, timing, _ = frame(harness, pub, dog)
    assert timing.outcome == FrameTiming.OUTCOME_PUBLISHED and timing.deadline_ms == 60000.0


def test_an_atomic_set_with_one_bad_value_applies_none(harness, live, dog):
    _, client, pub = live
    result = set_params(harness, client, atomically=True, deadline_ms=123.0, late_policy="sometimes")[0]
    assert not result.successful and "late_policy" in result.reason
    got = call(harness, client.get_parameters(["deadline_ms"]), "get_parameters").values[0]
    assert got.double_value == 60000.0
    _, timing, _ = frame(harness, pub, dog)
    assert timing.deadline_ms == 60000.0
