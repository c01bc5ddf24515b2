"""vehicle_detector modes: simulation time, the DDS input deadline (events and incompatible-QoS hint), and
several OpenCL devices behind one node."""

from __future__ import annotations

import threading
import time

import cv2
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from ocl_infer_msgs.msg import FrameTiming
from rclpy.duration import Duration
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image

from ocl_infer.ros.image_conversion import bgr_to_image
from ocl_infer.ros.messages import stamp_to_ns

pytestmark = [pytest.mark.ros, pytest.mark.slow]
WAIT_S = 30.0
RELIABLE = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)


@pytest.fixture(scope="module")
def small_frame(data_dir):
    return cv2.resize(cv2.imread(str(data_dir / "dog.jpg")), (384, 288))


def newest_camera_values(harness, suffix: str) -> dict[str, str] | None:
    for arr in reversed(harness.messages("/diagnostics")):
        for st in arr.status:
            if st.name.endswith(suffix):
                return {kv.key: kv.value for kv in st.values}
    return None


def test_sim_time_drives_every_timing_point(harness, start_node, backend, small_frame):
    sim_ns = 1_000_000_000_000  # t = 1000 s, frozen: every time the node takes must be exactly this
    clock_pub = harness.node.create_publisher(Clock, "/clock", 10)
    stop = threading.Event()

    def tick() -> None:
        msg = Clock()
        msg.clock.sec, msg.clock.nanosec = divmod(sim_ns, 10**9)
        while not stop.is_set():
            clock_pub.publish(msg)
            stop.wait(0.02)

    harness.subscribe(DiagnosticArray, "/diagnostics")
    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    try:
        start_node("vehicle_detector", {"backend": backend, "use_sim_time": True, "expected_rate_hz": 0.0},
                   "vd_sim", ["-r", "__ns:=/sim"])
        timing = harness.subscribe(FrameTiming, "/sim/timing")
        pub = harness.node.create_publisher(Image, "/sim/image", RELIABLE)
        harness.wait_matched(pub)
        harness.wait_publishers("/sim/timing")
        record = None
        for _ in range(20):  # until the node has taken the clock (its /clock subscription may match later)
            msg = bgr_to_image(small_frame)
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(sim_ns - 40_000_000, 10**9)  # 40 ms old
            count = len(timing)
            pub.publish(msg)
            try:  # a first record can be lost while DDS is still matching the node's writer with our reader
                harness.wait_for(lambda c=count: len(timing) > c, 3.0, "a FrameTiming")
            except AssertionError:
                continue
            record = timing[-1]
            if stamp_to_ns(record.received) == sim_ns:
                break
            time.sleep(0.2)
    finally:
        stop.set()
        ticker.join()
    assert record is not None and stamp_to_ns(record.received) == sim_ns
    assert stamp_to_ns(record.started) == stamp_to_ns(record.published) == sim_ns
    assert record.outcome == FrameTiming.OUTCOME_PUBLISHED
    assert record.age_at_start_ms == pytest.approx(40.0) and record.latency_ms == pytest.approx(40.0)
    assert record.processing_ms == 0.0 and record.inference_ms > 0  # detector times stay real durations
    # Uptime counts from the first /clock, not from time 0: no "no frame received in 1000 s" ERROR.
    statuses = [st for arr in harness.messages("/diagnostics") for st in arr.status
                if st.name.endswith("camera /sim/image")]
    assert all(st.level[0] == 0 for st in statuses), [st.message for st in statuses]


def test_qos_input_deadline_counts_gaps_from_dds_events_and_hints_on_incompatible_publishers(
        harness, start_node, backend, small_frame):
    node = start_node("vehicle_detector", {
        "backend": backend, "input_deadline": "qos", "expected_rate_hz": 5.0, "input_deadline_tolerance": 1.5,
        "deadline_ms": 60000.0, "diagnostics_period_s": 0.2,
    }, "vd_qos", ["-r", "__ns:=/qos"])
    harness.subscribe(DiagnosticArray, "/diagnostics")
    timing = harness.subscribe(FrameTiming, "/qos/timing")
    offering = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
    offering.deadline = Duration(seconds=0.2)  # <= the 0.3 s the node requests: DDS matches
    pub = harness.node.create_publisher(Image, "/qos/image", offering)
    harness.wait_matched(pub)
    harness.wait_publishers("/qos/timing")
    for _ in range(5):
        msg = bgr_to_image(small_frame)
        msg.header.stamp = harness.now_msg()
        pub.publish(msg)
        time.sleep(0.1)
    harness.wait_for(lambda: len(timing) > 0, WAIT_S, "frames through a deadline-offering publisher")
    # Silence: DDS fires the requested-deadline-missed event; the node counts input gaps.
    gaps = harness.wait_for(
        lambda: (v := newest_camera_values(harness, "camera /qos/image")) and int(v["input_gaps_total"]) >= 1 and v,
        WAIT_S, "input gaps from the DDS deadline event")
    assert int(gaps["received_total"]) >= 1
    # A camera that offers no deadline cannot match: the node says why and what to change, once, on its log and
    # on /diagnostics, and keeps the deadline (input_deadline qos is the user's choice).
    plain = harness.node.create_publisher(Image, "/qos/image", QoSProfile(depth=1))
    line = harness.wait_for(lambda: [ln for ln in node.log().splitlines() if "offer no deadline" in ln], WAIT_S,
                            "the QoS mismatch warning")[0]
    assert "input_deadline:=auto" in line and "/qos/image" in line
    assert plain.get_subscription_count() == 0
    status = harness.wait_for(
        lambda: (v := newest_camera_values(harness, "camera /qos/image")) and v["qos_mismatch"] and v, WAIT_S,
        "the mismatch on /diagnostics")
    assert "input_deadline:=auto" in status["qos_mismatch"] and "deadline 300 ms" in status["qos"]
    time.sleep(1.0)
    assert sum("offer no deadline" in ln for ln in node.log().splitlines()) == 1  # reported once
    assert node.alive()


def test_two_opencl_devices_share_the_frames(harness, start_node, backend, small_frame):
    start_node("vehicle_detector", {
        "backend": backend, "devices": "all", "frames_in_flight": 2, "deadline_ms": 60000.0,
        "qos_reliability": "reliable", "expected_rate_hz": 0.0,
    }, "vd_two", ["-r", "__ns:=/two"], env={"POCL_DEVICES": "pthread pthread"})
    timing = harness.subscribe(FrameTiming, "/two/timing")
    harness.subscribe(DiagnosticArray, "/diagnostics")
    pub = harness.node.create_publisher(Image, "/two/image", RELIABLE)
    harness.wait_matched(pub)
    harness.wait_publishers("/two/timing")

    def devices() -> set[str]:
        return {t.device for t in list(timing) if t.outcome == FrameTiming.OUTCOME_PUBLISHED}

    end = time.monotonic() + WAIT_S
    while len(devices()) < 2 and time.monotonic() < end:
        msg = bgr_to_image(small_frame)
        msg.header.stamp = harness.now_msg()
        pub.publish(msg)
        time.sleep(0.05)
    assert len(devices()) == 2, devices()
    names = harness.wait_for(
        lambda: {st.name for arr in harness.messages("/diagnostics") for st in arr.status
                 if st.name.startswith("/two/vd_two: device ")} if len(harness.messages("/diagnostics")) else None,
        WAIT_S, "per-device statuses")
    assert len(names) >= 1
    harness.wait_for(lambda: len({st.name for arr in harness.messages("/diagnostics") for st in arr.status
                                  if st.name.startswith("/two/vd_two: device ")}) == 2, WAIT_S,
                     "a status for each device")
