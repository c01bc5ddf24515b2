"""Draw detections onto a BGR frame (boxes and "label score" tags), for overlay images and topics."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ocl_infer.detection.detector import Detection


def class_color(class_id: int) -> tuple[int, int, int]:
    """A stable, well-separated BGR colour per class id."""
    hue = (class_id * 47) % 180
    import cv2

    bgr = cv2.cvtColor(np.uint8([[[hue, 220, 255]]]), cv2.COLOR_HSV2BGR)[0, 0]  # type: ignore[call-overload]
    return int(bgr[0]), int(bgr[1]), int(bgr[2])


def draw_detections(image_bgr: np.ndarray, detections: Sequence[Detection]) -> np.ndarray:
    """A copy of the frame with each detection's box and label drawn on it."""
    import cv2

    out = image_bgr.copy()
    thick = max(1, round(min(out.shape[:2]) / 300))
    for det in detections:
        x1, y1, x2, y2 = (round(v) for v in det.box)
        color = class_color(det.class_id)
        cv2.rectangle(out, (x1, y1), (x2, y2), color, thick)
        text = f"{det.label} {det.score:.2f}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
        ty = max(th + base, y1)
        cv2.rectangle(out, (x1, ty - th - base), (x1 + tw, ty), color, -1)
        cv2.putText(out, text, (x1, ty - base), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return out
