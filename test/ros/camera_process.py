"""A camera in a process of its own, for tests that need the sender's DDS set-up to be its own.

    python test/ros/camera_process.py TOPIC --frames N --rate HZ [--qos sensor|reliable|transient]
        [--deadline-ms MS] [--delay-s S] [--width W --height H] [--wait-match S]

A plain rclpy publisher, as a camera driver would be: sensor_msgs/Image bgr8 frames of real footage
(vtest.avi, resized) stamped with the system clock. It waits until a subscriber matches (at most --wait-match
seconds), publishes the frames at the rate, prints one JSON line {"sent": N, "first_stamp_ns": ..., ...} and
exits. Its Fast DDS set-up is whatever the environment says (tests set or unset FASTDDS_DEFAULT_PROFILES_FILE).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def qos_profile(kind: str, deadline_ms: float = 0.0) -> object:
    from rclpy.duration import Duration
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

    if kind == "sensor":
        profile = QoSProfile(history=qos_profile_sensor_data.history, depth=qos_profile_sensor_data.depth,
                             reliability=qos_profile_sensor_data.reliability,
                             durability=qos_profile_sensor_data.durability)
    else:
        durability = DurabilityPolicy.TRANSIENT_LOCAL if kind == "transient" else DurabilityPolicy.VOLATILE
        profile = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE, durability=durability)
    if deadline_ms > 0:
        profile.deadline = Duration(nanoseconds=int(deadline_ms * 1e6))
    return profile


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("topic")
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--qos", choices=("sensor", "reliable", "transient"), default="sensor")
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--height", type=int, default=576)
    parser.add_argument("--wait-match", type=float, default=120.0)
    parser.add_argument("--deadline-ms", type=float, default=0.0, help="offer a QoS deadline (0: none)")
    parser.add_argument("--delay-s", type=float, default=0.0, help="wait this long after the match")
    args = parser.parse_args()

    import cv2
    import rclpy
    from sensor_msgs.msg import Image

    from ocl_infer.ros.image_conversion import bgr_to_image

    cap = cv2.VideoCapture(str(ROOT / ".cache" / "data" / "vtest.avi"))
    ok, frame = cap.read()
    cap.release()
    if not ok:
        frame = cv2.imread(str(ROOT / ".cache" / "data" / "dog.jpg"))
    frame = cv2.resize(frame, (args.width, args.height))

    rclpy.init()
    node = rclpy.create_node("test_camera")
    pub = node.create_publisher(Image, args.topic, qos_profile(args.qos, args.deadline_ms))
    end = time.monotonic() + args.wait_match
    while pub.get_subscription_count() == 0 and time.monotonic() < end:
        time.sleep(0.02)
    matched = pub.get_subscription_count() > 0
    time.sleep(args.delay_s)
    stamps = []
    t0 = time.monotonic()
    for i in range(args.frames if matched else 0):
        while (delay := t0 + i / args.rate - time.monotonic()) > 0:
            time.sleep(delay)
        msg = bgr_to_image(frame)
        msg.header.stamp = node.get_clock().now().to_msg()
        msg.header.frame_id = "test_camera"
        pub.publish(msg)
        stamps.append(msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec)
    time.sleep(0.5)  # let the last frames leave before the participant goes
    print(json.dumps({"matched": matched, "sent": len(stamps), "stamps_ns": stamps}), flush=True)
    node.destroy_node()
    rclpy.shutdown()
    return 0 if matched else 1


if __name__ == "__main__":
    sys.exit(main())
