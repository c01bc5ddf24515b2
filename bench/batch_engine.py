"""Per-frame time of one model at several batch sizes (Engine(batch=N)): device time from OpenCL profiling
events (minimum per step over a few profiled runs, so a burst of other work on a shared machine hits few of
them) and wall time per batch (median), with the load average before and after each size.

    .venv/bin/python bench/batch_engine.py --model .cache/models/yolov3-tiny/model.nnef --batches 1 2 4
"""

import argparse
import time
from pathlib import Path

import numpy as np

from ocl_infer.benchmark.measure import load_average, time_frames
from ocl_infer.engine import Engine


def measure(path: Path, batch: int, frames: int, profiles: int, pause: float) -> dict:
    with Engine(str(path), batch=batch) as engine:
        rng = np.random.default_rng(0)
        feeds = {name: rng.random(t.shape, dtype=np.float32) for name, t in engine.inputs.items()}
        engine.run(feeds)
        engine.wait_for_program_cache()  # the background binary writer would compete with the timed runs
        load0 = load_average()
        wall = time_frames(lambda: engine.run(feeds), frames, warmup=2)
        best: dict[str, float] = {}
        for _ in range(profiles):
            time.sleep(pause)  # spread the profiled runs out in time
            for label, ms in engine.profile(feeds):
                best[label] = min(ms, best.get(label, float("inf")))
        return {"batch": batch, "device_ms": sum(best.values()), "wall_ms": float(np.median(wall)) * 1e3,
                "steps": best, "load": (load0, load_average())}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--frames", type=int, default=10, help="timed runs per batch size (wall time)")
    ap.add_argument("--profiles", type=int, default=5, help="profiled runs per batch size (device time)")
    ap.add_argument("--pause", type=float, default=0.3, help="seconds between profiled runs")
    ap.add_argument("--steps", action="store_true", help="also print every step's device ms")
    args = ap.parse_args()
    print("| batch | device ms / batch | device ms / frame | wall ms / batch | wall ms / frame | load before, after |")
    print("|---|---|---|---|---|---|")
    results = [measure(args.model, n, args.frames, args.profiles, args.pause) for n in args.batches]
    for r in results:
        n = r["batch"]
        print(f"| {n} | {r['device_ms']:.1f} | {r['device_ms'] / n:.1f} | {r['wall_ms']:.1f} | "
              f"{r['wall_ms'] / n:.1f} | {r['load'][0]:.2f}, {r['load'][1]:.2f} |")
    if args.steps:
        for r in results:
            print(f"\nbatch {r['batch']}:")
            for label, ms in r["steps"].items():
                print(f"  {ms:8.2f}  {label}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
