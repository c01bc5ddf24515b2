"""Bags shared by the replay tests."""

import cv2
import pytest
from rosbags.rosbag2 import Writer
from rosbags.typesys import Stores, get_typestore

from ocl_infer.bag.images import image_message

STORE = get_typestore(Stores.ROS2_KILTED)


@pytest.fixture
def mixed_bag(tmp_path, data_dir):
    """A bag as a real robot records it: two cameras (raw and compressed) plus non-camera topics."""
    path = tmp_path / "mixed"
    cap = cv2.VideoCapture(str(data_dir / "vtest.avi"))
    t0 = 1_700_000_000_000_000_000
    with Writer(path, version=9) as w:
        raw = w.add_connection("/front/image_raw", "sensor_msgs/msg/Image", typestore=STORE)
        comp = w.add_connection("/rear/image_raw/compressed", "sensor_msgs/msg/CompressedImage", typestore=STORE)
        text = w.add_connection("/chatter", "std_msgs/msg/String", typestore=STORE)
        speed = w.add_connection("/speed", "std_msgs/msg/Float64", typestore=STORE)
        for i in range(3):
            frame = cap.read()[1]
            t = t0 + i * 200_000_000
            w.write(raw, t, STORE.serialize_cdr(image_message(STORE, frame, t, "front"), "sensor_msgs/msg/Image"))
            _ok, jpg = cv2.imencode(".jpg", frame)
            msg = STORE.types["sensor_msgs/msg/CompressedImage"](
                header=STORE.types["std_msgs/msg/Header"](
                    stamp=STORE.types["builtin_interfaces/msg/Time"](sec=t // 10**9, nanosec=t % 10**9),
                    frame_id="rear"),
                format="jpeg", data=jpg.reshape(-1))
            w.write(comp, t + 1, STORE.serialize_cdr(msg, "sensor_msgs/msg/CompressedImage"))
            w.write(text, t, STORE.serialize_cdr(STORE.types["std_msgs/msg/String"](data="hi"), "std_msgs/msg/String"))
        w.write(speed, t0, STORE.serialize_cdr(STORE.types["std_msgs/msg/Float64"](data=3.0), "std_msgs/msg/Float64"))
    return path
