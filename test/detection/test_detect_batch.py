"""Detector.detect_batch_timed: frames of several cameras (different sizes, so different letterboxes) run as one
batch on the OpenCL engine give the same boxes and scores as each frame run alone, and (device preprocessing)
as the host-letterboxed batch."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from ocl_infer.detection import Detector

from .frames import vtest_frames


@pytest.fixture(scope="module")
def detector(model_dir: Path):
    with Detector(model_dir) as det:
        yield det


def test_a_batch_of_three_cameras_equals_each_frame_alone(detector: Detector, data_dir: Path) -> None:
    street = vtest_frames(data_dir, [0, 400])
    dog = cv2.imread(str(data_dir / "dog.jpg"))
    frames = [street[0], dog, cv2.resize(street[1], (640, 360))]  # three sizes: three letterboxes
    assert detector.prepare_batch([3]) == (3,) and detector.batch_sizes == (3,)
    batched = detector.detect_batch_timed(frames)
    assert [r.detections for r in batched] == detector.detect_batch(frames)  # the same path
    for frame, got in zip(frames, batched, strict=True):
        alone = detector.detect_timed(frame).detections
        assert len(got.detections) == len(alone) > 0
        for a, b in zip(got.detections, alone, strict=True):
            assert a.label == b.label
            assert a.score == pytest.approx(b.score, abs=1e-4)
            np.testing.assert_allclose(a.box, b.box, atol=0.05)
    # no engine of size 2: frame by frame
    pair = detector.detect_batch_timed(frames[:2])
    assert [r.detections for r in pair] == [detector.detect(f) for f in frames[:2]]


def test_device_batch_takes_uint8_frames_and_equals_the_host_letterboxed_batch(
        detector: Detector, model_dir: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """preprocess="device": the batch goes to the engine as uint8 frames (Engine.submit_images, never a float32
    batch) and gives the detections of the host-letterboxed batch (cv2 on the host, the reference): the device
    resamples like cv2 on uint8 (quantize=True), so within the bounds of a batch against each frame alone."""
    street = vtest_frames(data_dir, [200])
    frames = [cv2.imread(str(data_dir / "dog.jpg")), cv2.resize(street[0], (1280, 720)), street[0]]
    detector.prepare_batch([3])
    engine = detector._runner.batches[3]  # type: ignore[union-attr]

    def no_float_batch(*_: object) -> None:
        raise AssertionError("the device path must not upload a host-letterboxed float32 batch")

    monkeypatch.setattr(engine, "submit", no_float_batch)
    device = detector.detect_batch_timed(frames)
    monkeypatch.undo()
    with Detector(model_dir, preprocess="host") as host_detector:
        assert host_detector.prepare_batch([3]) == (3,)
        host = host_detector.detect_batch_timed(frames)
    for got, want in zip(device, host, strict=True):
        assert len(got.detections) == len(want.detections) > 0
        for a, b in zip(got.detections, want.detections, strict=True):
            assert a.label == b.label
            assert a.score == pytest.approx(b.score, abs=1e-4)
            np.testing.assert_allclose(a.box, b.box, atol=0.05)
