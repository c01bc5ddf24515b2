"""`ocl-infer detect` as a user runs it, and the OpenCL engine against onnxruntime on real frames."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from ocl_infer.detection.nms import iou

OCL_INFER = [str(Path(sys.executable).with_name("ocl-infer"))]


def _detect(*args: str, timeout: int = 300, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*OCL_INFER, "detect", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, check=False)


def _lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines()]


def test_json_line_per_image_with_latency(data_dir: Path) -> None:
    res = _detect(str(data_dir / "dog.jpg"), "--json", "--backend", "onnxruntime")
    assert res.returncode == 0, res.stderr
    (frame,) = _lines(res.stdout)
    assert frame["source"].endswith("dog.jpg") and frame["frame"] == 0
    assert {"car", "truck", "bicycle"} <= {d["label"] for d in frame["detections"]}
    car = next(d for d in frame["detections"] if d["label"] == "car")
    assert car["class_id"] == 2 and 0.25 < car["score"] <= 1 and len(car["box"]) == 4
    assert set(frame["latency_ms"]) == {"preprocess", "inference", "postprocess", "total"}
    assert frame["latency_ms"]["total"] >= frame["latency_ms"]["inference"] > 0


def test_readable_lines_classes_and_overlay(data_dir: Path, tmp_path: Path) -> None:
    res = _detect(str(data_dir / "dog.jpg"), "--classes", "dog", "bicycle", "--backend", "onnxruntime",
                  "--overlay", str(tmp_path / "ov"))
    assert res.returncode == 0, res.stderr
    line = res.stdout.strip()
    assert line.startswith(f"{data_dir / 'dog.jpg'}#0: ") and "dog 0." in line and "bicycle 0." in line
    assert "car" not in line
    overlay = cv2.imread(str(tmp_path / "ov" / "dog.jpg"))
    original = cv2.imread(str(data_dir / "dog.jpg"))
    assert overlay.shape == original.shape
    assert np.abs(overlay.astype(int) - original).max() > 100  # boxes were drawn


def test_folder_skips_unreadable_files_and_goes_on(data_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    shutil.copy(data_dir / "dog.jpg", folder / "a_dog.jpg")
    (folder / "b_broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (folder / "notes.txt").write_text("hello")
    shutil.copy(data_dir / "person.jpg", folder / "c_person.jpg")
    res = _detect(str(folder), "--json", "--backend", "onnxruntime", "--progress")
    assert res.returncode == 0, res.stderr
    assert [Path(f["source"]).name for f in _lines(res.stdout)] == ["a_dog.jpg", "c_person.jpg"]
    assert "b_broken.jpg is not a readable image" in res.stderr and "notes.txt" in res.stderr
    assert "3/3" in res.stderr  # the progress bar reached the end


def test_video_frames_progress_and_overlays(data_dir: Path, tmp_path: Path) -> None:
    res = _detect(str(data_dir / "vtest.avi"), "--json", "--max-frames", "3", "--progress", "--backend",
                  "onnxruntime", "--overlay", str(tmp_path))
    assert res.returncode == 0, res.stderr
    frames = _lines(res.stdout)
    assert [f["frame"] for f in frames] == [0, 1, 2]
    assert all(any(d["label"] == "car" for d in f["detections"]) for f in frames)
    assert "[" in res.stderr and "3/3" in res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"vtest_{i:06d}.jpg" for i in range(3)]


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("notes.txt", b"hello", "notes.txt is not a readable image"),
        ("empty.avi", b"", "empty.avi: cannot read any frame"),
        ("missing.jpg", None, "missing.jpg does not exist"),
    ],
)
def test_bad_inputs_give_one_clear_line(tmp_path: Path, name: str, content: bytes | None, needle: str) -> None:
    if content is not None:
        (tmp_path / name).write_bytes(content)
    res = _detect(str(tmp_path / name), "--backend", "onnxruntime")
    assert res.returncode == 2 and needle in res.stderr and "Traceback" not in res.stderr


def test_unknown_class_lists_valid_ones(data_dir: Path, tmp_path: Path) -> None:
    res = _detect(str(data_dir / "dog.jpg"), "--classes", "zeppelin", "--backend", "onnxruntime")
    assert res.returncode == 2 and "unknown class 'zeppelin'" in res.stderr and "bicycle, car" in res.stderr
    res = _detect(str(data_dir / "dog.jpg"), "--model", str(tmp_path), "--backend", "onnxruntime")
    assert res.returncode == 2 and "has no model.json" in res.stderr


def test_opencl_engine_equals_onnxruntime_on_real_frames(data_dir: Path) -> None:
    """Real frames through both backends, one process each: same boxes (IoU ≥ 0.99) and scores (±1e-3)."""
    inputs = [str(data_dir / "dog.jpg"), str(data_dir / "vtest.avi"), "--max-frames", "2", "--json",
              "--classes", "all"]
    ref = _detect(*inputs, "--backend", "onnxruntime")
    # host preprocessing: the same input tensor as the reference (device preprocessing: test_device_preprocess)
    got = _detect(*inputs, "--backend", "opencl", "--preprocess", "host", "--devices", "all",
                  env={"POCL_DEVICES": "pthread pthread"})
    assert ref.returncode == 0, ref.stderr
    assert got.returncode == 0, got.stderr[-2000:]
    ref_frames, got_frames = _lines(ref.stdout), _lines(got.stdout)
    assert [(f["source"], f["frame"]) for f in got_frames] == [(f["source"], f["frame"]) for f in ref_frames]
    assert sum(len(f["detections"]) for f in ref_frames) >= 8
    for r, g in zip(ref_frames, got_frames, strict=True):
        assert [d["label"] for d in g["detections"]] == [d["label"] for d in r["detections"]], r["source"]
        for dr, dg in zip(r["detections"], g["detections"], strict=True):
            assert abs(dr["score"] - dg["score"]) <= 1e-3
            assert iou(dr["box"], dg["box"]) >= 0.99
