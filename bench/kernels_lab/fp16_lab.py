"""fp16 storage lab: what the engine's precision="fp16" (conv weights, Winograd U/V/M stored as half, float math)
costs and saves on this device, against precision="fp32" in the same process.

    .venv/bin/python bench/kernels_lab/fp16_lab.py speed [--size 416] [--rounds 10] [--frames 40]
    .venv/bin/python bench/kernels_lab/fp16_lab.py accuracy [--frames 20]

`speed`: per launch, the minimum of interleaved rounds of OpenCL event time (the robust statistic on a shared
machine), with the weight bytes each conv step reads; then whole frames (`Engine.run`), fp32 and fp16
alternating, median and min; planned memory of both. `accuracy`: raw outputs of both precisions against
onnxruntime on dog.jpg and the first N vtest.avi frames (host letterbox, the same tensor for every backend), then
detections (all 80 classes) of the fp16 engine matched to the fp32 engine's and to onnxruntime's: greedy by class
and IoU >= 0.5, with the smallest IoU, largest score difference and the unmatched ones. Prints the load average.
"""

import argparse
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from ocl_infer.detection.nms import iou

PRECISIONS = ("fp32", "fp16")


def model_folder(size: int) -> Path:
    from ocl_infer.paths import default_model_dir, models_dir

    return default_model_dir() if size == 416 else models_dir() / f"yolov3-tiny-{size}"


def sample_input(folder: Path) -> tuple[dict[str, np.ndarray], Any]:
    import cv2

    from ocl_infer.detection.description import load_description
    from ocl_infer.detection.preprocess import preprocess
    from ocl_infer.paths import data_dir

    desc = load_description(folder)
    cap = cv2.VideoCapture(str(data_dir() / "vtest.avi"))
    ok, frame = cap.read()
    cap.release()
    if not ok:
        raise SystemExit("vtest.avi: no frame (run `make setup`)")
    x, _ = preprocess(frame, desc.input)
    return {desc.input.name: np.ascontiguousarray(x)}, desc


def load() -> str:
    return f"{os.getloadavg()[0]:.2f}"


def speed(args: argparse.Namespace) -> None:
    import pyopencl as cl

    from ocl_infer.engine import Engine

    folder = model_folder(args.size)
    feed, desc = sample_input(folder)
    print(f"size {args.size}, load {load()}")
    engines = {}
    for p in PRECISIONS:
        t0 = time.perf_counter()
        engines[p] = Engine(desc.nnef_path, precision=p)
        plan = engines[p].plan
        print(f"{p}: Engine() {time.perf_counter() - t0:.2f} s, memory {engines[p].memory_bytes() / 2**20:.1f} MiB "
              f"(weights {plan.weights_bytes / 2**20:.1f}, scratch {plan.scratch_bytes / 2**20:.1f})")
    best: dict[tuple[str, int], float] = {}
    for _ in range(args.rounds):
        for p, e in engines.items():
            rt = e.runtimes[0]
            q = cl.CommandQueue(rt.context, properties=cl.command_queue_properties.PROFILING_ENABLE)
            for name in rt.plan.inputs:
                cl.enqueue_copy(q, rt.buffer(name), feed[name])
            for i, launch in enumerate(rt.launches):
                ev = cl.enqueue_nd_range_kernel(q, launch.kernel, launch.global_size, launch.local_size)
                ev.wait()
                ms = (ev.profile.end - ev.profile.start) * 1e-6
                best[(p, i)] = min(best.get((p, i), 1e9), ms)
            q.finish()
    rt32, rt16 = engines["fp32"].runtimes[0], engines["fp16"].runtimes[0]
    wbytes = {s.name: sum(int(rt16.plan.constants[n].nbytes) for n in s.inputs if n in rt16.plan.constants)
              for s in rt16.plan.steps}
    print(f"\nper launch, min of {args.rounds} interleaved rounds (ms); load {load()}")
    print("| step | kernel | fp16 weight MB | fp32 ms | fp16 ms | fp16/fp32 |\n|---|---|---|---|---|---|")
    tot = {p: 0.0 for p in PRECISIONS}
    for i, (step, launch) in enumerate(zip(rt32.launch_steps, rt32.launches, strict=True)):
        a, b = best[("fp32", i)], best[("fp16", i)]
        tot["fp32"] += a
        tot["fp16"] += b
        base = step.rsplit(" [", 1)[0]
        short = base.split(" -> ")[1].split(" ")[0] if " -> " in base else base
        print(f"| {short} | {launch.kernel.function_name} | {wbytes.get(base, 0) / 1e6:.2f} | {a:.3f} | {b:.3f} "
              f"| {b / a:.2f} |")
    print(f"| total | | | {tot['fp32']:.2f} | {tot['fp16']:.2f} | {tot['fp16'] / tot['fp32']:.2f} |")
    times: dict[str, list[float]] = {p: [] for p in PRECISIONS}
    for e in engines.values():
        for _ in range(3):
            e.run(feed)
    for _ in range(args.frames):
        for p, e in engines.items():
            t0 = time.perf_counter()
            e.run(feed)
            times[p].append(time.perf_counter() - t0)
    print(f"\nwhole frames (Engine.run, alternating, {args.frames} each); load {load()}")
    for p in PRECISIONS:
        t = np.array(times[p]) * 1e3
        print(f"{p}: median {np.median(t):.2f} ms, min {t.min():.2f} ms")
    for e in engines.values():
        e.close()


def match(got: list[Any], want: list[Any]) -> tuple[list[tuple[float, float]], int, int, list[Any]]:
    """Greedy one-to-one matching by class and best IoU (>= 0.5): ([(iou, |score diff|)], unmatched in got,
    unmatched in want, the unmatched detections of both)."""
    pairs: list[tuple[float, float]] = []
    left = list(want)
    extra = []
    for d in sorted(got, key=lambda d: -d.score):
        cands = [(iou(d.box, w.box), w) for w in left if w.class_id == d.class_id]
        best = max(cands, key=lambda c: c[0], default=(0.0, None))
        if best[1] is not None and best[0] >= 0.5:
            pairs.append((best[0], abs(d.score - best[1].score)))
            left.remove(best[1])
        else:
            extra.append(d)
    return pairs, len(extra), len(left), extra + left


def accuracy(args: argparse.Namespace) -> None:
    import cv2

    from ocl_infer.detection import Detector
    from ocl_infer.detection.description import load_description
    from ocl_infer.detection.preprocess import preprocess
    from ocl_infer.engine import Engine
    from ocl_infer.paths import data_dir, default_model_dir

    folder = default_model_dir()
    desc = load_description(folder)
    frames = [("dog.jpg", cv2.imread(str(data_dir() / "dog.jpg")))]
    cap = cv2.VideoCapture(str(data_dir() / "vtest.avi"))
    for i in range(args.frames):
        ok, f = cap.read()
        if not ok:
            break
        frames.append((f"vtest#{i}", f))
    cap.release()
    print(f"{len(frames)} frames, load {load()}")
    import onnxruntime as ort

    sess = ort.InferenceSession(str(desc.onnx_path), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    engines = {p: Engine(desc.nnef_path, precision=p) for p in PRECISIONS}
    stats: dict[str, list[tuple[float, float, float]]] = {p: [] for p in PRECISIONS}
    for _, img in frames:
        x, _ = preprocess(img, desc.input)
        feed = {desc.input.name: np.ascontiguousarray(x)}
        ref = dict(zip(names, sess.run(None, feed), strict=True))
        for p, e in engines.items():
            out = e.run(feed)
            d = [np.abs(out[n].astype(np.float64) - ref[n]) for n in names]
            mx = max(float(v.max()) for v in d)
            scale = max(float(np.abs(ref[n]).max()) for n in names)
            rms = float(np.sqrt(np.mean(np.concatenate([v.ravel() ** 2 for v in d]))))
            stats[p].append((mx, mx / scale, rms))
    print("\nraw outputs vs onnxruntime (both heads), over the frames: max abs | max abs / max |ref| | rms")
    for p in PRECISIONS:
        s = np.array(stats[p])
        print(f"{p}: max abs {s[:, 0].max():.3g} (median over frames {np.median(s[:, 0]):.3g}); "
              f"rel {s[:, 1].max():.3g}; rms {s[:, 2].max():.3g}")
    for e in engines.values():
        e.close()
    dets = {
        "ort": Detector(folder, classes=list(range(80)), backend="onnxruntime"),
        "fp32": Detector(folder, classes=list(range(80)), preprocess="host"),
        "fp16": Detector(folder, classes=list(range(80)), preprocess="host", precision="fp16"),
    }
    print("\ndetections (80 classes, score >= 0.25, NMS 0.45), fp16 engine vs ...")
    for other in ("fp32", "ort"):
        allpairs: list[tuple[float, float]] = []
        n_half = n_other = miss_half = miss_other = 0
        unmatched: list[str] = []
        for name, img in frames:
            got, want = dets["fp16"].detect(img), dets[other].detect(img)
            pairs, ex, lf, um = match(got, want)
            allpairs += pairs
            n_half += len(got)
            n_other += len(want)
            miss_half += ex
            miss_other += lf
            unmatched += [f"{name}:{d.label}@{d.score:.2f}" for d in um]
        ious = [p[0] for p in allpairs] or [1.0]
        ds = [p[1] for p in allpairs] or [0.0]
        print(f"vs {other}: {n_half} vs {n_other} detections, {len(allpairs)} matched; unmatched fp16 {miss_half}, "
              f"{other} {miss_other} {unmatched}; IoU min {min(ious):.4f} mean {np.mean(ious):.4f}; "
              f"|score diff| max {max(ds):.4f} mean {np.mean(ds):.5f}")
    for d in dets.values():
        d.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sp = sub.add_parser("speed")
    sp.add_argument("--size", type=int, default=416)
    sp.add_argument("--rounds", type=int, default=10)
    sp.add_argument("--frames", type=int, default=40)
    ac = sub.add_parser("accuracy")
    ac.add_argument("--frames", type=int, default=20)
    args = ap.parse_args()
    speed(args) if args.cmd == "speed" else accuracy(args)


if __name__ == "__main__":
    main()
