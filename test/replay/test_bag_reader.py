"""Reading bags: which topics are played or ignored, clear errors for bad paths and formats, image decoding."""

import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from ocl_infer.bag.images import decode_image, decode_raw_image, image_message
from ocl_infer.bag.reader import header_stamp_ns, inspect_bag, select_camera_topics
from ocl_infer.bag.writer import ImageBagOptions, write_image_bag
from ocl_infer.errors import BagError, ImageError

STORE = get_typestore(Stores.ROS2_KILTED)


def test_every_camera_topic_is_played_and_the_rest_ignored(mixed_bag):
    info = inspect_bag(mixed_bag)
    assert info.storage == "sqlite3" and info.message_count == 10
    play, ignored = select_camera_topics(info)
    assert play == ["/front/image_raw", "/rear/image_raw/compressed"]
    assert ignored == ["/chatter", "/speed"]
    assert select_camera_topics(info, ["/rear/image_raw/compressed"]) == (
        ["/rear/image_raw/compressed"], ["/chatter", "/front/image_raw", "/speed"])


def test_asking_for_a_missing_or_non_camera_topic_names_it(mixed_bag):
    info = inspect_bag(mixed_bag)
    with pytest.raises(BagError, match=r"no topic /left/image_raw in the bag \(has /front/image_raw, /rear"):
        select_camera_topics(info, ["/left/image_raw"])
    with pytest.raises(BagError, match="topic /speed is std_msgs/msg/Float64, not an Image or CompressedImage"):
        select_camera_topics(info, ["/speed"])


def test_a_bag_without_cameras_says_what_it_has(tmp_path):
    path = tmp_path / "nocam"
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        c = w.add_connection("/chatter", "std_msgs/msg/String", typestore=STORE)
        w.write(c, 1, STORE.serialize_cdr(STORE.types["std_msgs/msg/String"](data="x"), "std_msgs/msg/String"))
    info = inspect_bag(path)
    assert info.storage == "mcap"
    with pytest.raises(BagError, match=r"no sensor_msgs/Image or CompressedImage topic.*/chatter \(std_msgs/msg/Str"):
        select_camera_topics(info)


def test_bad_paths_and_unknown_formats_are_clear_errors(tmp_path):
    with pytest.raises(BagError, match="no such bag"):
        inspect_bag(tmp_path / "missing")
    ros1 = tmp_path / "old.bag"
    ros1.write_bytes(b"#ROSBAG V2.0\n")
    with pytest.raises(BagError, match=r"unknown bag format '\.bag'.*ROS 1 \.bag is not supported"):
        inspect_bag(ros1)
    (tmp_path / "empty").mkdir()
    with pytest.raises(BagError, match="not a rosbag2 folder"):
        inspect_bag(tmp_path / "empty")
    corrupt = tmp_path / "corrupt.db3"
    corrupt.write_bytes(b"this is not sqlite")
    with pytest.raises(BagError, match=r"corrupt\.db3: cannot read bag"):
        inspect_bag(corrupt)


@pytest.mark.parametrize("version", [8, 9])
@pytest.mark.parametrize("storage", [StoragePlugin.SQLITE3, StoragePlugin.MCAP])
def test_bags_in_the_formats_ros2_bag_record_writes_are_read(tmp_path, data_dir, version, storage):
    # rosbag2 in Iron/Jazzy writes metadata version 8, Kilted 9; both storages, as `ros2 bag record -s`.
    path = tmp_path / "rec"
    frame = cv2.imread(str(data_dir / "dog.jpg"))
    with Writer(path, version=version, storage_plugin=storage) as w:
        c = w.add_connection("/cam/image_raw", "sensor_msgs/msg/Image", typestore=STORE)
        w.write(c, 42, STORE.serialize_cdr(image_message(STORE, frame, 41, "cam"), "sensor_msgs/msg/Image"))
    info = inspect_bag(path)
    assert info.storage == storage.name.lower() and select_camera_topics(info) == (["/cam/image_raw"], [])


def test_a_single_storage_file_is_readable_too(tmp_path, data_dir):
    bag = write_image_bag([data_dir / "dog.jpg"], tmp_path / "b", ImageBagOptions(storage="mcap")).path
    info = inspect_bag(bag / "b.mcap")
    assert [t.name for t in info.topics] == ["/camera/image_raw"] and info.storage == "mcap"


def test_replay_of_a_bad_bag_exits_2_with_one_line(tmp_path):
    for bag, message in ((tmp_path / "nope", "no such bag"), (tmp_path / "x.bag", "unknown bag format")):
        if bag.suffix:
            bag.write_bytes(b"#ROSBAG V2.0\n")
        out = subprocess.run([sys.executable, "-m", "ocl_infer.cli", "replay", str(bag)], capture_output=True,
                             text=True, timeout=60, check=False)
        assert out.returncode == 2
        assert out.stderr.startswith(f"ocl-infer replay: error: {bag}: ") and message in out.stderr
        assert out.stderr.count("\n") == 1


def test_header_stamp_is_read_without_deserializing(data_dir):
    frame = cv2.imread(str(data_dir / "dog.jpg"))
    stamp = 1_234_567_890_987_654_321
    raw = STORE.serialize_cdr(image_message(STORE, frame, stamp, "c"), "sensor_msgs/msg/Image")
    assert header_stamp_ns(raw) == stamp


def _raw(encoding, h, w, step, data):
    return STORE.types["sensor_msgs/msg/Image"](
        header=STORE.types["std_msgs/msg/Header"](stamp=STORE.types["builtin_interfaces/msg/Time"](sec=0, nanosec=0),
                                                  frame_id=""),
        height=h, width=w, encoding=encoding, is_bigendian=0, step=step, data=np.asarray(data, np.uint8).reshape(-1))


def test_raw_images_decode_through_step_and_encoding(data_dir):
    bgr = cv2.imread(str(data_dir / "dog.jpg"))[:37, :51]
    h, w = bgr.shape[:2]
    padded = np.zeros((h, w * 3 + 13), np.uint8)  # rows padded to a step larger than width*3
    padded[:, : w * 3] = bgr.reshape(h, w * 3)
    np.testing.assert_array_equal(decode_raw_image(_raw("bgr8", h, w, w * 3 + 13, padded)), bgr)
    rgb = bgr[:, :, ::-1].copy()
    np.testing.assert_array_equal(decode_raw_image(_raw("rgb8", h, w, w * 3, rgb)), bgr)
    gray = bgr[:, :, 1].copy()
    np.testing.assert_array_equal(decode_raw_image(_raw("mono8", h, w, w, gray)), np.dstack([gray] * 3))
    with pytest.raises(ImageError, match="/cam: unsupported image encoding '16uc1'"):
        decode_raw_image(_raw("16UC1", h, w, w * 2, np.zeros(h * w * 2)), "/cam")
    with pytest.raises(ImageError, match="/cam: image field mismatch: 51x37 bgr8 step 100"):
        decode_raw_image(_raw("bgr8", h, w, 100, np.zeros(100 * h)), "/cam")
    with pytest.raises(ImageError, match="not a camera image type"):
        decode_image(None, "std_msgs/msg/String", "/x")


def test_header_stamps_far_from_record_time_are_warned_about(tmp_path, data_dir):
    from ocl_infer.ros.replay.session import _warn_about_stamps

    path = tmp_path / "zero_stamps"
    frame = cv2.imread(str(data_dir / "dog.jpg"))
    with Writer(path, version=9) as w:
        c = w.add_connection("/cam/image_raw", "sensor_msgs/msg/Image", typestore=STORE)
        for i in range(2):  # a driver that leaves header.stamp at zero
            w.write(c, 1_700_000_000_000_000_000 + i, STORE.serialize_cdr(image_message(STORE, frame, 0, "c"),
                                                                         "sensor_msgs/msg/Image"))
    lines: list[str] = []
    _warn_about_stamps(path, ["/cam/image_raw"], lines.append)
    assert len(lines) == 1 and "/cam/image_raw: header stamps are 1700000000.0 s from the record time" in lines[0]
    good = write_image_bag([data_dir / "dog.jpg"], tmp_path / "good").path
    lines.clear()
    _warn_about_stamps(good, ["/camera/image_raw"], lines.append)
    assert lines == []


def test_replay_refuses_an_existing_output_bag_and_a_missing_params_file(tmp_path, data_dir):
    bag = write_image_bag([data_dir / "dog.jpg"], tmp_path / "in").path
    (tmp_path / "out").mkdir()
    cases = ((["-o", str(tmp_path / "out")], "exists already, not overwriting"),
             (["--params", str(tmp_path / "none.yaml")], "params: no such file"),
             (["--loop", "0"], "loop: must be ≥ 1"))
    for extra, message in cases:
        out = subprocess.run([sys.executable, "-m", "ocl_infer.cli", "replay", str(bag), *extra],
                             capture_output=True, text=True, timeout=60, check=False)
        assert out.returncode == 2 and message in out.stderr, out.stderr


def test_a_failed_replay_leaves_the_output_as_it_was(tmp_path, data_dir):
    """A node that cannot start fails the replay (exit 2): no new output bag, and with --force an old bag
    stays untouched; a folder that is not a bag is refused even with --force."""
    bag = write_image_bag([data_dir / "dog.jpg"], tmp_path / "in").path
    old = write_image_bag([data_dir / "dog.jpg"], tmp_path / "old").path
    before = sorted((p.name, p.stat().st_size) for p in old.iterdir())
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "keep.jpg").write_bytes(b"x")
    env = {**os.environ, "OCL_INFER_NODE_EXECUTABLE": "/bin/false"}
    for target, extra, message in ((tmp_path / "new", [], "did not start"), (old, ["--force"], "did not start"),
                                   (photos, ["--force"], "is not a rosbag2 folder")):
        out = subprocess.run([sys.executable, "-m", "ocl_infer.cli", "replay", str(bag), "-o", str(target), *extra,
                              "--ready-timeout", "20"], capture_output=True, text=True, timeout=120, env=env,
                             check=False)
        assert out.returncode == 2 and message in out.stderr, out.stderr
    assert not (tmp_path / "new").exists()
    assert sorted((p.name, p.stat().st_size) for p in old.iterdir()) == before
    assert [p.name for p in photos.iterdir()] == ["keep.jpg"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no stage left behind
