"""Test set-up shared by every test.

ROS safety first: before anything can import rclpy, DDS discovery is kept on loopback and a random domain id
isolates this run from any other on the machine. Large images go through a shared-memory Fast DDS profile.
"""

import os
import random
from pathlib import Path

import pytest

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(1, 100)))
os.environ.pop("ROS_LOCALHOST_ONLY", None)  # ignored by Kilted, and confusing next to the line above

FASTDDS_PROFILE = Path(__file__).resolve().parent.parent / "config" / "fastdds_shm.xml"
if FASTDDS_PROFILE.is_file():
    os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(FASTDDS_PROFILE))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Sample footage fetched by `make setup` (darknet images, vtest.avi)."""
    from ocl_infer.paths import data_dir

    path = data_dir()
    if not (path / ".complete").is_file():
        pytest.fail(f"sample data missing in {path}: run `make setup`")
    return path


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """The YOLOv3-tiny model prepared by `make setup` (model.nnef/, model.onnx, model.json)."""
    from ocl_infer.paths import default_model_dir

    path = default_model_dir()
    if not (path / "model.json").is_file():
        pytest.fail(f"detector model missing in {path}: run `make setup`")
    return path
