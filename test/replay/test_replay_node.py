"""Replay through the real vehicle_detector node over DDS (loopback discovery, random domain: see conftest).

Each test runs `ocl-infer replay` as a user does, which starts the node as a child process and must stop it.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rosbags.rosbag2 import Reader

from ocl_infer.bag.report import TIMING_TYPE
from ocl_infer.bag.typestore import build_typestore
from ocl_infer.bag.writer import ImageBagOptions, write_image_bag
from ocl_infer.child_process import ChildProcess

pytestmark = [pytest.mark.ros, pytest.mark.slow]
OCL_INFER = [sys.executable, "-m", "ocl_infer.cli"]
STORE = build_typestore()
# The replay is under test, not the engine: the reference backend keeps these runs short and deterministic.
BACKEND = os.environ.get("OCL_INFER_TEST_BACKEND", "onnxruntime")


def _params(tmp_path, **values) -> str:
    path = tmp_path / "params.yaml"
    lines = ["/**:", "  ros__parameters:"] + [f"    {k}: {json.dumps(v)}" for k, v in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _replay(*args: str, timeout: float = 150) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*OCL_INFER, "replay", *args], capture_output=True, text=True, timeout=timeout,
                          check=False)


def _messages(bag) -> list[tuple[str, str, object]]:
    with Reader(bag) as reader:
        return [(c.topic, c.msgtype, STORE.deserialize_cdr(raw, c.msgtype)) for c, _, raw in reader.messages()]


def _stamp(msg) -> int:
    return msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec


def test_replay_records_one_detection_array_per_processed_frame(data_dir, tmp_path):
    bag = write_image_bag([data_dir / "vtest.avi"], tmp_path / "in",
                          ImageBagOptions(rate_hz=4.0, max_frames=12, frame_id="street")).path
    params = _params(tmp_path, deadline_ms=5000.0, expected_rate_hz=4.0, backend=BACKEND)
    out_bag, report_path, plot = tmp_path / "out", tmp_path / "report.json", tmp_path / "latency.png"
    run = _replay(str(bag), "-o", str(out_bag), "--report", str(report_path), "--plot", str(plot),
                  "--params", params)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "playing  /camera/image_raw  sensor_msgs/msg/Image  12 msgs" in run.stderr
    report = json.loads(report_path.read_text())
    f = report["frames"]
    assert f["sent"] == 12
    assert f["sent"] == f["processed"] + f["dropped"] + f["errors"] and f["errors"] == 0
    assert f["processed"] >= 1 and report["deadline_ms"] == 5000.0
    assert f"sent 12  processed {f['processed']}" in run.stdout

    msgs = _messages(out_bag)
    sent_stamps = [_stamp(m) for *_, m in _messages(bag)]
    timings = [m for _, t, m in msgs if t == TIMING_TYPE]
    arrays = [(topic, m) for topic, t, m in msgs if t == "vision_msgs/msg/Detection2DArray"]
    processed = [_stamp(m) for m in timings if m.outcome in (0, 3)]
    assert len(arrays) == len(processed) == f["processed"]  # late_policy publish: every processed frame
    assert sorted(_stamp(m) for _, m in arrays) == sorted(processed)
    assert set(processed) <= set(sent_stamps)
    assert all(topic == "/detections" and m.header.frame_id == "street" for topic, m in arrays)
    assert len(timings) == f["sent"] - f["undelivered"]
    assert sum(report["devices"].values()) == f["processed"]
    assert sum(report["detections"]["per_class"].values()) == sum(len(m.detections) for _, m in arrays)
    assert report["latency_ms"]["max"] <= 5000.0 and f["deadline_misses"] == 0
    assert plot.stat().st_size > 1000


def test_max_speed_against_an_impossible_budget_shows_misses_and_drops(data_dir, tmp_path):
    # CompressedImage in an mcap bag: the other message type and storage on the way in.
    bag = write_image_bag([data_dir / "vtest.avi"], tmp_path / "in",
                          ImageBagOptions(rate_hz=30.0, max_frames=20, compressed=True, storage="mcap",
                                          topic="/camera/image_raw/compressed")).path
    params = _params(tmp_path, deadline_ms=1.0, expected_rate_hz=30.0, backend=BACKEND)
    report_path = tmp_path / "report.json"
    run = _replay(str(bag), "--max-speed", "--report", str(report_path), "--params", params)
    assert run.returncode == 0, run.stdout + run.stderr
    f = json.loads(report_path.read_text())["frames"]
    assert f["sent"] == 20 == f["processed"] + f["dropped"] + f["errors"]
    assert f["published"] == 0  # nothing can be on time with a 1 ms budget
    assert f["deadline_misses"] + f["stale_drop"] + f["overload_drop"] == f["sent"] - f["undelivered"] - f["errors"]
    # Frames are dropped (in the node's latest-slot, or already in its depth-1 DDS reader history) instead of
    # queueing up; whatever reached the worker was stale or late.
    assert f["dropped"] > 0 and f["stale_drop"] + f["deadline_misses"] >= 1


def test_ctrl_c_closes_the_output_bag_and_stops_the_node(data_dir, tmp_path):
    bag = write_image_bag([data_dir / "vtest.avi"], tmp_path / "in",
                          ImageBagOptions(rate_hz=10.0, max_frames=100)).path
    out_bag = tmp_path / "out"
    params = _params(tmp_path, backend=BACKEND)
    proc = subprocess.Popen([*OCL_INFER, "replay", str(bag), "-o", str(out_bag), "--params", params],
                            stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    node_pid = None
    try:
        deadline = time.monotonic() + 120
        for line in proc.stderr:
            if "started vehicle_detector (pid" in line:
                node_pid = int(line.split("(pid ")[1].split(")")[0])
            if "node ready" in line or time.monotonic() > deadline:
                break
        time.sleep(1.5)  # some frames out
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert node_pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(node_pid, 0)
    msgs = _messages(out_bag)  # closed properly: metadata written, readable
    assert any(t == TIMING_TYPE for _, t, _ in msgs)


def test_two_cameras_of_both_types_looped_keep_outputs_apart(mixed_bag, tmp_path):
    params = _params(tmp_path, deadline_ms=5000.0, expected_rate_hz=5.0, backend=BACKEND)
    out_bag, report_path = tmp_path / "out", tmp_path / "report.json"
    run = _replay(str(mixed_bag), "-o", str(out_bag), "--report", str(report_path), "--params", params,
                  "--loop", "2", "--rate", "2")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "playing  /front/image_raw  sensor_msgs/msg/Image  3 msgs" in run.stderr
    assert "playing  /rear/image_raw/compressed  sensor_msgs/msg/CompressedImage  3 msgs" in run.stderr
    assert "ignored  /chatter  std_msgs/msg/String" in run.stderr and "ignored  /speed" in run.stderr
    report = json.loads(report_path.read_text())
    for cam in ("/front/image_raw", "/rear/image_raw/compressed"):
        f = report["cameras"][cam]["frames"]
        assert f["sent"] == 6 == f["processed"] + f["dropped"] + f["errors"]
    stamps = {}
    for topic, msgtype, msg in _messages(out_bag):
        if msgtype == "vision_msgs/msg/Detection2DArray":
            stamps.setdefault(topic, []).append(_stamp(msg))
    # each camera's outputs under its own namespace; the second loop is restamped after the first
    assert set(stamps) <= {"/front/detections", "/rear/detections"} and stamps
    for values in stamps.values():
        assert len(values) == len(set(values))
    per_frame = [(f["camera"], f["stamp_ns"]) for f in report["per_frame"]]
    assert len(set(per_frame)) == 12


def test_external_feeds_a_node_that_is_already_running(data_dir, tmp_path):
    bag = write_image_bag([data_dir / "vtest.avi"], tmp_path / "in", ImageBagOptions(rate_hz=5.0, max_frames=6)).path
    params = _params(tmp_path, deadline_ms=5000.0, backend=BACKEND)
    exe = str(Path(sys.executable).parent / "vehicle_detector")
    with ChildProcess([exe, "--ros-args", "--params-file", params, "-p", "use_sim_time:=true",
                       "-r", "image:=/camera/image_raw"], stdin=None) as node:
        report_path = tmp_path / "report.json"
        run = _replay(str(bag), "--external", "--report", str(report_path), "--ready-timeout", "60")
        assert run.returncode == 0, run.stdout + run.stderr
        assert "started vehicle_detector" not in run.stderr
        assert node.alive()  # the replay leaves an external node running
        report = json.loads(report_path.read_text())
        assert report["external_nodes"] is True
        f = report["frames"]
        assert f["sent"] == 6 == f["processed"] + f["dropped"] + f["errors"] and f["processed"] >= 1


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has exited; only its parent (init now) has not reaped it yet


def test_the_node_dies_with_a_replay_that_is_killed_outright(data_dir, tmp_path):
    bag = write_image_bag([data_dir / "vtest.avi"], tmp_path / "in", ImageBagOptions(rate_hz=10.0, max_frames=60)).path
    proc = subprocess.Popen([*OCL_INFER, "replay", str(bag), "--params", _params(tmp_path, backend=BACKEND)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    node_pid = None
    try:
        for line in proc.stderr:
            if "started vehicle_detector (pid" in line:
                node_pid = int(line.split("(pid ")[1].split(")")[0])
            if "node ready" in line:
                break
    finally:
        proc.kill()  # SIGKILL: no clean-up code runs in the replay
        proc.wait()
    assert node_pid is not None
    deadline = time.monotonic() + 20
    while _alive(node_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    alive = _alive(node_pid)
    if alive:
        os.kill(node_pid, signal.SIGKILL)  # never leave it behind, even when the test fails
    assert not alive
