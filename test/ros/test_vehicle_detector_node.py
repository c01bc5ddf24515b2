"""The vehicle_detector node as a user runs it: a child process, real DDS on loopback, real frames and model.

Detections are compared with the library (`Detector` on the same frame, in this process). Deadline behaviour is
checked through what the node itself reports (FrameTiming, /diagnostics), never through wall-clock asserts.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import cv2
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from ocl_infer_msgs.msg import FrameTiming
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from vision_msgs.msg import Detection2DArray

from ocl_infer.ros.image_conversion import bgr_to_compressed, bgr_to_image
from ocl_infer.ros.messages import msg_to_boxes, stamp_to_ns

pytestmark = [pytest.mark.ros, pytest.mark.slow]
BEST_EFFORT = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
RELIABLE = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
WAIT_S = 30.0  # generous: the machine is shared, the first frame may build kernels


@pytest.fixture(scope="module")
def frames(data_dir) -> dict[str, np.ndarray]:
    return {name: cv2.imread(str(data_dir / f"{name}.jpg")) for name in ("dog", "horses", "person")}


@pytest.fixture(scope="module")
def detector(model_dir, backend):
    from ocl_infer.detection import Detector

    det = Detector(model=model_dir, backend=backend)
    try:
        yield det
    finally:
        det.close()


@pytest.fixture(scope="module")
def multi_node(start_node, backend):
    """Two cameras in one node, slow expected rate so that stall detection is quick to see."""
    return start_node("vehicle_detector", {
        "backend": backend,
        "image_topics": ["cam_a/image", "cam_b/image"],
        "deadline_ms": 60000.0,
        "expected_rate_hz": 2.0,
        "input_deadline_tolerance": 1.2,
        "stall_periods": 4.0,
        "diagnostics_window_s": 2.0,
        "diagnostics_period_s": 0.5,
    }, "vd_multi")


@pytest.fixture(scope="module")
def compressed_node(start_node, backend):
    """Defaults except the input type: topics image/compressed -> detections."""
    return start_node("vehicle_detector", {"backend": backend, "input_type": "compressed"}, "vd_compressed")


@pytest.fixture(scope="module")
def drop_node(start_node, backend):
    """late_policy drop, reliable input, in its own namespace."""
    return start_node("vehicle_detector", {
        "backend": backend, "deadline_ms": 1000.0, "late_policy": "drop", "qos_reliability": "reliable",
        "expected_rate_hz": 0.0,
    }, "vd_drop", ["-r", "__ns:=/late"])


@pytest.fixture(scope="module")
def overload_node(start_node, backend):
    return start_node("vehicle_detector", {
        "backend": backend, "deadline_ms": 600000.0, "qos_reliability": "reliable", "expected_rate_hz": 0.0,
    }, "vd_overload", ["-r", "__ns:=/overload"])


def stamped(harness, msg: Any, frame_id: str, age_ms: float = 0.0) -> Any:
    now = harness.node.get_clock().now().nanoseconds - int(age_ms * 1e6)
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(now, 1_000_000_000)
    msg.header.frame_id = frame_id
    return msg


def assert_same_detections(msg: Detection2DArray, reference: list) -> None:
    got = msg_to_boxes(msg)
    assert len(got) == len(reference) > 0
    for (label, score, box), ref in zip(got, reference, strict=True):
        assert label == ref.label
        assert score == pytest.approx(ref.score, abs=1e-5)
        np.testing.assert_allclose(box, ref.box, atol=1e-3)
    for det in msg.detections:
        assert det.header == msg.header


def test_raw_frames_give_the_library_detections_on_each_camera(harness, multi_node, frames, detector):
    out_a = harness.subscribe(Detection2DArray, "/cam_a/detections")
    out_b = harness.subscribe(Detection2DArray, "/cam_b/detections")
    timing_a = harness.subscribe(FrameTiming, "/cam_a/timing")
    pub_a = harness.node.create_publisher(Image, "/cam_a/image", BEST_EFFORT)
    pub_b = harness.node.create_publisher(Image, "/cam_b/image", BEST_EFFORT)
    harness.wait_matched(pub_a)
    harness.wait_matched(pub_b)
    harness.wait_publishers("/cam_a/detections", "/cam_b/detections", "/cam_a/timing")

    sent, got = harness.send_and_wait(pub_a, lambda: stamped(harness, bgr_to_image(frames["dog"]), "front"), out_a)
    assert got.header.stamp == sent.header.stamp and got.header.frame_id == "front"
    assert_same_detections(got, detector.detect(frames["dog"]))
    assert {d.results[0].hypothesis.class_id for d in got.detections} >= {"car", "bicycle"}

    # Camera b: rgb8 with row padding, through the same shared detector.
    _, got_b = harness.send_and_wait(
        pub_b, lambda: stamped(harness, bgr_to_image(frames["dog"][:, ::-1].copy(), "rgb8", padding=8), "rear"),
        out_b)
    assert got_b.header.frame_id == "rear"
    assert_same_detections(got_b, detector.detect(np.ascontiguousarray(frames["dog"][:, ::-1])))

    timing = harness.wait_for(lambda: [t for t in harness.messages("/cam_a/timing")
                                       if t.header.stamp == sent.header.stamp], WAIT_S, "FrameTiming")[0]
    assert timing_a  # the live list saw it too
    assert timing.outcome == FrameTiming.OUTCOME_PUBLISHED and timing.detections_published
    assert timing.camera_topic == "/cam_a/image" and timing.header.frame_id == "front"
    assert timing.detection_count == len(got.detections)
    assert timing.device
    to_ns = stamp_to_ns
    assert to_ns(timing.header.stamp) <= to_ns(timing.received) <= to_ns(timing.started) <= to_ns(
        timing.inferred) <= to_ns(timing.published)
    assert timing.latency_ms == pytest.approx((to_ns(timing.published) - to_ns(timing.header.stamp)) / 1e6, abs=1e-3)
    assert timing.processing_ms == pytest.approx((to_ns(timing.published) - to_ns(timing.started)) / 1e6, abs=1e-3)
    assert timing.inference_ms > 0 and timing.deadline_ms == 60000.0
    # Our publishers offer no deadline: input_deadline auto subscribed without one from the start (the watchdog
    # counts gaps), so neither side saw an incompatible QoS.
    assert "incompatible" not in multi_node.log() and "does not match" not in multi_node.log()


def test_malformed_images_are_counted_and_logged_and_the_node_lives(harness, multi_node, frames):
    timing = harness.subscribe(FrameTiming, "/cam_b/timing")
    diags = harness.subscribe(DiagnosticArray, "/diagnostics")
    pub = harness.node.create_publisher(Image, "/cam_b/image", RELIABLE)
    harness.wait_matched(pub)
    good = bgr_to_image(frames["horses"])

    def bad(kind: str) -> Image:
        msg = bgr_to_image(frames["horses"])
        if kind == "step":
            msg.step = msg.step + 5  # data no longer step x height
        elif kind == "encoding":
            msg.encoding = "32FC7"
        else:
            msg.height, msg.width, msg.step, msg.data = 0, 0, 0, b""
        return msg

    expected = {"step": "does not match step", "encoding": "unsupported image encoding", "zero": "empty image"}
    for kind, words in expected.items():
        _, record = harness.send_and_wait(pub, lambda k=kind: stamped(harness, bad(k), f"bad-{k}"), timing)
        assert record.outcome == FrameTiming.OUTCOME_DECODE_ERROR, record
        assert words in record.detail and "/cam_b/image" in record.detail
        assert not record.detections_published
    assert multi_node.alive()
    _, record = harness.send_and_wait(pub, lambda: stamped(harness, good, "good"), timing)
    assert record.outcome == FrameTiming.OUTCOME_PUBLISHED
    assert "bad frame" in harness.wait_for(lambda: "bad frame" in multi_node.log() and multi_node.log(), WAIT_S,
                                           "the bad-frame log line")

    def decode_errors() -> int:
        for arr in reversed(harness.messages("/diagnostics")):
            for st in arr.status:
                if st.name.endswith("camera /cam_b/image"):
                    return int({kv.key: kv.value for kv in st.values}["decode_errors_total"])
        return 0

    assert harness.wait_for(lambda: decode_errors() >= 3, WAIT_S, "decode errors in /diagnostics")
    assert diags


def camera_statuses(harness, topic: str) -> list[tuple[int, int, dict[str, str], str]]:
    """(stamp ns, level, values, message) of every /diagnostics status for one camera, in arrival order."""
    out = []
    for arr in harness.messages("/diagnostics"):
        for st in arr.status:
            if st.name.endswith(f"camera {topic}"):
                out.append((stamp_to_ns(arr.header.stamp), st.level[0], {kv.key: kv.value for kv in st.values},
                            st.message))
    return out


def test_a_camera_that_stops_warns_within_two_periods_then_errors_and_recovers(harness, multi_node, frames):
    harness.subscribe(DiagnosticArray, "/diagnostics")
    pub = harness.node.create_publisher(Image, "/cam_a/image", BEST_EFFORT)
    harness.wait_matched(pub)
    small = cv2.resize(frames["person"], (320, 240))
    period = 0.5  # expected_rate_hz 2
    stop = threading.Event()

    def camera() -> None:
        while not stop.is_set():
            pub.publish(stamped(harness, bgr_to_image(small), "front"))
            stop.wait(period)

    def level_after(t0: int, levels: set[int]) -> Any:
        return [s for s in camera_statuses(harness, "/cam_a/image") if s[0] > t0 and s[1] in levels]

    feeder = threading.Thread(target=camera, daemon=True)
    feeder.start()
    try:
        start = harness.node.get_clock().now().nanoseconds
        harness.wait_for(lambda: level_after(start, {0}), WAIT_S, "OK while the camera runs")
    finally:
        stop.set()
        feeder.join()
    stopped = harness.node.get_clock().now().nanoseconds
    warn = harness.wait_for(lambda: level_after(stopped, {1, 2}), WAIT_S, "WARN after the camera stopped")[0]
    # The node's own measure: how long the camera had been silent when it first said so.
    assert float(warn[2]["since_last_frame_s"]) <= 2 * period, warn
    error = harness.wait_for(lambda: level_after(stopped, {2}), WAIT_S, "ERROR after stall_periods")[0]
    assert "no frame for" in error[3]
    assert int(error[2]["input_gaps_total"]) >= 1

    stop.clear()
    feeder = threading.Thread(target=camera, daemon=True)
    feeder.start()
    try:
        resumed = harness.node.get_clock().now().nanoseconds
        ok = harness.wait_for(lambda: level_after(resumed, {0}), WAIT_S, "OK after the camera resumed")[0]
    finally:
        stop.set()
        feeder.join()
    assert float(ok[2]["input_rate_hz"]) > 0


def test_compressed_input_gives_the_library_detections_and_an_overlay(harness, compressed_node, frames, detector):
    out = harness.subscribe(Detection2DArray, "/detections")
    overlay = harness.subscribe(Image, "/detections/overlay")
    pub = harness.node.create_publisher(CompressedImage, "/image/compressed", BEST_EFFORT)
    harness.wait_matched(pub)
    harness.wait_publishers("/detections", "/detections/overlay")
    sent, got = harness.send_and_wait(pub, lambda: stamped(harness, bgr_to_compressed(frames["dog"]), "cam"), out)
    decoded = cv2.imdecode(np.frombuffer(bytes(sent.data), np.uint8), cv2.IMREAD_COLOR)
    assert got.header == sent.header
    assert_same_detections(got, detector.detect(decoded))
    # The overlay goes out only while the node sees a subscriber: resend until its side has matched ours too.
    sent, img = harness.send_and_wait(pub, lambda: stamped(harness, bgr_to_compressed(frames["dog"]), "cam"),
                              overlay, tries=5)
    assert overlay and (img.width, img.height, img.encoding) == (decoded.shape[1], decoded.shape[0], "bgr8")


def test_a_stale_frame_is_dropped_unprocessed(harness, compressed_node, frames):
    timing = harness.subscribe(FrameTiming, "/timing")
    out = harness.subscribe(Detection2DArray, "/detections")
    pub = harness.node.create_publisher(CompressedImage, "/image/compressed", BEST_EFFORT)
    harness.wait_matched(pub)
    sent, record = harness.send_and_wait(
        pub, lambda: stamped(harness, bgr_to_compressed(frames["dog"]), "cam", age_ms=5000.0), timing)
    assert record.outcome == FrameTiming.OUTCOME_STALE_DROP
    assert record.age_at_start_ms > 5000.0 and record.inference_ms == 0.0
    assert stamp_to_ns(record.inferred) == 0 and not record.detections_published
    time.sleep(0.5)  # a Detection2DArray would have been published right after the timing record
    assert not [m for m in out if m.header.stamp == sent.header.stamp]


def test_a_late_frame_is_a_miss_and_not_published_with_late_policy_drop(harness, drop_node, frames):
    timing = harness.subscribe(FrameTiming, "/late/timing")
    out = harness.subscribe(Detection2DArray, "/late/detections")
    pub = harness.node.create_publisher(Image, "/late/image", RELIABLE)
    harness.wait_matched(pub)
    _, first = harness.send_and_wait(pub, lambda: stamped(harness, bgr_to_image(frames["dog"]), "cam"), timing)
    assert first.outcome == FrameTiming.OUTCOME_PUBLISHED
    # Aged so that it starts inside the budget but the detector's own time pushes it over.
    age = 1000.0 - first.processing_ms / 2
    sent, record = harness.send_and_wait(
        pub, lambda: stamped(harness, bgr_to_image(frames["dog"]), "cam", age_ms=age), timing)
    assert record.outcome == FrameTiming.OUTCOME_MISS, record.detail
    assert record.latency_ms > 1000.0 and not record.detections_published and record.detection_count > 0
    time.sleep(0.5)
    assert not [m for m in out if m.header.stamp == sent.header.stamp]


def test_frames_at_four_times_the_sustainable_rate_keep_the_newest_and_memory_flat(harness, overload_node, frames):
    timing = harness.subscribe(FrameTiming, "/overload/timing")
    out = harness.subscribe(Detection2DArray, "/overload/detections")
    pub = harness.node.create_publisher(Image, "/overload/image", RELIABLE)
    harness.wait_matched(pub)
    harness.wait_publishers("/overload/timing", "/overload/detections")
    _, first = harness.send_and_wait(pub, lambda: stamped(harness, bgr_to_image(frames["dog"]), "cam"), timing)
    # The sustainable rate from warm frames: the first one pays for cold caches and would make the
    # "4x" burst slower than it claims.
    warm = [harness.send_and_wait(pub, lambda: stamped(harness, bgr_to_image(frames["dog"]), "cam"), timing)[1]
            for _ in range(3)]
    interval = min(r.processing_ms for r in warm) / 1e3 / 4
    count = int(min(60, max(20, 6.0 / interval)))  # a backlog of this many 1.3 MB frames would show in RSS

    def burst() -> Any:
        last = None
        for _ in range(count):
            last = stamped(harness, bgr_to_image(frames["dog"]), "cam")
            pub.publish(last)
            time.sleep(interval)
        return last

    rss = [overload_node.rss_kib()]
    for _ in range(3):
        last = burst()
        harness.wait_for(lambda s=last.header.stamp: [m for m in out if m.header.stamp == s], WAIT_S,
                         "the newest frame of the burst")
        rss.append(overload_node.rss_kib())
    records = harness.wait_for(
        lambda: len(timing) >= max(t.sequence for t in timing) - first.sequence + 1 and list(timing), WAIT_S,
        "a FrameTiming for every received frame")
    seqs = sorted(r.sequence for r in records)
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # one record per frame received, none twice
    outcomes = [r.outcome for r in records]
    overload = outcomes.count(FrameTiming.OUTCOME_OVERLOAD_DROP)
    published = outcomes.count(FrameTiming.OUTCOME_PUBLISHED)
    assert overload > 0 and published > 0 and overload + published == len(records)
    assert overload >= published  # at 4x the sustainable rate most frames are overwritten, not queued
    # Memory: after the first burst has warmed everything up, later bursts add nothing like a backlog.
    frame_kib = frames["dog"].nbytes // 1024
    assert rss[-1] - rss[1] < 10 * frame_kib, rss
    assert overload_node.alive()


def test_detections_offer_a_deadline_of_one_input_period(harness, compressed_node):
    # Defaults: 10 Hz x tolerance 1.5 -> the node offers 150 ms. DDS matches a reader asking for a longer
    # deadline and refuses one asking for a shorter one.
    from rclpy.duration import Duration

    def reader(seconds: float) -> Any:
        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        qos.deadline = Duration(seconds=seconds)
        return harness.node.create_subscription(Detection2DArray, "/detections", lambda _: None, qos)

    loose, strict = reader(1.0), reader(0.05)
    harness.wait_for(lambda: loose.get_publisher_count() > 0, WAIT_S, "a match for a 1 s deadline")
    time.sleep(1.0)  # discovery has long finished for the other reader too
    assert strict.get_publisher_count() == 0
    harness.node.destroy_subscription(loose)
    harness.node.destroy_subscription(strict)


def test_parameters_are_declared_with_descriptions_and_ranges(harness, compressed_node):
    from rcl_interfaces.srv import DescribeParameters, GetParameters

    describe = harness.node.create_client(DescribeParameters, "/vd_compressed/describe_parameters")
    get = harness.node.create_client(GetParameters, "/vd_compressed/get_parameters")
    assert describe.wait_for_service(timeout_sec=WAIT_S) and get.wait_for_service(timeout_sec=WAIT_S)
    names = ["deadline_ms", "late_policy", "qos_depth", "input_type"]
    future = describe.call_async(DescribeParameters.Request(names=names))
    harness.wait_for(future.done, WAIT_S, "describe_parameters")
    desc = {d.name: d for d in future.result().descriptors}
    assert desc["deadline_ms"].floating_point_range[0].from_value == 1.0 and not desc["deadline_ms"].read_only
    assert desc["input_type"].read_only and desc["qos_depth"].read_only  # the subscription is built once
    assert "publish, drop" in desc["late_policy"].additional_constraints
    assert desc["qos_depth"].integer_range[0].to_value == 100
    assert all(d.description for d in desc.values())
    future = get.call_async(GetParameters.Request(names=["input_type", "deadline_ms"]))
    harness.wait_for(future.done, WAIT_S, "get_parameters")
    values = future.result().values
    assert (values[0].string_value, values[1].double_value) == ("compressed", 100.0)
