"""QoS that matches the camera (issue 15, point 2): the node reads what the camera's publishers offer before
subscribing and requests nothing they do not offer. The rule first (pure), then real cameras in processes of
their own with the QoS profiles drivers use: no incompatible-QoS warning on either side, no frame lost at
start-up, input gaps still counted (a DDS deadline when the camera offers one, the watchdog otherwise)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from diagnostic_msgs.msg import DiagnosticArray
from ocl_infer_msgs.msg import FrameTiming
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from ocl_infer.ros.options import NodeOptions
from ocl_infer.ros.qos import OfferedQoS, describe_subscription, image_qos_for, matches_all

ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 60.0
SENSOR = OfferedQoS(reliable=False)
RELIABLE = OfferedQoS(reliable=True)
TRANSIENT = OfferedQoS(reliable=True, transient_local=True)


# ------------------------------------------------------------------------------------------------ the rule
@pytest.mark.parametrize("offered", [[], [SENSOR], [RELIABLE], [TRANSIENT], [SENSOR, RELIABLE, TRANSIENT]])
def test_defaults_match_every_usual_camera_profile_without_a_deadline(offered):
    choice = image_qos_for(NodeOptions(), offered)
    assert choice.profile.reliability == ReliabilityPolicy.BEST_EFFORT
    assert choice.profile.durability == DurabilityPolicy.VOLATILE and choice.profile.depth == 1
    assert not choice.dds_deadline and choice.profile.deadline.nanoseconds == 0  # the watchdog counts gaps
    assert matches_all(choice, offered) and not choice.mismatch and not choice.notes
    assert describe_subscription(choice) == "best effort, volatile, depth 1, no deadline"


def test_a_dds_deadline_only_when_every_publisher_offers_one_as_strict():
    opts = NodeOptions()  # input deadline 150 ms
    tight = OfferedQoS(reliable=False, deadline_s=0.1)
    choice = image_qos_for(opts, [tight])
    assert choice.dds_deadline and choice.profile.deadline.nanoseconds == 150_000_000
    assert describe_subscription(choice).endswith("deadline 150 ms")
    assert not image_qos_for(opts, [tight, SENSOR]).dds_deadline  # one without: none for all
    assert not image_qos_for(opts, [OfferedQoS(reliable=False, deadline_s=0.2)]).dds_deadline  # longer: none
    assert not matches_all(choice, [tight, SENSOR]) and matches_all(choice, [tight])
    assert not image_qos_for(NodeOptions(input_deadline="watchdog"), [tight]).dds_deadline
    assert not image_qos_for(NodeOptions(expected_rate_hz=0.0), [tight]).dds_deadline


def test_reliable_is_asked_only_of_reliable_cameras():
    opts = NodeOptions(qos_reliability="reliable")
    assert image_qos_for(opts, [RELIABLE, TRANSIENT]).profile.reliability == ReliabilityPolicy.RELIABLE
    choice = image_qos_for(opts, [RELIABLE, SENSOR])
    assert choice.profile.reliability == ReliabilityPolicy.BEST_EFFORT and "best effort" in choice.notes[0]
    reliable = image_qos_for(opts, [RELIABLE])
    assert not matches_all(reliable, [SENSOR]) and matches_all(reliable, [TRANSIENT])


def test_input_deadline_qos_keeps_its_deadline_and_names_the_mismatch():
    choice = image_qos_for(NodeOptions(input_deadline="qos"), [SENSOR])
    assert choice.dds_deadline
    assert "offer no deadline of at most 150 ms (best effort, volatile, no deadline)" in choice.mismatch
    assert "set input_deadline:=auto or watchdog" in choice.mismatch
    assert not image_qos_for(NodeOptions(input_deadline="qos"), [OfferedQoS(False, deadline_s=0.1)]).mismatch


def test_offered_qos_reads_the_graph_profile():
    from rclpy.duration import Duration

    profile = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    profile.deadline = Duration(nanoseconds=2**63 - 1)  # what the RMW reports for "none"
    assert OfferedQoS.from_profile(profile) == TRANSIENT
    profile.deadline = Duration(seconds=0.1)
    assert OfferedQoS.from_profile(profile).deadline_s == pytest.approx(0.1)


# ------------------------------------------------------------------------------------------ real cameras
def camera(child_env, topic: str, qos: str, frames: int, rate: float, deadline_ms: float = 0.0,
           delay_s: float = 0.0) -> subprocess.Popen[str]:
    cmd = [sys.executable, str(Path(__file__).parent / "camera_process.py"), topic, "--qos", qos, "--frames",
           str(frames), "--rate", str(rate), "--width", "384", "--height", "288", "--deadline-ms", str(deadline_ms),
           "--delay-s", str(delay_s)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env(None),
                            cwd=ROOT)


def finish(proc: subprocess.Popen[str]) -> tuple[dict[str, Any], str]:
    out, err = proc.communicate(timeout=WAIT_S + 120)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1]), err


def camera_values(harness, topic: str) -> dict[str, str] | None:
    for arr in reversed(harness.messages("/diagnostics")):
        for st in arr.status:
            if st.name.endswith(f"camera {topic}"):
                return {"level": str(st.level[0]), "message": st.message, **{kv.key: kv.value for kv in st.values}}
    return None


@pytest.mark.ros
@pytest.mark.slow
def test_driver_profiles_match_at_once_and_lose_no_first_frame(harness, start_node, backend, child_env):
    """Three cameras with the profiles drivers use, each publishing 9 frames at 5 Hz the moment it sees the
    node's subscription (as the issue's client did), plus one that offers a deadline and is there before the
    node.

    That early camera waits 1 s after the match before publishing: a best-effort writer that was there first
    may send before the new reader has discovered it (DDS drops such a sample; nothing a node can change).
    Whether it gets a DDS deadline depends on whether discovery had finished when the node subscribed (it can
    take ~3 s on loopback here); if not, the watchdog counts its gaps, as for the others."""
    topics = {"/qa/image": "sensor", "/qb/image": "reliable", "/qc/image": "transient"}
    # 5 Hz like the others: a depth-1 best-effort reader keeps only the newest sample, so on a loaded 2-core CI
    # machine a 10 Hz camera lost 2 of 20 frames when the node's executor was held >100 ms (not what this tests).
    early = camera(child_env, "/qd/image", "sensor", 10, 5.0, deadline_ms=200.0, delay_s=1.0)  # before the node
    time.sleep(1.0)
    node = start_node("vehicle_detector", {
        "backend": backend, "image_topics": [*topics, "/qd/image"], "deadline_ms": 60000.0,
        "diagnostics_period_s": 0.25, "expected_rate_hz": 5.0,
    }, "vd_qos_match")
    harness.subscribe(DiagnosticArray, "/diagnostics")
    timing = {t: harness.subscribe(FrameTiming, f"{t.rsplit('/', 1)[0]}/timing") for t in [*topics, "/qd/image"]}
    harness.wait_publishers(*(f"{t.rsplit('/', 1)[0]}/timing" for t in timing))
    cams = {t: camera(child_env, t, qos, 9, 5.0) for t, qos in topics.items()}
    results = {t: finish(p) for t, p in cams.items()}
    results["/qd/image"] = finish(early)
    for topic, (sent, err) in results.items():
        assert "incompatible QoS" not in err, (topic, err)  # the camera's side saw no mismatch
        # The node's own count (a FrameTiming could be missed here if our reader matched the node's writer
        # after the camera's first frame). No re-subscription loses frames any more (before: 2 of the first 9
        # answered). What remains is DDS's: a writer that sees the match before the reader has discovered it
        # may send its very first frame into the void (seen in 2 of 4 runs, one frame each), so one is allowed.
        try:
            harness.wait_for(lambda t=topic, n=sent["sent"]: (v := camera_values(harness, t))
                             and int(v["received_total"]) >= n - 1, WAIT_S, "")
        except AssertionError:
            seen = {m.header.stamp.sec * 1_000_000_000 + m.header.stamp.nanosec for m in timing[topic]}
            missing = [i for i, ns in enumerate(sent["stamps_ns"]) if ns not in seen]
            raise AssertionError(f"{topic}: the node did not count {sent['sent'] - 1} of {sent['sent']} frames "
                                 f"(no timing for frames {missing}): {camera_values(harness, topic)}\n"
                                 f"{node.log()}") from None
        assert camera_values(harness, topic)["transport_losses_total"] == "0"
    assert all(len(timing[t]) > 0 for t in timing)
    log = node.log()
    assert "incompatible" not in log and "does not match" not in log, log
    for topic in topics:
        assert camera_values(harness, topic)["qos"] == "best effort, volatile, depth 1, no deadline"
    assert camera_values(harness, "/qd/image")["qos"] in ("best effort, volatile, depth 1, deadline 300 ms",
                                                          "best effort, volatile, depth 1, no deadline")
    # Input gaps still counted: DDS's deadline event for the camera that offered one, the watchdog for the rest.
    for topic in [*topics, "/qd/image"]:
        harness.wait_for(lambda t=topic: int(camera_values(harness, t)["input_gaps_total"]) >= 1, WAIT_S,
                         f"input gaps on {topic} once its camera stopped")


@pytest.mark.ros
@pytest.mark.slow
def test_a_best_effort_camera_appearing_later_is_matched_by_subscribing_again(harness, start_node, backend,
                                                                              child_env):
    node = start_node("vehicle_detector", {"backend": backend, "qos_reliability": "reliable",
                                           "deadline_ms": 60000.0, "diagnostics_period_s": 0.25},
                      "vd_qos_later", ["-r", "__ns:=/later_qos"])
    harness.subscribe(DiagnosticArray, "/diagnostics")
    timing = harness.subscribe(FrameTiming, "/later_qos/timing")
    harness.wait_for(lambda: "ready:" in node.log(), WAIT_S + 60, "the node ready")
    harness.wait_publishers("/later_qos/timing")
    proc = camera(child_env, "/later_qos/image", "sensor", 30, 10.0)  # best effort: a reliable reader can't match
    sent, _ = finish(proc)
    assert sent["sent"] == 30
    assert len(timing) > 0  # frames arrived once the node had subscribed again
    assert "subscribing again to match it" in node.log()
    assert "subscribing best effort" in node.log()
    assert camera_values(harness, "/later_qos/image")["qos"].startswith("best effort")
