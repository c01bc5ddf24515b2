"""Frames are untrusted input: seeded random Image and CompressedImage messages (random encodings, sizes,
steps, truncated data, corrupt and bomb-sized JPEG/PNG headers) go to running vehicle_detector nodes
(subprocesses, real DDS on loopback), one at a time so none is an overload drop.

Every bad frame must come back as one FrameTiming with outcome decode_error (never an inference error or a
crash), be counted in /diagnostics, and be logged at most once per throttle period; good frames in between
must be published with detections messages. OCL_INFER_FRAME_FUZZ=N sets the frames per node (default 150).
"""

from __future__ import annotations

import os
import re
import time
from collections import Counter
from typing import Any

import cv2
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from frame_cases import bad_compressed, bad_raw, good_compressed, good_raw
from ocl_infer_msgs.msg import FrameTiming
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from vision_msgs.msg import Detection2DArray

pytestmark = [pytest.mark.ros, pytest.mark.slow]
N_FRAMES = int(os.environ.get("OCL_INFER_FRAME_FUZZ", "150"))
GOOD_EVERY = 10
WAIT_S = 60.0  # per frame: generous on a shared machine (a good frame runs the detector)
LOG_THROTTLE_S = 5.0  # the node's throttle for the bad-frame warning
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


@pytest.fixture(scope="module")
def photo(data_dir) -> np.ndarray:
    return cv2.imread(str(data_dir / "dog.jpg"))


def _node_params(small_model_dir, compressed: bool) -> dict[str, Any]:
    return {"model": str(small_model_dir), "deadline_ms": 600000.0, "qos_reliability": "reliable",
            "expected_rate_hz": 0.0, "diagnostics_period_s": 0.5, "overlay": False,
            "input_type": "compressed" if compressed else "raw"}


@pytest.fixture(scope="module")
def nodes(start_node, small_model_dir) -> dict[str, Any]:
    # both start at once: their model loads overlap
    return {"raw": start_node("vehicle_detector", _node_params(small_model_dir, False), "fuzz_raw",
                              ["-r", "__ns:=/fuzzraw"]),
            "compressed": start_node("vehicle_detector", _node_params(small_model_dir, True), "fuzz_cmp",
                                     ["-r", "__ns:=/fuzzcmp"])}


def _decode_errors_in_diagnostics(harness, topic: str) -> int | None:
    for arr in reversed(harness.messages("/diagnostics")):
        for st in arr.status:
            if st.name.endswith(f"camera {topic}"):
                return int({kv.key: kv.value for kv in st.values}["decode_errors_total"])
    return None


def _fuzz(harness, node, photo, ns: str, compressed: bool, seed: int) -> None:
    msg_type = CompressedImage if compressed else Image
    topic = f"/{ns}/image/compressed" if compressed else f"/{ns}/image"
    timing = harness.subscribe(FrameTiming, f"/{ns}/timing")
    detections = harness.subscribe(Detection2DArray, f"/{ns}/detections")
    harness.subscribe(DiagnosticArray, "/diagnostics")
    pub = harness.node.create_publisher(msg_type, topic, RELIABLE)
    harness.wait_matched(pub, timeout=120.0)
    harness.wait_publishers(f"/{ns}/timing", f"/{ns}/detections")
    rng = np.random.default_rng(seed)
    good, bad = (good_compressed, bad_compressed) if compressed else (good_raw, bad_raw)
    sent: dict[str, str] = {}
    t0 = time.monotonic()
    for i in range(N_FRAMES):
        msg, expect = (good if i % GOOD_EVERY == 0 else bad)(rng, photo)
        frame_id = f"fuzz-{i}-{expect}"
        msg.header.frame_id = frame_id
        msg.header.stamp = harness.now_msg()
        sent[frame_id] = expect
        pub.publish(msg)
        harness.wait_for(lambda f=frame_id: any(t.header.frame_id == f for t in list(timing)), WAIT_S,
                         f"the FrameTiming of {frame_id} on {topic}")
    elapsed = time.monotonic() - t0
    time.sleep(0.5)  # any duplicate FrameTiming would have arrived by now

    records = [t for t in harness.messages(f"/{ns}/timing") if t.header.frame_id in sent]
    per_frame = Counter(t.header.frame_id for t in records)
    assert set(per_frame) == set(sent) and max(per_frame.values()) == 1, "one FrameTiming per frame, none twice"
    outcomes = Counter()
    wrong = []
    for t in records:
        expect = sent[t.header.frame_id]
        outcomes[(expect, t.outcome)] += 1
        ok = {"good": {FrameTiming.OUTCOME_PUBLISHED}, "bad": {FrameTiming.OUTCOME_DECODE_ERROR},
              "either": {FrameTiming.OUTCOME_PUBLISHED, FrameTiming.OUTCOME_DECODE_ERROR}}[expect]
        if t.outcome not in ok:
            wrong.append(f"{t.header.frame_id}: outcome {t.outcome} {t.detail}")
        if t.outcome == FrameTiming.OUTCOME_DECODE_ERROR:
            assert topic in t.detail and not t.detections_published, t.detail
    print(f"\n{topic}: {len(records)} frames in {elapsed:.1f} s, (expected, outcome) counts {dict(outcomes)}")
    assert not wrong, "\n".join(wrong[:20])

    published = {t.header.frame_id for t in records if t.outcome == FrameTiming.OUTCOME_PUBLISHED}
    harness.wait_for(lambda: published <= {m.header.frame_id for m in harness.messages(f"/{ns}/detections")},
                     WAIT_S, "a Detection2DArray for every published frame")
    assert not [m for m in detections if m.header.frame_id in sent and m.header.frame_id not in published]

    decode_errors = sum(1 for t in records if t.outcome == FrameTiming.OUTCOME_DECODE_ERROR)
    assert decode_errors >= sum(1 for e in sent.values() if e == "bad")
    harness.wait_for(lambda: _decode_errors_in_diagnostics(harness, topic) == decode_errors, WAIT_S,
                     f"decode_errors_total == {decode_errors} in /diagnostics for {topic}")

    log = node.log()
    warnings = re.findall(r"bad frame \d+", log)
    assert 1 <= len(warnings) <= elapsed / LOG_THROTTLE_S + 2, f"{len(warnings)} bad-frame lines in {elapsed:.0f} s"
    assert "Traceback" not in log and "internal error" not in log, log[-3000:]
    assert node.alive()


def test_raw_frame_fuzz_every_bad_frame_is_a_counted_decode_error(harness, nodes, photo):
    _fuzz(harness, nodes["raw"], photo, "fuzzraw", compressed=False, seed=11)


def test_compressed_frame_fuzz_every_bad_frame_is_a_counted_decode_error(harness, nodes, photo):
    _fuzz(harness, nodes["compressed"], photo, "fuzzcmp", compressed=True, seed=12)
