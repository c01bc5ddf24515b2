"""Frames answered by vehicle_detector with a camera in another process: the DDS transport at camera size.

    .venv/bin/python bench/dds_transport.py                       # defaults: neither side sets a profile
    .venv/bin/python bench/dds_transport.py --camera-profile shm  # the camera with the README's one line
    .venv/bin/python bench/dds_transport.py --node-profile empty  # the node with a profile of the user's own
                                                                  # (Fast DDS defaults): the old behaviour

This process is the camera: a plain rclpy publisher with sensor-data QoS (best effort, keep last 5), real
768x576 bgr8 street frames (vtest.avi) at 10 Hz, started once the node subscribes. The node is the console
script with config/vehicle_detection.yaml, as `ros2 launch ocl_infer vehicle_detection.launch.py` starts it.
Counted here: frames sent, detections received back (by stamp), FrameTimings (frames the node received) and
their outcomes, and the node's last camera status on /diagnostics. Profiles: `none` leaves
FASTDDS_DEFAULT_PROFILES_FILE unset (what a user's shell has), `shm` sets config/fastdds_shm.xml, `empty` sets
a profiles file with nothing in it (Fast DDS defaults, but a choice the node respects). DDS stays on loopback
with a random domain id.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHM_PROFILE = ROOT / "config" / "fastdds_shm.xml"
EMPTY_PROFILE = '<?xml version="1.0" encoding="UTF-8"?>\n<profiles xmlns="http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles"/>\n'


def profile_env(choice: str, tmp: Path) -> str | None:
    if choice == "shm":
        return str(SHM_PROFILE)
    if choice == "empty":
        path = tmp / "empty_profiles.xml"
        path.write_text(EMPTY_PROFILE)
        return str(path)
    return None


def load_frames(count: int) -> list:
    import cv2

    cap = cv2.VideoCapture(str(ROOT / ".cache" / "data" / "vtest.avi"))
    frames = []
    while len(frames) < count:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    if not frames:
        raise SystemExit("no frames in .cache/data/vtest.avi: run make setup")
    return frames


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--camera-profile", choices=("none", "shm", "empty"), default="none")
    parser.add_argument("--node-profile", choices=("none", "shm", "empty"), default="none")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="dds_transport_"))
    base_env = {k: v for k, v in os.environ.items() if k not in ("FASTDDS_DEFAULT_PROFILES_FILE", "ROS_LOCALHOST_ONLY")}
    base_env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    base_env["ROS_DOMAIN_ID"] = os.environ.get("ROS_DOMAIN_ID") or str(random.randint(101, 200))
    node_env = dict(base_env, PYTHONUNBUFFERED="1")
    if (p := profile_env(args.node_profile, tmp)) is not None:
        node_env["FASTDDS_DEFAULT_PROFILES_FILE"] = p
    # This process is the camera: its environment must be final before rclpy initialises.
    os.environ.clear()
    os.environ.update(base_env)
    if (p := profile_env(args.camera_profile, tmp)) is not None:
        os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = p

    frames = load_frames(min(args.frames, 200))
    log_path = tmp / "node.log"
    log = log_path.open("wb")
    node = subprocess.Popen(
        [str(Path(sys.executable).parent / "vehicle_detector"), "--ros-args", "--params-file",
         str(ROOT / "config" / "vehicle_detection.yaml")],
        stdout=log, stderr=subprocess.STDOUT, env=node_env, cwd=tmp)

    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from ocl_infer_msgs.msg import FrameTiming
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray

    from ocl_infer.ros.image_conversion import bgr_to_image

    rclpy.init()
    cam = rclpy.create_node("dds_transport_camera")
    lock = threading.Lock()
    answered: set[tuple[int, int]] = set()
    timings: list = []
    diags: list = []
    reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)

    def on_det(m) -> None:
        with lock:
            answered.add((m.header.stamp.sec, m.header.stamp.nanosec))

    def on_timing(m) -> None:
        with lock:
            timings.append(m)

    diagnosis: list[str] = []

    def on_diag(m) -> None:
        with lock:
            diags.extend(s for s in m.status if " camera " in s.name)
            diagnosis.extend(s.message for s in m.status if "likely cause" in s.message and not diagnosis)

    cam.create_subscription(Detection2DArray, "/detections", on_det, reliable)
    cam.create_subscription(FrameTiming, "/timing", on_timing, reliable)
    cam.create_subscription(DiagnosticArray, "/diagnostics", on_diag, reliable)
    pub = cam.create_publisher(Image, "/image", qos_profile_sensor_data)
    executor = SingleThreadedExecutor()
    executor.add_node(cam)
    spin = threading.Thread(target=executor.spin, daemon=True)
    spin.start()
    result: dict = {"frames": args.frames, "rate_hz": args.rate, "camera_profile": args.camera_profile,
                    "node_profile": args.node_profile}
    try:
        end = time.monotonic() + 180
        while pub.get_subscription_count() == 0:
            if node.poll() is not None or time.monotonic() > end:
                raise SystemExit(f"node not ready (exit {node.poll()}); log {log_path}:\n{log_path.read_text()}")
            time.sleep(0.1)
        time.sleep(1.0)  # let the node's writers match our readers too
        sent = []
        period = 1.0 / args.rate
        t0 = time.monotonic()
        for i in range(args.frames):
            due = t0 + i * period
            while (d := due - time.monotonic()) > 0:
                time.sleep(d)
            msg = bgr_to_image(frames[i % len(frames)])
            msg.header.stamp = cam.get_clock().now().to_msg()
            msg.header.frame_id = "camera"
            pub.publish(msg)
            sent.append((msg.header.stamp.sec, msg.header.stamp.nanosec))
        time.sleep(3.0)
        with lock:
            got = answered & set(sent)
            outcomes: dict[int, int] = {}
            for t in timings:
                outcomes[t.outcome] = outcomes.get(t.outcome, 0) + 1
            last = diags[-1] if diags else None
        names = {0: "published", 1: "stale_drop", 2: "overload_drop", 3: "miss", 4: "decode_error",
                 5: "inference_error"}
        result.update(sent=len(sent), answered=len(got), received_by_node=len(timings),
                      outcomes={names.get(k, str(k)): v for k, v in sorted(outcomes.items())},
                      node_diagnosis=diagnosis[0] if diagnosis else None)
        if last is not None:
            values = {kv.key: kv.value for kv in last.values}
            result["last_camera_status"] = {"level": last.level[0], "message": last.message,
                                            "transport_losses_total": values.get("transport_losses_total"),
                                            "dds_profile": values.get("dds_profile")}
    finally:
        node.send_signal(signal.SIGINT)
        try:
            result["node_exit"] = node.wait(timeout=20)
        except subprocess.TimeoutExpired:
            node.kill()
            result["node_exit"] = node.wait()
        log.close()
        executor.shutdown(timeout_sec=2.0)
        rclpy.try_shutdown()
    result["node_log"] = str(log_path)
    print(json.dumps(result, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
