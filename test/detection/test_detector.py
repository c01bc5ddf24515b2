"""The Detector on real frames with the real YOLOv3-tiny weights (onnxruntime backend in process)."""

from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from ocl_infer.detection import Detection, DetectionResult, Detector
from ocl_infer.detection.description import load_description
from ocl_infer.detection.preprocess import boxes_to_image, preprocess
from ocl_infer.errors import ConfigError, DetectionError, ImageError

from .frames import vtest_frames
from .reference import decode_like_darknet, nms_like_darknet


@pytest.fixture(scope="module")
def ort_detector(model_dir: Path):
    with Detector(model_dir, backend="onnxruntime", threads=2) as det:
        yield det


@pytest.fixture(scope="module")
def dog(data_dir: Path) -> np.ndarray:
    return cv2.imread(str(data_dir / "dog.jpg"))


def test_dog_jpg_has_car_truck_and_bicycle(ort_detector: Detector, dog: np.ndarray) -> None:
    dets = ort_detector.detect(dog)
    labels = {d.label for d in dets}
    assert {"car", "truck", "bicycle"} <= labels and "dog" not in labels  # default: vehicles only
    assert all(isinstance(d, Detection) and 0.25 < d.score <= 1 for d in dets)
    assert all(0 <= d.box[0] < d.box[2] <= 768 and 0 <= d.box[1] < d.box[3] <= 576 for d in dets)
    bike = next(d for d in dets if d.label == "bicycle")
    # the bicycle is in the lower-left half of the frame, the car at the top right
    assert bike.box[0] < 300 and bike.box[3] > 400
    car = max((d for d in dets if d.label == "car"), key=lambda d: d.score)
    assert car.box[0] > 400 and car.box[3] < 250


def test_detector_equals_an_independent_float64_pipeline(ort_detector: Detector, dog: np.ndarray,
                                                          model_dir: Path) -> None:
    """Same frame through onnxruntime directly, decoded and suppressed by the Darknet-style loop references."""
    desc = load_description(model_dir)
    x, box = preprocess(dog, desc.input)
    sess = ort.InferenceSession(str(desc.onnx_path), providers=["CPUExecutionProvider"])
    raw = dict(zip(desc.output_names, sess.run(desc.output_names, {"image": x}), strict=True))
    cands = []
    for out in desc.head.outputs:
        cands += decode_like_darknet(raw[out.name][0], list(out.anchors), 80, 416, 416, 0.25)
    cands = [c for c in cands if c[2] in (1, 2, 3, 5, 6, 7)]
    keep = nms_like_darknet(cands, 0.45)
    want = sorted((cands[k][2], round(cands[k][1], 4), *np.round(boxes_to_image(np.array([cands[k][0]]), box)[0], 2))
                  for k in keep)
    got = sorted((d.class_id, round(d.score, 4), *np.round(d.box, 2)) for d in ort_detector.detect(dog))
    assert got == want


def test_vtest_street_frames_show_the_parked_car(ort_detector: Detector, data_dir: Path) -> None:
    for frame in vtest_frames(data_dir, [0, 400]):
        dets = ort_detector.detect(frame)
        assert any(d.label == "car" and d.score > 0.5 for d in dets)


def test_timed_submit_and_batch_agree_with_detect(ort_detector: Detector, dog: np.ndarray,
                                                  data_dir: Path) -> None:
    frames = [dog, *vtest_frames(data_dir, [10])]
    single = [ort_detector.detect(f) for f in frames]
    assert ort_detector.detect_batch(frames) == single
    results = [ort_detector.submit(f) for f in frames]
    timed = [r.result(timeout=60) for r in results]
    assert [t.detections for t in timed] == single
    t = ort_detector.detect_timed(dog)
    assert isinstance(t, DetectionResult) and t.device == "onnxruntime:cpu"
    assert min(t.preprocess_ms, t.inference_ms, t.postprocess_ms) >= 0 and t.total_ms > 0


def test_classes_by_name_and_id(model_dir: Path, dog: np.ndarray) -> None:
    with Detector(model_dir, classes=["dog", 2], backend="onnxruntime") as det:
        assert det.class_ids == [16, 2] and len(det.class_names) == 80
        assert {d.label for d in det.detect(dog)} == {"dog", "car"}
    with pytest.raises(DetectionError, match="valid: person, bicycle"):
        Detector(model_dir, classes=["spaceship"], backend="onnxruntime")


def test_bad_inputs_and_settings(ort_detector: Detector, model_dir: Path) -> None:
    for bad in (np.zeros((8, 8, 3), np.float32), np.zeros((8, 8), np.uint8), np.zeros((0, 8, 3), np.uint8), None):
        with pytest.raises(ImageError):
            ort_detector.detect(bad)
    with pytest.raises(ImageError, match=r"images\[1\]"):
        ort_detector.detect_batch([np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 4), np.uint8)])
    with pytest.raises(ConfigError, match="score_threshold"):
        Detector(model_dir, score_threshold=1.5, backend="onnxruntime")
    with pytest.raises(ConfigError, match="backend"):
        Detector(model_dir, backend="tensorrt")
    with pytest.raises(DetectionError, match=r"has no model\.json"):
        Detector(model_dir.parent, backend="onnxruntime")
    det = Detector(model_dir, backend="onnxruntime")
    det.close()
    with pytest.raises(DetectionError, match="closed"):
        det.detect(np.zeros((8, 8, 3), np.uint8))


def test_opencl_detector_in_process_matches_reference(ort_detector: Detector, dog: np.ndarray,
                                                      model_dir: Path) -> None:
    """The default backend runs our engine; submit() goes through the engine's dispatcher and names the device."""
    want = ort_detector.detect(dog)
    # host preprocessing: the same input tensor as the reference (device preprocessing: test_device_preprocess)
    with Detector(model_dir, preprocess="host") as det:
        assert det.backend == "opencl" and det.device.startswith("cl:")
        res = det.submit(dog).result(timeout=120)
        assert res.device.startswith("cl:")
    assert [d.label for d in res.detections] == [d.label for d in want]
    for a, b in zip(res.detections, want, strict=True):
        assert abs(a.score - b.score) <= 1e-3
        assert np.abs(np.subtract(a.box, b.box)).max() < 1.0
