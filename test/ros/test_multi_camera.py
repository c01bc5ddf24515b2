"""Several cameras through one vehicle_detector (issue 16), as a user runs it: child-process nodes, real DDS on
loopback, real frames. Fair shares under overload, batched results equal to frames run alone, and stable track
ids, all read from what the node publishes (FrameTiming, Detection2DArray), never from wall-clock asserts."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
from ocl_infer_msgs.msg import FrameTiming
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2DArray

from ocl_infer.detection.nms import iou
from ocl_infer.ros.image_conversion import bgr_to_image
from ocl_infer.ros.messages import msg_to_boxes, stamp_to_ns

pytestmark = [pytest.mark.ros, pytest.mark.slow]
RELIABLE = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
WAIT_S = 60.0


@pytest.fixture(scope="module")
def street(data_dir) -> list[np.ndarray]:
    import cv2

    cap = cv2.VideoCapture(str(data_dir / "vtest.avi"))
    frames = [cap.read()[1] for _ in range(12)]
    cap.release()
    return frames


@pytest.fixture(scope="module")
def fair_node(start_node, backend):
    """Two cameras, one by one (batching off: the shares come from the scheduler alone), tracking on."""
    return start_node("vehicle_detector", {
        "backend": backend, "image_topics": ["/fa/image", "/fb/image"], "deadline_ms": 600000.0,
        "qos_reliability": "reliable", "expected_rate_hz": 0.0, "batching": "off", "tracking": True,
    }, "vd_fair")


@pytest.fixture(scope="module")
def batch_node(start_node, backend):
    return start_node("vehicle_detector", {
        "backend": backend, "image_topics": ["/ba/image", "/bb/image"], "deadline_ms": 600000.0,
        "qos_reliability": "reliable", "expected_rate_hz": 0.0, "batching": "always",
    }, "vd_batch")


def stamped(harness, frame: np.ndarray) -> Any:
    msg = bgr_to_image(frame)
    msg.header.stamp = harness.now_msg()
    return msg


def connect(harness, cameras: list[str]) -> tuple[list[Any], dict[str, list], dict[str, list]]:
    pubs = [harness.node.create_publisher(Image, f"{c}/image", RELIABLE) for c in cameras]
    timing = {c: harness.subscribe(FrameTiming, f"{c}/timing", RELIABLE) for c in cameras}
    dets = {c: harness.subscribe(Detection2DArray, f"{c}/detections", RELIABLE) for c in cameras}
    for pub in pubs:
        harness.wait_matched(pub)
    harness.wait_publishers(*(f"{c}/timing" for c in cameras), *(f"{c}/detections" for c in cameras))
    return pubs, timing, dets


def answer(harness, store: list, msg: Any) -> Any:
    stamp = stamp_to_ns(msg.header.stamp)
    return harness.wait_for(lambda: [m for m in list(store) if stamp_to_ns(m.header.stamp) == stamp], WAIT_S,
                            "the node's answer")[0]


def test_two_overloaded_cameras_lose_the_same_fraction(harness, fair_node, street):
    pubs, timing, _ = connect(harness, ["/fa", "/fb"])
    first = answer(harness, timing["/fa"], _send(harness, pubs[0], street[0]))
    interval = first.processing_ms / 1e3 / 1.6  # both cameras at 1.6x the sustainable rate: 3.2x in all
    last = []
    for i in range(int(min(80, max(30, 8.0 / interval)))):
        # camera b always right after camera a: the phase that made oldest-first serve a alone
        last = [stamped(harness, street[i % len(street)]) for _ in pubs]
        for pub, msg in zip(pubs, last, strict=True):
            pub.publish(msg)
        time.sleep(interval)
    for cam, msg in zip(("/fa", "/fb"), last, strict=True):
        answer(harness, timing[cam], msg)
    shares = {}
    for cam in ("/fa", "/fb"):
        records = [t for t in timing[cam] if t.sequence > (first.sequence if cam == "/fa" else 0)]
        outcomes = [t.outcome for t in records]
        assert FrameTiming.OUTCOME_OVERLOAD_DROP in outcomes  # it was overloaded
        shares[cam] = outcomes.count(FrameTiming.OUTCOME_PUBLISHED) / len(records)
    assert min(shares.values()) > 0.15, shares
    assert abs(shares["/fa"] - shares["/fb"]) < 0.2, shares
    assert fair_node.alive()


def _send(harness, pub, frame) -> Any:
    msg = stamped(harness, frame)
    pub.publish(msg)
    return msg


def test_track_ids_stay_with_the_same_vehicle_across_consecutive_frames(harness, fair_node, street):
    pubs, _, dets = connect(harness, ["/fa", "/fb"])
    answers = []
    for frame in street:  # consecutive frames of the street: a parked van and a parked car
        got = answer(harness, dets["/fb"], _send(harness, pubs[1], frame))
        answers.append(list(zip(msg_to_boxes(got), (d.id for d in got.detections), strict=True)))
    vehicles = [box for (_, _, box), _ in answers[1]]
    assert len(vehicles) >= 2, answers[1]
    for ref in vehicles:  # the same vehicle (IoU > 0.5 with its box in frame 2) keeps one id from frame 2 on
        ids = [[tid for (_, _, box), tid in frame if iou(box, ref) > 0.5] for frame in answers[1:]]
        assert all(len(i) == 1 for i in ids), ids
        assert ids[0][0] != "" and {i[0] for i in ids} == {ids[0][0]}, ids
    assert len({tid for _, tid in answers[1]}) == len(answers[1])  # one id per vehicle


def test_a_batch_of_two_cameras_gives_each_frame_its_own_detections(harness, batch_node, street, model_dir,
                                                                    backend):
    from ocl_infer.detection import Detector

    pubs, timing, dets = connect(harness, ["/ba", "/bb"])
    pair = [street[0], np.ascontiguousarray(street[5][:, ::-1])]  # different frames: a mix-up would show
    batched = None
    for _ in range(10):  # a frame of a keeps the worker busy while the pair arrives: the pair waits together
        answer(harness, timing["/ba"], _send(harness, pubs[0], street[3]))
        _send(harness, pubs[0], street[3])
        sent = [_send(harness, pub, frame) for pub, frame in zip(pubs, pair, strict=True)]
        records = [answer(harness, timing[c], m) for c, m in zip(("/ba", "/bb"), sent, strict=True)]
        if all("batch of 2" in r.detail for r in records):
            batched = [answer(harness, dets[c], m) for c, m in zip(("/ba", "/bb"), sent, strict=True)]
            break
    assert batched is not None, "the node never ran the two cameras as one batch"
    with Detector(model=model_dir, backend=backend) as detector:
        for msg, frame in zip(batched, pair, strict=True):
            alone = detector.detect(frame)
            got = msg_to_boxes(msg)
            assert len(got) == len(alone) > 0
            for (label, score, box), ref in zip(got, alone, strict=True):
                assert label == ref.label and score == pytest.approx(ref.score, abs=1e-4)
                np.testing.assert_allclose(box, ref.box, atol=0.05)
