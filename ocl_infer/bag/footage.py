"""Frames from real footage: one video file, or a list of still images, as HxWx3 uint8 BGR arrays."""

from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

from ocl_infer.errors import ImageError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp"}


def _read_video(path: Path, max_frames: int | None) -> Iterator[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ImageError(f"{path}: cannot open as a video")
    try:
        n = 0
        while max_frames is None or n < max_frames:
            ok, frame = cap.read()
            if not ok:
                break
            if n == 0 and frame is None:
                raise ImageError(f"{path}: video has no readable frame")
            n += 1
            yield frame
        if n == 0:
            raise ImageError(f"{path}: video has no readable frame")
    finally:
        cap.release()


def read_frames(sources: Sequence[str | Path], max_frames: int | None = None) -> Iterator[np.ndarray]:
    """Yield BGR frames: from one video, or from still images in the order given.

    Raises ImageError naming the file when a source is missing or does not decode.
    """
    paths = [Path(s) for s in sources]
    if not paths:
        raise ImageError("no footage given: pass a video file or one or more images")
    for path in paths:
        if not path.is_file():
            raise ImageError(f"{path}: no such file")
    stills = [p.suffix.lower() in IMAGE_SUFFIXES for p in paths]
    if not all(stills):
        if len(paths) > 1:
            raise ImageError(f"give one video or only images, got {', '.join(map(str, paths))}")
        yield from _read_video(paths[0], max_frames)
        return
    for n, path in enumerate(paths):
        if max_frames is not None and n >= max_frames:
            return
        frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if frame is None:
            raise ImageError(f"{path}: cannot decode as an image")
        yield frame
