"""Latency per frame against the budget, drawn with OpenCV (no plotting library needed)."""

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from ocl_infer.errors import OclInferError

GREEN, RED, GREY, BLUE, BLACK = (60, 160, 40), (40, 40, 220), (150, 150, 150), (200, 120, 30), (30, 30, 30)
FONT = cv2.FONT_HERSHEY_SIMPLEX


def _nice_step(span: float) -> float:
    raw = span / 6
    mag = 10 ** np.floor(np.log10(max(raw, 1e-9)))
    return float(next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw))


def draw_latency_plot(
    per_frame: Sequence[dict[str, object]], deadline_ms: float | None, size: tuple[int, int] = (1000, 440)
) -> np.ndarray:
    """HxWx3 BGR image: one dot per processed frame (green on time, red miss), drops as grey ticks on the
    axis, frames that never reached the node (undelivered) in blue, and the budget as a red line."""
    w, h = size
    left, right, top, bottom = 70, 20, 40, 50
    img = np.full((h, w, 3), 255, np.uint8)
    n = len(per_frame)
    lat = [f.get("latency_ms") for f in per_frame]
    top_ms = max([v for v in lat if v is not None] + [deadline_ms or 0, 1.0]) * 1.15  # type: ignore[operator]

    def x(i: int) -> int:
        return left + int((w - left - right) * (i + 0.5) / max(1, n))

    def y(ms: float) -> int:
        return h - bottom - int((h - top - bottom) * ms / top_ms)

    step = _nice_step(top_ms)
    v = 0.0
    while v <= top_ms:
        cv2.line(img, (left, y(v)), (w - right, y(v)), (235, 235, 235), 1)
        cv2.putText(img, f"{v:g}", (8, y(v) + 4), FONT, 0.4, BLACK, 1, cv2.LINE_AA)
        v += step
    cv2.line(img, (left, h - bottom), (w - right, h - bottom), BLACK, 1)
    cv2.line(img, (left, top), (left, h - bottom), BLACK, 1)
    cv2.putText(img, "latency ms", (8, top - 14), FONT, 0.45, BLACK, 1, cv2.LINE_AA)
    cv2.putText(img, f"frame (send order, {n} frames)", (w // 2 - 90, h - 14), FONT, 0.45, BLACK, 1, cv2.LINE_AA)
    if deadline_ms:
        yd = y(deadline_ms)
        for xs in range(left, w - right, 12):
            cv2.line(img, (xs, yd), (min(xs + 6, w - right), yd), RED, 2)
        cv2.putText(img, f"budget {deadline_ms:g} ms", (w - right - 150, yd - 6), FONT, 0.45, RED, 1, cv2.LINE_AA)
    for i, f in enumerate(per_frame):
        outcome = f.get("outcome")
        if outcome in ("published", "miss") and f.get("latency_ms") is not None:
            colour = RED if outcome == "miss" else GREEN
            cv2.circle(img, (x(i), y(float(f["latency_ms"]))), 3, colour, -1, cv2.LINE_AA)  # type: ignore[arg-type]
        else:
            colour = BLUE if outcome == "undelivered" else GREY
            cv2.line(img, (x(i), h - bottom), (x(i), h - bottom - 10), colour, 2)
    legend = [("on time", GREEN), ("miss", RED), ("dropped", GREY), ("undelivered", BLUE)]
    lx = left + 120
    for text, colour in legend:
        cv2.circle(img, (lx, 20), 5, colour, -1, cv2.LINE_AA)
        cv2.putText(img, text, (lx + 10, 25), FONT, 0.45, BLACK, 1, cv2.LINE_AA)
        lx += 30 + 9 * len(text)
    return img


def write_latency_plot(report: dict[str, object], path: str | Path) -> Path:
    """Draw the report's per-frame latencies to a PNG (or any image suffix OpenCV writes)."""
    path = Path(path)
    img = draw_latency_plot(report.get("per_frame") or [], report.get("deadline_ms"))  # type: ignore[arg-type]
    if not cv2.imwrite(str(path), img):
        raise OclInferError(f"{path}: cannot write the plot (unknown image suffix or folder not writable)")
    return path
