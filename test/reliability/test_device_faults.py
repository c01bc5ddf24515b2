"""Device faults with two OpenCL devices (POCL_DEVICES="pthread pthread", in subprocesses): a device that fails
or hangs (the executor's fault_hook) leaves the rotation, its frames run elsewhere, it comes back after
retry_s. No frame is lost or duplicated; engine.stats() and the node's /diagnostics show it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from model_cases import small_cnn
from ocl_infer_msgs.msg import FrameTiming
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2DArray

from ocl_infer.ros.image_conversion import bgr_to_image

HERE = Path(__file__).resolve().parent
TWO_DEVICES = {"POCL_DEVICES": "pthread pthread"}
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
WAIT_S = 60.0


def _engine_phases(tmp_path, *phases: str) -> dict:
    folder, _, _ = small_cnn(tmp_path)
    env = dict(os.environ, **TWO_DEVICES, PYTHONPATH=str(HERE))
    out = subprocess.run([sys.executable, str(HERE / "engine_fault_worker.py"), str(folder), *phases], env=env,
                         capture_output=True, text=True, timeout=240, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_engine_failed_or_hung_device_loses_or_duplicates_no_frame(tmp_path):
    r = _engine_phases(tmp_path, "fail", "hang")
    fail, hang = r["fail"], r["hang"]
    for phase in (fail, hang):  # each frame got its own result, exactly once, bit-identical to one device
        assert phase["lost"] == 0 and phase["identical"], phase
        assert phase["identical_after"] and phase["in_rotation_end"] == [True, True], phase
        assert all(n > 0 for n in phase["used_after"]), phase["used_after"]  # both devices serve again
    failures = len(fail["faults_hit"])  # device 1 reaches its 5th frame only if it gets enough work back
    assert failures >= 1 and fail["errors"] == [0, failures] and fail["hangs"] == [0, 0], fail
    assert fail["runs"] == 40 + failures and sum(fail["frames_per_device"]) == 40  # a failed run is re-run once
    whats = [w for _, w in fail["events"]]
    assert sum("out of rotation: InjectedFault" in w for w in whats) == failures
    assert sum("back in rotation" in w for w in whats) >= 1
    assert hang["hangs"] == [1, 0] and hang["errors"] == [0, 0]
    assert hang["runs"] == 40 + 1  # the hung frame ran again elsewhere; its late result was dropped
    whats = [w for _, w in hang["events"]]
    assert any("watchdog" in w for w in whats) and any("hung run returned" in w for w in whats)


def test_engine_overlapping_fail_and_hang_lose_no_frame(tmp_path):
    r = _engine_phases(tmp_path, "overlap")["overlap"]
    assert r["lost"] == 0, r.get("error")


@pytest.mark.ros
@pytest.mark.slow
def test_node_keeps_every_frame_through_a_failed_and_a_hung_device(tmp_path, harness, start_child, small_model_dir,
                                                                  data_dir):
    from device_fault_node import FAIL_AT, HANG_AT

    fault_log = tmp_path / "faults.jsonl"
    node = start_child([sys.executable, str(HERE / "device_fault_node.py"), str(small_model_dir), str(fault_log),
                        "--ros-args", "-r", "__node:=vd_faults", "-r", "__ns:=/faults",
                        "-p", "qos_reliability:=reliable", "-p", "deadline_ms:=600000.0",
                        "-p", "expected_rate_hz:=0.0", "-p", "diagnostics_period_s:=0.5",
                        "-p", "frames_in_flight:=1"],
                       "vd_faults", dict(TWO_DEVICES, PYTHONPATH=str(HERE)))
    timing = harness.subscribe(FrameTiming, "/faults/timing")
    dets = harness.subscribe(Detection2DArray, "/faults/detections")
    harness.subscribe(DiagnosticArray, "/diagnostics")
    pub = harness.node.create_publisher(Image, "/faults/image", RELIABLE)
    harness.wait_matched(pub, timeout=120.0)
    harness.wait_publishers("/faults/timing", "/faults/detections")
    frame = cv2.imread(str(data_dir / "dog.jpg"))

    def device_statuses() -> list[dict[str, str]]:
        out = []
        for arr in harness.messages("/diagnostics"):
            for st in arr.status:
                if "vd_faults: device" in st.name:
                    out.append({"name": st.name, "level": st.level[0], "message": st.message,
                                **{kv.key: kv.value for kv in st.values}})
        return out

    def send(i: int) -> None:
        msg = bgr_to_image(frame)
        msg.header.frame_id = f"f{i}"
        msg.header.stamp = harness.now_msg()
        pub.publish(msg)
        harness.wait_for(lambda: any(t.header.frame_id == f"f{i}" for t in list(timing)), WAIT_S, f"frame f{i}")

    n_frames = HANG_AT + 6
    for i in range(1, n_frames + 1):
        send(i)
        if i == FAIL_AT:  # the failed device is reported out of rotation, then comes back
            harness.wait_for(lambda: any(s.get("in_rotation") == "false" and s.get("engine_errors_total") == "1"
                                         and s["level"] == 1 for s in device_statuses()), WAIT_S,
                             "a device WARN out of rotation with one engine error")
            harness.wait_for(lambda: device_statuses() and all(s.get("in_rotation") == "true"
                                                               for s in device_statuses()[-2:]), WAIT_S,
                             "both devices back in rotation")
    harness.wait_for(lambda: any(s.get("engine_hangs_total") == "1" for s in device_statuses()), WAIT_S,
                     "the hang in /diagnostics")
    faults = [json.loads(line) for line in fault_log.read_text().splitlines()]
    assert [f["kind"] for f in faults] == ["fail", "hang"], faults
    hung = faults[1]["device"]
    assert any(s["name"].endswith(hung) and s.get("engine_hangs_total") == "1" for s in device_statuses())

    time.sleep(1.0)  # a duplicate would have arrived by now
    sent = {f"f{i}" for i in range(1, n_frames + 1)}
    records = [t for t in harness.messages("/faults/timing") if t.header.frame_id in sent]
    assert sorted(t.header.frame_id for t in records) == sorted(sent)  # one record per frame, none twice
    assert {t.outcome for t in records} == {FrameTiming.OUTCOME_PUBLISHED}, [(t.header.frame_id, t.detail)
                                                                             for t in records]
    published = [m.header.frame_id for m in dets if m.header.frame_id in sent]
    assert sorted(published) == sorted(sent)
    assert len({t.detection_count for t in records}) == 1  # the same frame gives the same answer on any device
    assert len({t.device for t in records}) == 2  # both devices served frames
    assert "out of rotation" in node.log() and node.alive()
