"""Real frames for the detection tests: chosen frames of OpenCV's vtest.avi (fetched by `make setup`)."""

from pathlib import Path

import cv2
import numpy as np


def vtest_frames(data_dir: Path, indices: list[int]) -> list[np.ndarray]:
    """BGR frames of vtest.avi at `indices`."""
    cap = cv2.VideoCapture(str(data_dir / "vtest.avi"))
    frames = []
    for i in indices:
        cap.set(cv2.CAP_PROP_POS_FRAMES, i)
        ok, frame = cap.read()
        assert ok, f"vtest.avi frame {i}"
        frames.append(frame)
    cap.release()
    return frames
