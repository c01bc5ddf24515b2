"""Vehicle tracks per camera: ByteTrack-style association with a constant-velocity motion model, no ROS.

Each `update` takes one frame's detections (best score first, as the Detector gives them) and its time:
1. every track's box is predicted to the frame's time (centre moved by its velocity in px/s);
2. high-score detections (score >= `high_score`) are matched to the tracks by IoU (greedy, best pair first,
   IoU >= `match_iou`), confirmed tracks before new ones;
3. confirmed tracks still unmatched get a second chance with the low-score detections (IoU >= `low_match_iou`):
   an occluded or blurred vehicle whose score dipped keeps its track instead of starting a new one (ByteTrack's
   idea; the low-score boxes that match nothing are dropped as likely false positives);
4. a high-score detection that matches nothing starts a new track, which gets its id after `min_hits`
   consecutive frames (a one-frame false positive never takes an id); a confirmed track that misses a frame is
   kept, coasting on its velocity, for up to `max_age` frames.
Greedy matching instead of the Hungarian algorithm: a handful of vehicles per frame, and no scipy here.

Ids are small integers per tracker (per camera), in the order tracks were confirmed. The published box is the
detection's own box: tracking adds ids, it does not move boxes.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ocl_infer.detection.detector import Detection
from ocl_infer.detection.nms import iou_one_to_many
from ocl_infer.errors import ConfigError

ALPHA = 0.7  # weight of the measured position against the predicted one
BETA = 0.3  # weight of the measured velocity (position residual / dt) in the velocity estimate


@dataclass(frozen=True)
class TrackerOptions:
    """Thresholds of the association and the lifetime of a track, checked on construction."""

    high_score: float = 0.5
    match_iou: float = 0.3
    low_match_iou: float = 0.5
    max_age: int = 5
    min_hits: int = 2

    def __post_init__(self) -> None:
        for name in ("high_score", "match_iou", "low_match_iou"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"tracker {name} must be in [0, 1], got {value}")
        if self.max_age < 0 or self.min_hits < 1:
            raise ConfigError(f"tracker max_age must be >= 0 and min_hits >= 1, got {self.max_age}, {self.min_hits}")


@dataclass
class Track:
    """One vehicle: its box as centre and size, velocity in px/s, and its history of hits and misses."""

    cx: float
    cy: float
    w: float
    h: float
    t: float  # time of the last update (s)
    vx: float = 0.0
    vy: float = 0.0
    hits: int = 1
    misses: int = 0
    track_id: int | None = None  # set when confirmed

    def predicted(self, t: float) -> np.ndarray:
        """xyxy box at time t, constant velocity."""
        dt = max(t - self.t, 0.0)
        cx, cy = self.cx + self.vx * dt, self.cy + self.vy * dt
        return np.array([cx - self.w / 2, cy - self.h / 2, cx + self.w / 2, cy + self.h / 2])

    def correct(self, box: Sequence[float], t: float) -> None:
        """Alpha-beta update with a measured xyxy box at time t."""
        dt = t - self.t
        pred = self.predicted(t)
        px, py = (pred[0] + pred[2]) / 2, (pred[1] + pred[3]) / 2
        mx, my = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        self.cx, self.cy = px + ALPHA * (mx - px), py + ALPHA * (my - py)
        if dt > 1e-6:
            self.vx += BETA * (mx - px) / dt
            self.vy += BETA * (my - py) / dt
        self.w += ALPHA * ((box[2] - box[0]) - self.w)
        self.h += ALPHA * ((box[3] - box[1]) - self.h)
        self.t = t


def _greedy(tracks: list[Track], boxes: list[np.ndarray], t: float, threshold: float) -> list[tuple[int, int]]:
    """(track index, box index) pairs, best IoU first, each used once, IoU >= threshold."""
    if not tracks or not boxes:
        return []
    boxes_arr = np.asarray(boxes, np.float64)
    scores = np.stack([iou_one_to_many(tr.predicted(t), boxes_arr) for tr in tracks])
    pairs = []
    used_t: set[int] = set()
    used_b: set[int] = set()
    for flat in np.argsort(-scores, axis=None, kind="stable"):
        i, j = divmod(int(flat), len(boxes))
        if scores[i, j] < threshold or scores[i, j] <= 0:
            break
        if i not in used_t and j not in used_b:
            pairs.append((i, j))
            used_t.add(i)
            used_b.add(j)
    return pairs


class Tracker:
    """Tracks of one camera. `update(detections, t)` -> the detections to report with their track ids."""

    def __init__(self, options: TrackerOptions | None = None) -> None:
        self.options = options or TrackerOptions()
        self.tracks: list[Track] = []
        self._ids = itertools.count(1)

    def update(self, detections: Sequence[Detection], t: float) -> list[tuple[Detection, int | None]]:
        """One frame's detections at time t (s): (detection, track id or None while its track is new), in the
        input order; low-score detections that continue no track are left out."""
        o = self.options
        high = [i for i, d in enumerate(detections) if d.score >= o.high_score]
        low = [i for i, d in enumerate(detections) if d.score < o.high_score]
        boxes = [np.asarray(d.box, np.float64) for d in detections]
        owner: dict[int, Track] = {}  # detection index -> its track

        confirmed = [tr for tr in self.tracks if tr.track_id is not None]
        tentative = [tr for tr in self.tracks if tr.track_id is None]
        left = list(high)
        for group in (confirmed, tentative):
            for ti, bj in _greedy(group, [boxes[k] for k in left], t, o.match_iou):
                owner[left[bj]] = group[ti]
            left = [k for k in left if k not in owner]
        matched = set(map(id, owner.values()))
        waiting = [tr for tr in confirmed if id(tr) not in matched]
        for ti, bj in _greedy(waiting, [boxes[k] for k in low], t, o.low_match_iou):
            owner[low[bj]] = waiting[ti]

        matched = set(map(id, owner.values()))
        kept: list[Track] = []
        for tr in self.tracks:
            if id(tr) in matched:
                continue
            tr.misses += 1
            if tr.track_id is not None and tr.misses <= o.max_age:
                kept.append(tr)  # coasts on its velocity; a new track that misses a frame is dropped
        for k, tr in owner.items():
            tr.correct(boxes[k], t)
            tr.hits += 1
            tr.misses = 0
            if tr.track_id is None and tr.hits >= o.min_hits:
                tr.track_id = next(self._ids)
            kept.append(tr)
        for k in left:  # unmatched high-score detections: new tracks
            b = boxes[k]
            tr = Track((b[0] + b[2]) / 2, (b[1] + b[3]) / 2, b[2] - b[0], b[3] - b[1], t)
            if o.min_hits <= 1:
                tr.track_id = next(self._ids)
            owner[k] = tr
            kept.append(tr)
        self.tracks = kept
        return [(d, owner[i].track_id) for i, d in enumerate(detections) if i in owner]
