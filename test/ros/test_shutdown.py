"""Clean shutdown (issue 15, point 4): Ctrl-C under `ros2 launch` reaches the node twice (the terminal signals
the process group, launch forwards SIGINT). SIGINT twice in quick succession, once, or SIGTERM, at different
moments: during the imports, during the model load, idle, and while frames flow through inference and
publishing. Every time: exit code 0, no traceback, nothing published into a dead context."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import pytest
from ocl_infer_msgs.msg import FrameTiming
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from ocl_infer.child_process import ChildProcess
from ocl_infer.ros.image_conversion import bgr_to_image

pytestmark = [pytest.mark.ros, pytest.mark.slow]
WAIT_S = 60.0
EXIT_S = 20.0
DOUBLE_GAP_S = 0.02  # between the terminal's SIGINT and the one ros2 launch forwards
BAD_WORDS = ("Traceback", "KeyboardInterrupt", "context is invalid", "Failed to publish", "internal error",
             "Exception")


def signal_twice(proc: subprocess.Popen[bytes], sig: signal.Signals = signal.SIGINT) -> None:
    proc.send_signal(sig)
    time.sleep(DOUBLE_GAP_S)
    if proc.poll() is None:
        proc.send_signal(sig)


def assert_clean_exit(node, what: str) -> None:
    code = node.proc.wait(timeout=EXIT_S)
    log = node.log()
    assert code == 0, f"{what}: exit code {code}\n{log}"
    for word in BAD_WORDS:
        assert word not in log, f"{what}: {word!r} in the output\n{log}"


@pytest.mark.parametrize("after_s", [0.3, 1.0, 2.0])
def test_double_sigint_during_start_up(start_node, backend, after_s):
    node = start_node("vehicle_detector", {"backend": backend}, f"vd_start_{int(after_s * 10)}",
                      ["-r", f"__ns:=/start{int(after_s * 10)}"])
    time.sleep(after_s)
    ready = "ready:" in node.log()
    signal_twice(node.proc)
    assert_clean_exit(node, f"SIGINT x2 {after_s} s after start ({'ready' if ready else 'starting'})")
    if after_s < 1.0:
        assert not ready  # the imports alone take longer than this: the signals hit start-up


def wait_ready(node) -> None:
    end = time.monotonic() + WAIT_S + 60
    while "ready:" not in node.log():
        assert node.alive(), node.log()
        assert time.monotonic() < end, f"the node never got ready:\n{node.log()}"
        time.sleep(0.05)


def test_double_sigint_when_idle(start_node, backend):
    node = start_node("vehicle_detector", {"backend": backend}, "vd_idle", ["-r", "__ns:=/idle"])
    wait_ready(node)
    signal_twice(node.proc)
    assert_clean_exit(node, "SIGINT x2 when idle")


@pytest.mark.parametrize(("sig", "twice"), [(signal.SIGINT, True), (signal.SIGINT, False), (signal.SIGTERM, False),
                                            (signal.SIGTERM, True)])
def test_signals_while_frames_flow_through_inference_and_publishing(harness, start_node, backend, data_dir, sig,
                                                                    twice):
    ns = f"/flow_{sig.name.lower()}_{2 if twice else 1}"
    node = start_node("vehicle_detector", {"backend": backend, "deadline_ms": 60000.0, "overlay": True},
                      f"vd{ns.replace('/', '_')}", ["-r", f"__ns:={ns}"])
    timing = harness.subscribe(FrameTiming, f"{ns}/timing")
    harness.subscribe(Image, f"{ns}/detections/overlay")  # the overlay is published too: more to interrupt
    pub = harness.node.create_publisher(Image, f"{ns}/image", QoSProfile(depth=1,
                                                                        reliability=ReliabilityPolicy.BEST_EFFORT))
    harness.wait_matched(pub)
    frame = bgr_to_image(cv2.imread(str(data_dir / "dog.jpg")))
    stop = threading.Event()

    def camera() -> None:  # faster than the node infers: the worker is always busy
        while not stop.is_set():
            frame.header.stamp = harness.now_msg()
            pub.publish(frame)
            stop.wait(0.02)

    feeder = threading.Thread(target=camera, daemon=True)
    feeder.start()
    try:
        harness.wait_for(lambda: len(timing) >= 3, WAIT_S, "frames flowing through the node")
        if twice:
            signal_twice(node.proc, sig)
        else:
            node.proc.send_signal(sig)
        assert_clean_exit(node, f"{sig.name} {'x2' if twice else 'x1'} while frames flow")
    finally:
        stop.set()
        feeder.join()


def test_deadline_monitor_and_ocl_infer_launch_stop_cleanly_on_a_double_sigint(start_node, backend, tmp_path,
                                                                              child_env):
    monitor = start_node("deadline_monitor", {"pairs": ["/m/image -> /m/detections"]}, "monitor_sig")
    time.sleep(3.0)
    signal_twice(monitor.proc)
    assert_clean_exit(monitor, "deadline_monitor, SIGINT x2")

    import yaml

    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"/**": {"ros__parameters": {"backend": backend}}}))
    log_path = tmp_path / "launch.log"
    with ChildProcess([str(Path(sys.executable).parent / "ocl-infer"), "launch", "--params", str(params),
                       "--namespace", "launched_sig"], log_path, env=child_env(None), stdin=None) as launched:
        end = time.monotonic() + WAIT_S + 60
        while "ready:" not in launched.log():
            assert launched.alive() and time.monotonic() < end, launched.log()
            time.sleep(0.05)
        signal_twice(launched.proc)
        code = launched.wait(EXIT_S)
    text = log_path.read_text(errors="replace")
    assert code == 0, text
    assert not any(word in text for word in BAD_WORDS), text
