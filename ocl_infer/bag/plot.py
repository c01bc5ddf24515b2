"""Latency per frame against the budget, drawn with OpenCV (no plotting library needed).

One camera: one panel, frames in send order. Several cameras through one node: one panel per camera, stacked
on shared bag-time and ms axes and titled with the camera's counts, so that where one camera misses or drops
while the other does not is seen at a glance. A processed frame's marker shape says how many frames ran with it
as one batch (the report's per-frame `batch`).
"""

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ocl_infer.bag.report import DROPPED, ERRORS, PROCESSED, UNDELIVERED
from ocl_infer.deadline import Outcome
from ocl_infer.errors import OclInferError

GREEN, RED, GREY, BLUE, BLACK = (60, 160, 40), (40, 40, 220), (150, 150, 150), (200, 120, 30), (30, 30, 30)
GRID = (235, 235, 235)
FONT = cv2.FONT_HERSHEY_SIMPLEX
ON_TIME, MISS = Outcome.PUBLISHED.word, Outcome.MISS.word
OUTCOME_LEGEND = (("on time", GREEN), ("miss", RED), ("dropped", GREY), ("undelivered", BLUE))
BATCH_LEGEND = ("1", "2", "3", "4+")  # marker shapes: circle, square, triangle, diamond
# Several cameras: a header row for the legends, then per camera a title, the plot and its time labels.
HEADER_H, TITLE_H, PANEL_PLOT_H, TIME_LABELS_H, FOOTER_H = 40, 28, 170, 26, 30
LEFT, RIGHT = 70, 20


@dataclass(frozen=True)
class _Area:
    """A plot rectangle in pixels (x0, y0 top-left; x1, y1 bottom-right, the axes)."""

    x0: int
    y0: int
    x1: int
    y1: int


def _nice_step(span: float) -> float:
    raw = span / 6
    mag = 10 ** np.floor(np.log10(max(raw, 1e-9)))
    return float(next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw))


def _text(img: np.ndarray, text: str, at: tuple[int, int], colour: tuple[int, int, int] = BLACK,
          scale: float = 0.45) -> None:
    cv2.putText(img, text, at, FONT, scale, colour, 1, cv2.LINE_AA)


def _marker(img: np.ndarray, at: tuple[int, int], batch: int, colour: tuple[int, int, int]) -> None:
    """A dot for a frame run alone (as the one-camera plot always drew), other shapes for batches of 2, 3, 4+."""
    x, y = at
    if batch <= 1:
        cv2.circle(img, at, 3, colour, -1, cv2.LINE_AA)
        return
    corners = {
        2: [(x - 3, y - 3), (x + 3, y - 3), (x + 3, y + 3), (x - 3, y + 3)],
        3: [(x, y - 5), (x + 5, y + 3), (x - 5, y + 3)],
    }.get(batch, [(x, y - 5), (x + 5, y), (x, y + 5), (x - 5, y)])
    cv2.fillConvexPoly(img, np.array(corners, np.int32), colour, cv2.LINE_AA)


def _ms_axis(img: np.ndarray, area: _Area, top_ms: float) -> Callable[[float], int]:
    """Horizontal grid with ms labels and the two axes; returns ms → pixel row."""

    def y(ms: float) -> int:
        return area.y1 - int((area.y1 - area.y0) * ms / top_ms)

    step = _nice_step(top_ms)
    v = 0.0
    while v <= top_ms:
        cv2.line(img, (area.x0, y(v)), (area.x1, y(v)), GRID, 1)
        _text(img, f"{v:g}", (8, y(v) + 4), scale=0.4)
        v += step
    cv2.line(img, (area.x0, area.y1), (area.x1, area.y1), BLACK, 1)
    cv2.line(img, (area.x0, area.y0), (area.x0, area.y1), BLACK, 1)
    return y


def _budget(img: np.ndarray, area: _Area, y: Callable[[float], int], deadline_ms: float | None) -> None:
    if not deadline_ms:
        return
    yd = y(deadline_ms)
    for xs in range(area.x0, area.x1, 12):
        cv2.line(img, (xs, yd), (min(xs + 6, area.x1), yd), RED, 2)
    _text(img, f"budget {deadline_ms:g} ms", (area.x1 - 150, yd - 6), RED)


def _frames(img: np.ndarray, frames: Sequence[dict[str, object]], xs: Sequence[int], area: _Area,
            y: Callable[[float], int]) -> None:
    """Processed frames as markers at their latency; the rest as ticks on the time axis."""
    for f, x in zip(frames, xs, strict=True):
        outcome = f.get("outcome")
        if outcome in PROCESSED and f.get("latency_ms") is not None:
            colour = RED if outcome == MISS else GREEN
            _marker(img, (x, y(float(f["latency_ms"]))), int(f.get("batch") or 1), colour)  # type: ignore[arg-type, call-overload]
        else:
            colour = BLUE if outcome == UNDELIVERED else GREY
            cv2.line(img, (x, area.y1), (x, area.y1 - 10), colour, 2)


def _legend(img: np.ndarray, x: int, y: int, batches: bool) -> None:
    for text, colour in OUTCOME_LEGEND:
        cv2.circle(img, (x, y), 5, colour, -1, cv2.LINE_AA)
        _text(img, text, (x + 10, y + 5))
        x += 30 + 9 * len(text)
    if not batches:
        return
    x += 20
    _text(img, "batch of", (x, y + 5))
    x += 80
    for size, text in enumerate(BATCH_LEGEND, start=1):
        _marker(img, (x, y), size, BLACK)
        _text(img, text, (x + 9, y + 5))
        x += 24 + 9 * len(text)


def _top_ms(frames: Sequence[dict[str, object]], deadline_ms: float | None) -> float:
    lat = [float(f["latency_ms"]) for f in frames if f.get("latency_ms") is not None]  # type: ignore[arg-type]
    return max([*lat, deadline_ms or 0, 1.0]) * 1.15


def _batch(f: dict[str, object]) -> int:
    return int(f.get("batch") or 1)  # type: ignore[call-overload]


def camera_title(camera: str, frames: Sequence[dict[str, object]]) -> str:
    """'<topic>: 41 on time, 3 missed, 39 dropped, batches 1: 40, 2: 4' from one camera's per-frame records."""
    c = Counter(f.get("outcome") for f in frames)
    parts = [f"{c[ON_TIME]} on time", f"{c[MISS]} missed", f"{sum(c[k] for k in DROPPED)} dropped"]
    if errors := sum(c[k] for k in ERRORS):
        parts.append(f"{errors} errors")
    batches = Counter(_batch(f) for f in frames if f.get("outcome") in PROCESSED)
    if batches:
        parts.append("batches " + ", ".join(f"{n}: {k}" for n, k in sorted(batches.items())))
    return f"{camera}: " + ", ".join(parts)


def draw_latency_plot(
    per_frame: Sequence[dict[str, object]], deadline_ms: float | None, size: tuple[int, int] = (1000, 440)
) -> np.ndarray:
    """HxWx3 BGR image: one marker per processed frame (green on time, red miss; its shape the frame's batch
    size), drops as grey ticks on the axis, frames that never reached the node (undelivered) in blue, and the
    budget as a red line. Several cameras: `size` is one camera's plot; the width is kept and one panel per
    camera is stacked (see `draw_camera_panels`)."""
    cameras = list(dict.fromkeys(str(f.get("camera", "")) for f in per_frame))
    if len(cameras) > 1:
        return draw_camera_panels(per_frame, deadline_ms, cameras, size[0])
    w, h = size
    area = _Area(LEFT, 40, w - RIGHT, h - 50)
    img = np.full((h, w, 3), 255, np.uint8)
    n = len(per_frame)
    y = _ms_axis(img, area, _top_ms(per_frame, deadline_ms))
    _text(img, "latency ms", (8, area.y0 - 14))
    _text(img, f"frame (send order, {n} frames)", (w // 2 - 90, h - 14))
    _budget(img, area, y, deadline_ms)
    xs = [area.x0 + int((area.x1 - area.x0) * (i + 0.5) / max(1, n)) for i in range(n)]
    _frames(img, per_frame, xs, area, y)
    _legend(img, LEFT + 120, 20, any(_batch(f) > 1 for f in per_frame))
    return img


def draw_camera_panels(
    per_frame: Sequence[dict[str, object]], deadline_ms: float | None, cameras: Sequence[str], width: int = 1000
) -> np.ndarray:
    """One panel per camera, stacked, all on one bag-time axis (frames placed by header stamp, so the
    cameras' frames line up in time) and one ms axis; each titled by `camera_title`."""
    h = HEADER_H + len(cameras) * (TITLE_H + PANEL_PLOT_H + TIME_LABELS_H) + FOOTER_H
    img = np.full((h, width, 3), 255, np.uint8)
    top_ms = _top_ms(per_frame, deadline_ms)
    stamps = [int(f["stamp_ns"]) for f in per_frame]  # type: ignore[call-overload]
    t0 = min(stamps, default=0)
    span_s = max((max(stamps, default=0) - t0) / 1e9, 1e-3)
    pad_s = span_s * len(cameras) / max(1, 2 * len(per_frame))  # half a frame period, off the axes

    def x_of(area: _Area, stamp: int) -> int:
        return area.x0 + int((area.x1 - area.x0) * ((stamp - t0) / 1e9 + pad_s) / (span_s + 2 * pad_s))

    step_s = _nice_step(span_s)
    for k, cam in enumerate(cameras):
        top = HEADER_H + k * (TITLE_H + PANEL_PLOT_H + TIME_LABELS_H)
        area = _Area(LEFT, top + TITLE_H, width - RIGHT, top + TITLE_H + PANEL_PLOT_H)
        mine = [f for f in per_frame if str(f.get("camera", "")) == cam]
        t = 0.0
        while t <= span_s + pad_s:
            xt = x_of(area, t0 + int(t * 1e9))
            cv2.line(img, (xt, area.y0), (xt, area.y1), GRID, 1)
            _text(img, f"{t:g}", (xt - 8, area.y1 + 16), scale=0.4)
            t += step_s
        y = _ms_axis(img, area, top_ms)
        _text(img, camera_title(cam, mine), (area.x0, top + 18), scale=0.5)
        _budget(img, area, y, deadline_ms)
        _frames(img, mine, [x_of(area, int(f["stamp_ns"])) for f in mine], area, y)  # type: ignore[call-overload]
    _text(img, "latency ms", (8, HEADER_H - 14))
    _text(img, f"bag time s ({len(per_frame)} frames from {len(cameras)} cameras, by header stamp)",
          (width // 2 - 200, h - 12))
    _legend(img, LEFT + 120, 20, batches=True)
    return img


def write_latency_plot(report: dict[str, object], path: str | Path) -> Path:
    """Draw the report's per-frame latencies to a PNG (or any image suffix OpenCV writes)."""
    path = Path(path)
    img = draw_latency_plot(report.get("per_frame") or [], report.get("deadline_ms"))  # type: ignore[arg-type]
    if not cv2.imwrite(str(path), img):
        raise OclInferError(f"{path}: cannot write the plot (unknown image suffix or folder not writable)")
    return path
