"""The one box drawer: detections onto a BGR frame as boxes with "label score" tags.

`ocl-infer detect --overlay`, the node's ``detections/overlay`` topic and the replay video all draw with it,
so a box looks the same wherever it is seen.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

HELD = " (held)"  # label suffix of a box shown again on a frame that produced none


class Drawable(Protocol):
    """What a box needs to be drawn: `Detection` has it, and so does `LabelledBox` (boxes read from a bag)."""

    @property
    def label(self) -> str: ...

    @property
    def score(self) -> float: ...

    @property
    def box(self) -> tuple[float, float, float, float]: ...


@dataclass(frozen=True)
class LabelledBox:
    """A box known only by its label (e.g. a recorded Detection2D): (x1, y1, x2, y2) in image pixels."""

    label: str
    score: float
    box: tuple[float, float, float, float]


def label_color(label: str) -> tuple[int, int, int]:
    """A stable, well-separated BGR colour per label; a box held over a dropped frame keeps its colour."""
    import cv2

    hue = (zlib.crc32(label.removesuffix(HELD).encode()) * 47) % 180
    bgr = cv2.cvtColor(np.uint8([[[hue, 220, 255]]]), cv2.COLOR_HSV2BGR)[0, 0]  # type: ignore[call-overload]
    return int(bgr[0]), int(bgr[1]), int(bgr[2])


def draw_detections(image_bgr: np.ndarray, detections: Sequence[Drawable]) -> np.ndarray:
    """A copy of the frame with each detection's box and tag drawn on it; tags stay inside the frame."""
    import cv2

    out = image_bgr.copy()
    thick = max(1, round(min(out.shape[:2]) / 300))  # visible on 1080p, not blotchy on 320
    for det in detections:
        x1, y1, x2, y2 = (round(float(v)) for v in det.box)
        color = label_color(det.label)
        cv2.rectangle(out, (x1, y1), (x2, y2), color, thick)
        text = f"{det.label} {det.score:.2f}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
        tx = max(0, min(x1, out.shape[1] - tw))
        ty = max(th + base, y1)
        cv2.rectangle(out, (tx, ty - th - base), (tx + tw, ty), color, -1)
        cv2.putText(out, text, (tx, ty - base), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return out
