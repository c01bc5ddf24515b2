"""Rosbag2 tools without ROS: footage → bag, bag inspection, image messages ↔ numpy, replay report maths.

Everything here works on serialized CDR bytes through the pure-Python `rosbags` library, so it runs (and is
tested) without rclpy; `ocl_infer.ros.replay` moves these bytes over DDS.
"""

from ocl_infer.bag.reader import BagInfo, TopicSummary, inspect_bag, open_bag, select_camera_topics
from ocl_infer.bag.typestore import COMPRESSED_IMAGE, IMAGE, build_typestore
from ocl_infer.bag.writer import ImageBagOptions, write_image_bag

__all__ = [
    "COMPRESSED_IMAGE",
    "IMAGE",
    "BagInfo",
    "ImageBagOptions",
    "TopicSummary",
    "build_typestore",
    "inspect_bag",
    "open_bag",
    "select_camera_topics",
    "write_image_bag",
]
