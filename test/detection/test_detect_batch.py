"""Detector.detect_batch_timed: frames of several cameras (different sizes, so different letterboxes) run as one
batch on the OpenCL engine give the same boxes and scores as each frame run alone."""

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
