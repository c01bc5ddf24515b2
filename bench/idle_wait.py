"""Latency of the first frame after an idle pause, by how a run waits for its device (EngineOptions.wait): two
engines of one model in one process ("block": asleep in clFinish; "spin": polling and yielding), interleaved
rounds of (pause, timed frame, timed frame), medians of each. A camera at 10 Hz leaves ~80 ms idle between
frames, so the first column is what a node sees; the second is back-to-back frames.

    .venv/bin/python bench/idle_wait.py --model .cache/models/modern/yolo11n/model.nnef [--pause 0.1 --rounds 12]
"""

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from ocl_infer.benchmark.measure import load_average
from ocl_infer.engine import Engine

MODES = ("block", "spin")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True, help="NNEF folder (or .tgz)")
    ap.add_argument("--pause", type=float, default=0.1, help="seconds idle before each timed pair (default 0.1)")
    ap.add_argument("--rounds", type=int, default=12, help="pairs per mode (default 12)")
    args = ap.parse_args()
    engines = {mode: Engine(str(args.model), wait=mode) for mode in MODES}
    try:
        rng = np.random.default_rng(0)
        feeds = {name: rng.random(t.shape, dtype=np.float32) for name, t in engines["spin"].inputs.items()}
        for engine in engines.values():
            for _ in range(3):
                engine.run(feeds)
            engine.wait_for_program_cache()
        times: dict[str, tuple[list[float], list[float]]] = {mode: ([], []) for mode in MODES}
        load0 = load_average()
        for _ in range(args.rounds):
            for mode, engine in engines.items():
                for i in range(2):  # 0: after the pause, 1: right after it
                    if i == 0:
                        time.sleep(args.pause)
                    t0 = time.perf_counter()
                    engine.run(feeds)
                    times[mode][i].append((time.perf_counter() - t0) * 1e3)
        load1 = load_average()
    finally:
        for engine in engines.values():
            engine.close()
    print(f"{args.model}, {args.rounds} rounds, pause {args.pause} s, load {load0:.2f} -> {load1:.2f}\n")
    print("| wait | first frame after the pause ms (median) | next frame ms (median) |\n|---|---|---|")
    for mode, (first, nxt) in times.items():
        print(f"| {mode} | {statistics.median(first):.2f} | {statistics.median(nxt):.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
