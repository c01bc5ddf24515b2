"""`ocl-infer prepare-model --onnx`: exported detectors (raw YOLOv8-style, end-to-end, Darknet heads) become model
folders that the Detector runs on our engine and on onnxruntime alike; the head decoders against numpy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from ocl_infer.detection import Detector
from ocl_infer.detection.decode import decode_end_to_end, decode_outputs, needs_nms
from ocl_infer.detection.description import BoxesScoresHead, EndToEndHead, load_description
from ocl_infer.detection.exported import ULTRALYTICS_PAD, describe_onnx, parse_anchors
from ocl_infer.detection.preprocess import boxes_to_image, preprocess
from ocl_infer.errors import DetectionError, ModelError

from .reference import iou, nms_like_darknet
from .yolo_onnx import yolo_onnx

NAMES = ["person", "bicycle", "car"]
OCL_INFER = [sys.executable, "-m", "ocl_infer.cli"]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*OCL_INFER, *args], capture_output=True, text=True, timeout=300, env=dict(os.environ),
                          check=False)


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("exports")
    return {"raw": yolo_onnx(tmp / "v8.onnx", NAMES), "e2e": yolo_onnx(tmp / "v10.onnx", NAMES, end_to_end=True),
            "nameless": yolo_onnx(tmp / "nameless.onnx", None)}


@pytest.fixture(scope="module")
def street(data_dir: Path) -> np.ndarray:
    return cv2.imread(str(data_dir / "dog.jpg"))


def test_the_head_kind_names_and_input_come_from_the_graph(exports: dict[str, Path]) -> None:
    raw = describe_onnx(exports["raw"])
    assert raw["head"] == {"type": "boxes_scores", "combined": "output0", "transposed": True,
                           "box_format": "cxcywh", "normalized": False}
    assert raw["classes"] == NAMES and raw["input"]["name"] == "images"
    assert raw["input"]["shape"] == [1, 3, 96, 96] and raw["input"]["pad_value"] == pytest.approx(114 / 255)
    e2e = describe_onnx(exports["e2e"])
    assert e2e["head"] == {"type": "end_to_end", "output": "output0", "box_format": "xyxy", "normalized": False}
    assert e2e["classes"] == NAMES and e2e["input"]["pad_value"] == ULTRALYTICS_PAD


def test_class_names_missing_or_not_matching_are_refused_naming_the_file(exports: dict[str, Path]) -> None:
    with pytest.raises(ModelError, match=r"nameless\.onnx.*--names"):
        describe_onnx(exports["nameless"])
    assert describe_onnx(exports["nameless"], names=["a", "b", "c"])["classes"] == ["a", "b", "c"]
    with pytest.raises(ModelError, match=r"2 class names, but the head has 3"):
        describe_onnx(exports["nameless"], names=["a", "b"])


def test_a_darknet_export_gives_the_same_description_as_import_darknet(model_dir: Path, tmp_path: Path) -> None:
    """The prepared YOLOv3-tiny's model.onnx, with the cfg's anchors= line: the same yolo head as its model.json."""
    original = json.loads((model_dir / "model.json").read_text())
    names = tmp_path / "coco.names"
    names.write_text("\n".join(original["classes"]) + "\n")
    out = tmp_path / "tiny"
    res = _cli("prepare-model", "--onnx", str(model_dir / "model.onnx"), "--names", str(names), "--anchors",
               "10,14, 23,27, 37,58, 81,82, 135,169, 344,319", "--no-nnef", "-o", str(out))
    assert res.returncode == 0, res.stderr
    doc = json.loads((out / "model.json").read_text())
    assert doc["head"] == original["head"] and doc["classes"] == original["classes"]
    assert doc["input"]["pad_value"] == 0.5 and doc["files"] == {"onnx": "model.onnx"}
    assert sorted(p.name for p in out.iterdir()) == ["model.json", "model.onnx"]
    # without anchors: refused, naming the file and the flag, and nothing written
    res = _cli("prepare-model", "--onnx", str(model_dir / "model.onnx"), "--names", str(names), "-o",
               str(tmp_path / "none"))
    assert res.returncode == 2 and "--anchors" in res.stderr and "model.onnx" in res.stderr
    assert not (tmp_path / "none").exists()


def test_anchor_groups_follow_darknet_masks() -> None:
    outs = [("coarse", (1, 255, 13, 13)), ("fine", (1, 255, 26, 26))]
    assert parse_anchors("1,2, 3,4, 5,6, 7,8", outs, "x") == [[[5, 6], [7, 8]], [[1, 2], [3, 4]]]
    assert parse_anchors("1,2 3,4; 5,6 7,8", outs, "x") == [[[1, 2], [3, 4]], [[5, 6], [7, 8]]]
    with pytest.raises(ModelError, match="do not split evenly"):
        parse_anchors("1,2, 3,4, 5,6", outs, "x")


def test_decode_end_to_end_against_numpy() -> None:
    rng = np.random.default_rng(3)
    rows = np.concatenate([rng.uniform(0, 90, (40, 4)), rng.uniform(0, 1, (40, 1)), rng.integers(0, 3, (40, 1))], 1)
    rows[:, 2:4] = rows[:, :2] + rng.uniform(1, 30, (40, 2))
    head = EndToEndHead("out")
    got = decode_end_to_end({"out": rows[None].astype(np.float32)}, head, 96, 96, [0, 2], 0.4, 3)
    want = [r for r in rows if r[4] > 0.4 and int(r[5]) in (0, 2)]
    assert len(got.scores) == len(want) > 0
    np.testing.assert_allclose(got.boxes, [r[:4] for r in want], rtol=1e-6)
    np.testing.assert_allclose(got.scores, [r[4] for r in want], rtol=1e-6)
    assert list(got.class_ids) == [int(r[5]) for r in want]
    # cxcywh, normalized: the same boxes in another layout
    w, h = rows[:, 2] - rows[:, 0], rows[:, 3] - rows[:, 1]
    alt = np.stack([(rows[:, 0] + w / 2) / 96, (rows[:, 1] + h / 2) / 96, w / 96, h / 96, rows[:, 4], rows[:, 5]], 1)
    got2 = decode_outputs({"out": alt}, EndToEndHead("out", "cxcywh", True), 96, 96, [0, 2], 0.4, 3)
    np.testing.assert_allclose(got2.boxes, got.boxes, atol=1e-9)
    assert not needs_nms(head) and needs_nms(BoxesScoresHead(combined="x"))
    rows[0, 4:] = (0.9, 7)
    with pytest.raises(DetectionError, match="class id 7"):
        decode_end_to_end({"out": rows}, head, 96, 96, [0], 0.4, 3)
    with pytest.raises(DetectionError, match="expected 6"):
        decode_end_to_end({"out": rows[:, :5]}, head, 96, 96, [0], 0.4, 3)


def _reference(raw: np.ndarray, e2e: bool, box, threshold: float, nms_iou: float) -> list[tuple]:
    """numpy: candidates from the raw or end-to-end output, per-class NMS (raw only), image pixels."""
    out = raw[0].astype(np.float64)
    dets: list[tuple[tuple[float, ...], float, int]] = []
    if e2e:
        dets = [(tuple(r[:4]), float(r[4]), int(r[5])) for r in out if r[4] > threshold]
    else:
        for a in range(out.shape[1]):
            cx, cy, w, h = out[:4, a]
            for c in range(len(NAMES)):
                if out[4 + c, a] > threshold:
                    dets.append(((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), float(out[4 + c, a]), c))
        dets = [dets[i] for i in nms_like_darknet(dets, nms_iou)]
    dets.sort(key=lambda d: -d[1])
    boxes = boxes_to_image(np.array([d[0] for d in dets]).reshape(-1, 4), box)
    return [(NAMES[d[2]], d[1], tuple(b)) for d, b in zip(dets, boxes, strict=True)]


@pytest.mark.parametrize("kind", ["raw", "e2e"])
def test_prepared_onnx_detects_like_numpy_on_the_engine_and_onnxruntime(kind: str, exports: dict[str, Path],
                                                                        tmp_path: Path, street: np.ndarray) -> None:
    out = tmp_path / kind
    res = _cli("prepare-model", "--onnx", str(exports[kind]), "-o", str(out))
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in out.iterdir()) == ["model.json", "model.nnef", "model.onnx"]
    desc = load_description(out)
    x, box = preprocess(street, desc.input)
    import onnxruntime as ort

    raw = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"]).run(
        None, {"images": x})[0]
    want = _reference(raw, kind == "e2e", box, 0.5, 0.45)
    assert len(want) > 1
    for backend in ("opencl", "onnxruntime"):
        with Detector(out, backend=backend, classes=["all"], score_threshold=0.5) as det:
            got = det.detect(street)
        assert [d.label for d in got] == [w[0] for w in want], backend
        np.testing.assert_allclose([d.score for d in got], [w[1] for w in want], atol=1e-4)
        assert all(iou(d.box, w[2]) > 0.999 for d, w in zip(got, want, strict=True))


def test_existing_outputs_follow_the_force_rules(exports: dict[str, Path], tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "keep.jpg").write_bytes(b"x")
    res = _cli("prepare-model", "--onnx", str(exports["raw"]), "-o", str(photos), "--force", "--no-nnef")
    assert res.returncode == 2 and "not even --force" in res.stderr
    assert sorted(p.name for p in photos.iterdir()) == ["keep.jpg"]
    model = tmp_path / "model"
    assert _cli("prepare-model", "--onnx", str(exports["raw"]), "-o", str(model), "--no-nnef").returncode == 0
    res = _cli("prepare-model", "--onnx", str(exports["e2e"]), "-o", str(model), "--no-nnef")
    assert res.returncode == 2 and "--force" in res.stderr
    assert json.loads((model / "model.json").read_text())["head"]["type"] == "boxes_scores"
    res = _cli("prepare-model", "--onnx", str(exports["e2e"]), "-o", str(model), "--no-nnef", "--force")
    assert res.returncode == 0, res.stderr
    assert json.loads((model / "model.json").read_text())["head"]["type"] == "end_to_end"
    # a graph prepare-model does not know: refused with its outputs named, the old folder kept
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    res = _cli("prepare-model", "--onnx", str(bad), "-o", str(model), "--force")
    assert res.returncode == 2 and "bad.onnx" in res.stderr and "Traceback" not in res.stderr
    assert json.loads((model / "model.json").read_text())["head"]["type"] == "end_to_end"
    assert not list(tmp_path.glob(".model.tmp-*"))
