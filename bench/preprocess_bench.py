"""Frame pre-processing on the host (cv2 letterbox -> float32 NCHW, then a 3x larger upload) vs on the OpenCL
device (uint8 upload + the image_to_nchw kernel), for a 768×576 frame (vtest.avi) and a 1280×720 frame, to the
prepared model's 416×416 input.

    .venv/bin/python bench/preprocess_bench.py                 # 200 rounds per case, first device
    .venv/bin/python bench/preprocess_bench.py --rounds 50 --no-detector

Per frame, median and p90 in ms:
- host:  `preprocess()` (cv2) + blocking copy of the float32 tensor to the device;
- device: uint8 upload + kernel, until done (quantize=True as the Detector uses, and float resampling);
- device (host part): what the caller's thread spends in device mode: letterbox geometry + enqueue, no wait;
- with --detector (default): Detector.detect_timed on yolov3-tiny, host vs device mode: preprocess_ms and total.
Cases alternate round by round, so load from other processes on the machine hits all of them alike; the
1-minute load average is printed before and after."""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def _stats(ms: list[float]) -> str:
    a = np.asarray(ms)
    return f"{np.median(a):7.3f} | {np.percentile(a, 90):7.3f}"


def main() -> int:
    import cv2
    import pyopencl as cl

    from ocl_infer.detection import Detector
    from ocl_infer.detection.description import load_description
    from ocl_infer.detection.preprocess import letterbox_geometry, preprocess
    from ocl_infer.engine import ImageToTensor
    from ocl_infer.engine.devices.selection import cl_device, select_devices
    from ocl_infer.engine.kernels.image import ImageKernel, image_feed
    from ocl_infer.engine.runtime import ProgramCache
    from ocl_infer.paths import data_dir, default_model_dir

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=200, help="timed frames per case (default 200)")
    ap.add_argument("--detector", action=argparse.BooleanOptionalAction, default=True,
                    help="also time Detector.detect_timed in host and device mode (default: yes)")
    ap.add_argument("--model", type=Path, default=None, help="model folder (default: the prepared yolov3-tiny)")
    args = ap.parse_args()

    model = args.model or default_model_dir()
    spec = load_description(model).input
    cap = cv2.VideoCapture(str(data_dir() / "vtest.avi"))
    ok, vga = cap.read()
    cap.release()
    if not ok:
        raise SystemExit("cannot read vtest.avi")
    frames = {"768x576": vga, "1280x720": cv2.resize(vga, (1280, 720), interpolation=cv2.INTER_LINEAR)}

    info = select_devices(None)[0]
    ctx = cl.Context([cl_device(info)])
    q = cl.CommandQueue(ctx)
    programs = ProgramCache(ctx, ctx.devices[0])
    shape = (1, 3, spec.height, spec.width)
    dst = cl.Buffer(ctx, cl.mem_flags.READ_WRITE, int(np.prod(shape)) * 4)
    src = cl.Buffer(ctx, cl.mem_flags.READ_ONLY, 1280 * 720 * 3)
    bound: dict[tuple[object, ...], tuple[ImageKernel, Any]] = {}  # as the runtime: bound once per geometry
    print(f"device {info.label}; load average before: {os.getloadavg()[0]:.2f} (nproc {os.cpu_count()})")

    def transform_of(img: np.ndarray, quantize: bool) -> ImageToTensor:
        box = letterbox_geometry(img.shape[1], img.shape[0], spec.width, spec.height, spec.letterbox)
        return ImageToTensor(spec.name, (box.dx, box.dy, box.new_w, box.new_h), "BGR", spec.color, spec.scale,
                             tuple(spec.mean), spec.pad_value, quantize=quantize)

    def host(img: np.ndarray) -> None:
        tensor, _ = preprocess(img, spec)
        cl.enqueue_copy(q, dst, tensor, is_blocking=True)

    def device(img: np.ndarray, quantize: bool, wait: bool) -> None:
        feed = image_feed(img, transform_of(img, quantize), shape)
        key = (feed.transform, feed.width, feed.height, feed.row_stride)
        if key not in bound:
            wrapper = ImageKernel(feed.transform)
            prg = programs.get(wrapper.source(), wrapper.build_options(), "image_to_nchw")
            bound[key] = (wrapper, wrapper.launches(prg, feed, src, dst, shape)[0])
        launch = bound[key][1]
        cl.enqueue_copy(q, src, feed.pixels, is_blocking=False)
        cl.enqueue_nd_range_kernel(q, launch.kernel, launch.global_size, launch.local_size)
        if wait:
            q.finish()

    cases: dict[str, Callable[[np.ndarray], None]] = {
        "host: cv2 + float32 upload": host,
        "device: uint8 upload + kernel (quantize)": lambda img: device(img, True, True),
        "device: uint8 upload + kernel (float)": lambda img: device(img, False, True),
        "device, host part: geometry + enqueue": lambda img: device(img, True, False),
    }
    rows = []
    for size, img in frames.items():
        times: dict[str, list[float]] = {k: [] for k in cases}
        for _ in range(5):  # warm-up: PoCL's first-launch JIT, cv2 thread pool
            for fn in cases.values():
                fn(img)
                q.finish()
        for _ in range(args.rounds):
            for name, fn in cases.items():
                t0 = time.perf_counter()
                fn(img)
                times[name].append((time.perf_counter() - t0) * 1e3)
                q.finish()
        rows += [f"| {size} | {name} | {_stats(ms)} |" for name, ms in times.items()]

    if args.detector:
        with Detector(model, preprocess="host") as dh, Detector(model, preprocess="device") as dd:
            for size, img in frames.items():
                res: dict[str, list[tuple[float, float]]] = {"host": [], "device": []}
                for det in (dh, dd):
                    det.detect_timed(img)
                for _ in range(max(5, args.rounds // 10)):
                    for mode, det in (("host", dh), ("device", dd)):
                        r = det.detect_timed(img)
                        res[mode].append((r.preprocess_ms, r.total_ms))
                for mode, vals in res.items():
                    rows.append(f"| {size} | Detector {mode}: preprocess_ms | {_stats([v[0] for v in vals])} |")
                    rows.append(f"| {size} | Detector {mode}: total_ms | {_stats([v[1] for v in vals])} |")
    print("| frame | what | median ms | p90 ms |\n|---|---|---|---|")
    print("\n".join(rows))
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
