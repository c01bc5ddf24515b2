"""The multi-camera demo's inputs and report: one footage on N camera topics, and batch sizes read back."""

from pathlib import Path

import numpy as np
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_typestore

from ocl_infer.bag.report import batch_size
from ocl_infer.bag.writer import ImageBagOptions, write_image_bag


def test_two_cameras_get_their_own_topics_out_of_step_and_the_second_mirrored(data_dir: Path, tmp_path: Path):
    opts = ImageBagOptions(rate_hz=20.0, max_frames=3, start_ns=10**18, cameras=2)
    bag = write_image_bag([data_dir / "vtest.avi"], tmp_path / "bag", opts)
    assert bag.topics == ("/camera/image_raw", "/camera_2/image_raw") and bag.frames == 3
    store = get_typestore(Stores.ROS2_HUMBLE)
    got: dict[str, list] = {}
    with Reader(bag.path) as reader:
        for conn, t, raw in reader.messages():
            msg = store.deserialize_cdr(raw, conn.msgtype)
            img = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.width, 3)
            got.setdefault(conn.topic, []).append((t, msg.header.frame_id, img))
    (t0, id0, a), (t1, id1, b) = got["/camera/image_raw"][0], got["/camera_2/image_raw"][0]
    assert (id0, id1) == ("camera", "camera_2") and t1 - t0 == 25_000_000  # half a period later
    np.testing.assert_array_equal(b, a[:, ::-1])


def test_batch_size_is_read_from_the_timing_detail():
    assert batch_size("batch of 2") == 2
    assert batch_size("latency 120.0 ms > deadline 100 ms; batch of 4") == 4
    assert batch_size("") == 1 and batch_size("batch of x") == 1
