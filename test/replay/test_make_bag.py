"""`ocl-infer make-bag` from real footage, read back with rosbags directly (not through our reader)."""

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_typestore

from ocl_infer.cli.main import main

STORE = get_typestore(Stores.ROS2_KILTED)


def _video_frames(path: Path, n: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = [cap.read()[1] for _ in range(n)]
    cap.release()
    return frames


def _read_back(bag: Path) -> tuple[str, list[tuple[str, str, int, object]]]:
    with Reader(bag) as reader:
        rows = [
            (c.topic, c.msgtype, t, STORE.deserialize_cdr(raw, c.msgtype)) for c, t, raw in reader.messages()
        ]
    files = sorted(p.suffix for p in bag.iterdir())
    return ("mcap" if ".mcap" in files else "sqlite3" if ".db3" in files else "?"), rows


@pytest.mark.parametrize("fmt", ["sqlite3", "mcap"])
@pytest.mark.parametrize("compressed", [False, True], ids=["image", "compressed"])
def test_video_to_bag_reads_back_with_stamps_frame_id_and_pixels(data_dir, tmp_path, capsys, fmt, compressed):
    bag = tmp_path / "bag"
    args = ["make-bag", str(data_dir / "vtest.avi"), "-o", str(bag), "--format", fmt, "--rate", "20",
            "--max-frames", "5", "--frame-id", "cam0"] + (["--compressed"] if compressed else [])
    assert main(args) == 0
    assert "5 frames 768x576" in capsys.readouterr().out
    storage, rows = _read_back(bag)
    assert storage == fmt
    topic = "/camera/image_raw/compressed" if compressed else "/camera/image_raw"
    msgtype = "sensor_msgs/msg/CompressedImage" if compressed else "sensor_msgs/msg/Image"
    assert [(r[0], r[1]) for r in rows] == [(topic, msgtype)] * 5
    stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for *_, m in rows]
    assert stamps == [r[2] for r in rows]  # header stamp == bag time
    assert np.diff(stamps).tolist() == [50_000_000] * 4  # 20 Hz
    assert all(m.header.frame_id == "cam0" for *_, m in rows)
    for (*_, msg), expected in zip(rows, _video_frames(data_dir / "vtest.avi", 5), strict=True):
        if compressed:
            assert msg.format == "jpeg"
            got = cv2.imdecode(msg.data, cv2.IMREAD_COLOR)
            assert got.shape == expected.shape
            assert np.abs(got.astype(int) - expected).mean() < 4  # JPEG quality 90
        else:
            assert (msg.encoding, msg.height, msg.width, msg.step) == ("bgr8", 576, 768, 768 * 3)
            np.testing.assert_array_equal(msg.data.reshape(576, 768, 3), expected)


def test_still_images_keep_their_order_and_sizes(data_dir, tmp_path):
    bag = tmp_path / "stills"
    images = [data_dir / "dog.jpg", data_dir / "horses.jpg", data_dir / "person.jpg"]
    assert main(["make-bag", *map(str, images), "-o", str(bag), "--rate", "2", "--topic", "/front/image"]) == 0
    _, rows = _read_back(bag)
    assert [r[0] for r in rows] == ["/front/image"] * 3
    for (*_, msg), path in zip(rows, images, strict=True):
        expected = cv2.imread(str(path))
        np.testing.assert_array_equal(msg.data.reshape(msg.height, msg.width, 3), expected)
    assert rows[1][2] - rows[0][2] == 500_000_000


def test_refuses_to_overwrite_and_leaves_the_old_bag_alone(data_dir, tmp_path, capsys):
    bag = tmp_path / "bag"
    assert main(["make-bag", str(data_dir / "dog.jpg"), "-o", str(bag)]) == 0
    before = {p.name: p.stat().st_mtime_ns for p in bag.iterdir()}
    assert main(["make-bag", str(data_dir / "horses.jpg"), "-o", str(bag)]) == 2
    assert "exists already, not overwriting" in capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in bag.iterdir()} == before


def _tree(root):
    return {str(p.relative_to(root)): None if p.is_dir() else p.read_bytes() for p in sorted(root.rglob("*"))}


def test_force_replaces_a_bag_and_nothing_else(data_dir, tmp_path, capsys):
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    (photos / "keep.txt").write_text("mine")
    before = _tree(photos)
    for force in ([], ["--force"]):
        assert main(["make-bag", str(data_dir / "dog.jpg"), "-o", str(photos), *force]) == 2
        assert f"{photos}: exists already" in capsys.readouterr().err
    assert _tree(photos) == before
    bag = tmp_path / "bag"
    assert main(["make-bag", str(data_dir / "dog.jpg"), "-o", str(bag)]) == 0
    old = _tree(bag)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    assert main(["make-bag", str(data_dir / "horses.jpg"), str(broken), "-o", str(bag), "--force"]) == 2
    assert _tree(bag) == old  # a failed forced run leaves the old bag as it was
    assert main(["make-bag", str(data_dir / "horses.jpg"), str(data_dir / "dog.jpg"), "-o", str(bag), "--force"]) == 0
    assert len(_read_back(bag)[1]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bag", "broken.jpg", "photos"]


def test_a_failure_leaves_nothing_half_written(data_dir, tmp_path, capsys):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    bag = tmp_path / "out" / "bag"
    bag.parent.mkdir()
    assert main(["make-bag", str(data_dir / "dog.jpg"), str(broken), "-o", str(bag)]) == 2
    assert f"{broken}: cannot decode as an image" in capsys.readouterr().err
    assert list(bag.parent.iterdir()) == []  # no bag, no staging folder


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["/nonexistent/clip.avi"], "/nonexistent/clip.avi: no such file"),
        (["{data}/dog.jpg", "--topic", "camera"], "topic: 'camera' is not an absolute ROS topic name"),
        (["{data}/dog.jpg", "--rate", "0"], "rate: must be > 0 Hz"),
        (["{data}/vtest.avi", "{data}/dog.jpg"], "give one video or only images"),
    ],
)
def test_bad_input_is_one_clear_line(data_dir, tmp_path, capsys, args, message):
    argv = ["make-bag", *(a.format(data=data_dir) for a in args), "-o", str(tmp_path / "bag")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "bag").exists()


def test_runs_as_a_user_runs_it(data_dir, tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "ocl_infer.cli", "make-bag", str(data_dir / "vtest.avi"), "-o", str(tmp_path / "b"),
         "--max-frames", "3", "--compressed", "--format", "mcap"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "wrote" in out.stdout and "3 frames" in out.stdout and "CompressedImage" in out.stdout
