"""Vehicle tracks on real footage: id switches and fragmentation of the tracker (ocl_infer/detection/tracking.py).

    .venv/bin/python bench/tracking_eval.py [--refresh]

vtest.avi (795 frames, 768x576, 10 Hz here) has two vehicles, a van and a car parked along the street, passed
by pedestrians who hide parts of them. Parked vehicles give a ground truth without annotation: each one is a
single vehicle from the first frame to the last, so every id after its first is a **fragment** and every change
of id between two frames where it is detected is an **id switch**. A vehicle = the cluster of detections with
IoU > 0.5 to its median box. Also counted: confirmed tracks elsewhere (false tracks: no vehicle is there).

Sequences: the clip at 10 Hz; every 2nd frame (half the frames lost to overload); a longer sequence made from it
(the clip forward, backward, forward: 2385 frames) with 30 % of frames dropped at random (seed 0); and each of
these with the second (low-score) association switched off, to show what it buys. And the same three on a
**panned** copy (each frame shifted sideways, a triangle wave of 3 px per frame, 300 px each way), where the
parked vehicles move across the picture at constant speed, so the motion model matters; its truth boxes are
shifted likewise. Detections are computed once with the OpenCL Detector (score >= 0.1) and cached in
.cache/bench/vtest_detections*.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
from pathlib import Path

import numpy as np

from ocl_infer.detection.detector import Detection
from ocl_infer.detection.nms import iou_one_to_many
from ocl_infer.detection.tracking import Tracker, TrackerOptions
from ocl_infer.paths import data_dir

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "bench"
PAN_PX, PAN_FRAMES = 300.0, 100  # the panned sequence: the picture slides 300 px left in 100 frames, and back


def pan(i: int) -> float:
    """Horizontal shift (px) of frame i in the panned sequence: a triangle wave, 3 px per frame."""
    phase = i % (2 * PAN_FRAMES)
    return -PAN_PX * (phase if phase < PAN_FRAMES else 2 * PAN_FRAMES - phase) / PAN_FRAMES


def detections(refresh: bool, panned: bool = False) -> list[list[Detection]]:
    cache = CACHE / f"vtest_detections{'_panned' if panned else ''}.json"
    if cache.is_file() and not refresh:
        raw = json.loads(cache.read_text())
    else:
        import cv2

        from ocl_infer.detection import Detector

        cap = cv2.VideoCapture(str(data_dir() / "vtest.avi"))
        raw = []
        with Detector(score_threshold=0.1) as det:  # low scores too: the tracker's second association
            while True:
                ok, frame = cap.read()
                if not ok:
                    break
                if panned:  # the vehicles move across the picture at constant speed: the motion model works
                    shift = np.float32([[1, 0, pan(len(raw))], [0, 1, 0]])
                    frame = cv2.warpAffine(frame, shift, (frame.shape[1], frame.shape[0]),
                                           borderMode=cv2.BORDER_REPLICATE)
                raw.append([[d.class_id, d.label, d.score, list(d.box)] for d in det.detect(frame)])
        cap.release()
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(raw))
    return [[Detection(c, lab, s, tuple(b)) for c, lab, s, b in frame] for frame in raw]


def vehicles(frames: list[list[Detection]]) -> list[np.ndarray]:
    """Median boxes of the parked vehicles: clusters of confident detections present in most frames."""
    boxes = np.array([d.box for f in frames for d in f if d.score >= 0.4])
    found: list[np.ndarray] = []
    left = boxes
    while len(left):
        seed = np.median(left[iou_one_to_many(left[0], left) > 0.5], axis=0)
        members = iou_one_to_many(seed, left) > 0.5
        if members.sum() > len(frames) / 2:
            found.append(np.median(left[members], axis=0))
        left = left[~members] if members.any() else left[1:]
    return found


def evaluate(frames: list[list[Detection]], order: list[tuple[int, float]], options: TrackerOptions,
             parked: list[np.ndarray], panned: bool = False) -> dict[str, float]:
    tracker = Tracker(options)
    ids: list[list[int]] = [[] for _ in parked]  # per vehicle: its id in each frame where a tracked box is on it
    seen = [0] * len(parked)
    others: set[int] = set()
    for i, t in order:  # frame index, its time (s): a dropped frame leaves a gap in time, as in the node
        dx = pan(i) if panned else 0.0
        truth = [v + np.array([dx, 0.0, dx, 0.0]) for v in parked]
        out = tracker.update(frames[i], t)
        for d, tid in out:
            if tid is None:
                continue
            hit = [k for k, v in enumerate(truth) if iou_one_to_many(v, np.array([d.box]))[0] > 0.5]
            if hit:
                ids[hit[0]].append(tid)
            else:
                others.add(tid)
        for k, v in enumerate(truth):
            seen[k] += any(iou_one_to_many(v, np.array([d.box]))[0] > 0.5 for d in frames[i] if d.score >= 0.25)
    return {
        "frames": len(order),
        "detected": sum(seen),
        "tracked": sum(len(x) for x in ids),
        "fragments": sum(max(len(set(x)) - 1, 0) for x in ids),
        "id_switches": sum(sum(a != b for a, b in itertools.pairwise(x)) for x in ids),
        "false_tracks": len(others - {t for x in ids for t in x}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--refresh", action="store_true", help="run the detector again instead of the cache")
    args = parser.parse_args()
    frames = detections(args.refresh)
    truth = vehicles(frames)
    panned = detections(args.refresh, panned=True)
    n = len(frames)
    rng = random.Random(0)
    longer = list(range(n)) + list(range(n - 1, -1, -1)) + list(range(n))
    every = [(i, i / 10) for i in range(n)]
    second = every[::2]
    dropped = [(i, k / 10) for k, i in enumerate(longer) if rng.random() >= 0.3]
    sequences = {
        "vtest.avi, 10 Hz": (frames, every, False),
        "every 2nd frame": (frames, second, False),
        "longer (fwd-back-fwd), 30 % dropped": (frames, dropped, False),
        "panned 30 px/s, 10 Hz": (panned, every, True),
        "panned, every 2nd frame": (panned, second, True),
        "panned, longer, 30 % dropped": (panned, dropped, True),
    }
    print(f"{len(truth)} parked vehicles: {[[round(float(v)) for v in b] for b in truth]}")
    print("| sequence | association | frames | vehicle-frames detected (score >= 0.25) | tracked with an id | "
          "fragments | id switches | false tracks |")
    print("|---|---|---|---|---|---|---|---|")
    for name, (dets, order, moving) in sequences.items():
        for label, opts in (("high + low (ByteTrack)", TrackerOptions()),
                            ("high only", TrackerOptions(low_match_iou=1.0))):
            r = evaluate(dets, order, opts, truth, moving)
            print(f"| {name} | {label} | {r['frames']} | {r['detected']} | {r['tracked']} | {r['fragments']} | "
                  f"{r['id_switches']} | {r['false_tracks']} |", flush=True)


if __name__ == "__main__":
    main()
