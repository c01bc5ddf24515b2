"""Milliseconds per frame through the Detector (what the node's worker calls) for N camera frames: one by one
(`detect_timed`, the image letterboxed on the device), as one batch with the letterbox on the device
(`detect_batch_timed`, preprocess "device": uint8 frames, Engine.submit_images) and as one batch letterboxed by
cv2 on the host (preprocess "host": a float32 batch uploaded). The three ways alternate in blocks, so a VM whose
speed drifts hits all of them alike; medians per frame, with the load average before and after.

    .venv/bin/python bench/batch_detector.py --model .cache/models/yolov3-tiny --cameras 2 4

Frames: N different 768x576 frames of vtest.avi (as N cameras would send), decoded once.
"""

import argparse
from pathlib import Path

import numpy as np

from ocl_infer.bag.footage import read_frames
from ocl_infer.benchmark.measure import load_average, time_frames
from ocl_infer.detection import Detector

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=ROOT / ".cache" / "models" / "yolov3-tiny")
    ap.add_argument("--video", type=Path, default=ROOT / ".cache" / "data" / "vtest.avi")
    ap.add_argument("--cameras", type=int, nargs="+", default=[2, 4])
    ap.add_argument("--blocks", type=int, default=6, help="blocks per way (they alternate)")
    ap.add_argument("--frames", type=int, default=5, help="timed calls per block")
    args = ap.parse_args()
    most = max(args.cameras)
    frames = list(read_frames([args.video], max_frames=most * 10))[::10][:most]
    print(f"load before {load_average():.2f}; {args.model.name}, frames {frames[0].shape[1]}x{frames[0].shape[0]}")
    print("| cameras | one by one ms/frame | batch, device letterbox ms/frame | batch, host letterbox ms/frame |")
    print("|---|---|---|---|")
    with Detector(args.model, preprocess="device") as device, Detector(args.model, preprocess="host") as host:
        device.prepare_batch(args.cameras)
        host.prepare_batch(args.cameras)
        for n in args.cameras:
            cams = frames[:n]
            ways = {
                "one": lambda c=cams: [device.detect_timed(f) for f in c],
                "device": lambda c=cams: device.detect_batch_timed(c),
                "host": lambda c=cams: host.detect_batch_timed(c),
            }
            times: dict[str, list[float]] = {w: [] for w in ways}
            for _ in range(args.blocks):
                for way, step in ways.items():
                    times[way] += time_frames(step, args.frames, warmup=1)
            ms = {w: float(np.median(t)) * 1e3 / n for w, t in times.items()}
            print(f"| {n} | {ms['one']:.1f} | {ms['device']:.1f} ({ms['one'] / ms['device'] - 1:+.0%}) | "
                  f"{ms['host']:.1f} ({ms['one'] / ms['host'] - 1:+.0%}) |")
    print(f"load after {load_average():.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
