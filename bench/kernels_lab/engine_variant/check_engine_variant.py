"""Run YOLOv3-tiny through the engine's planner + DeviceRuntime with and without the Winograd conv variant
(and, with --blocked, with the engine's first conv kernel only); compare each with onnxruntime and time them
(one after the other, same process).

    .venv/bin/python bench/kernels_lab/engine_variant/check_engine_variant.py [--size 416] [--frames 20]
"""

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=416)
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--blocked", action="store_true", help="also time the engine's own conv (ConvBlocked)")
    ap.add_argument("--profile", action="store_true", help="per-launch device time (OpenCL events)")
    ap.add_argument("--sequential", action="store_true", help="blocks of frames per contender, not round robin")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    import cv2
    import onnxruntime as ort
    import pyopencl as cl

    from ocl_infer.detection.description import load_description
    from ocl_infer.detection.preprocess import preprocess
    from ocl_infer.engine.graph.loader import load_graph
    from ocl_infer.engine.kernels.registry import choose_kernel
    from ocl_infer.engine.plan.planner import make_plan
    from ocl_infer.engine.runtime.executor import DeviceRuntime

    folder = ROOT / ".cache" / "models" / ("yolov3-tiny" if args.size == 416 else f"yolov3-tiny-{args.size}")
    desc = load_description(folder)
    x, _ = preprocess(cv2.imread(str(ROOT / ".cache" / "data" / "dog.jpg")), desc.input)
    feeds = {desc.input.name: x}
    so = ort.SessionOptions()
    so.intra_op_num_threads = os.cpu_count() or 1
    sess = ort.InferenceSession(str(desc.onnx_path), so, providers=["CPUExecutionProvider"])
    ref = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds), strict=True))
    graph = load_graph(desc.nnef_path)
    device = next(p for p in cl.get_platforms() if "Portable" in p.name).get_devices()[0]

    def excluding(*names: str):
        def choose(step, shapes, facts):
            from ocl_infer.engine.kernels.registry import KERNELS
            cands = [c for (op, v), c in KERNELS.items() if op == step.kind and v not in names
                     and c.supports(step, shapes, facts)]
            if not cands:  # the planner asks about fusions this way and expects ModelError for "no"
                from ocl_infer.errors import ModelError
                raise ModelError(f"op {step.name}: no kernel left once {names} are excluded")
            return max(cands, key=lambda c: c.priority)
        return choose

    runs = [("engine + winograd", choose_kernel), ("engine without winograd", excluding("winograd"))]
    if args.blocked:
        runs.append(("blocked only", excluding("winograd", "covec")))
    runtimes = {}
    for label, choose in runs:
        plan = make_plan(graph, choose=choose)
        variants = sorted({s.variant for s in plan.steps if s.kind == "conv"})
        t0 = time.perf_counter()
        rt = DeviceRuntime(plan, device, "cl:0", disk_cache=False)
        out = rt.run(feeds)
        first = time.perf_counter() - t0
        diff = max(float(np.abs(out[k] - ref[k]).max()) for k in ref)
        print(f"{label:24s} conv variants {variants}: max abs diff vs onnxruntime {diff:.2e}, "
              f"build+first {first:.2f} s")
        runtimes[label] = rt
        if args.profile:
            q = cl.CommandQueue(rt.context, properties=cl.command_queue_properties.PROFILING_ENABLE)
            evs = [cl.enqueue_nd_range_kernel(q, ln.kernel, ln.global_size, ln.local_size) for ln in rt.launches]
            q.finish()
            for ln, ev in zip(rt.launches, evs, strict=True):
                print(f"  {ln.kernel.function_name:24s} {ln.global_size!s:18s} "
                      f"{(ev.profile.end - ev.profile.start) * 1e-6:7.3f} ms")
    # Round robin, one frame each in turn: on a shared machine every contender sees the same neighbours.
    # onnxruntime runs without spinning here (its pool threads would otherwise eat the next contender's time).
    # With --sequential: each contender's frames back to back (onnxruntime spinning, as it ships), in blocks.
    ort_label = "onnxruntime" if args.sequential else "onnxruntime (no spin)"
    if not args.sequential:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    quiet = ort.InferenceSession(str(desc.onnx_path), so, providers=["CPUExecutionProvider"])
    steps = {label: (lambda rt=rt: rt.run(feeds)) for label, rt in runtimes.items()}
    steps[ort_label] = lambda: quiet.run(None, feeds)
    times: dict[str, list[float]] = {k: [] for k in steps}
    loads = [os.getloadavg()[0]]
    if args.sequential:
        for label, step in steps.items():
            step()
            for _ in range(args.frames):
                t = time.perf_counter()
                step()
                times[label].append(time.perf_counter() - t)
            time.sleep(0.2)
    else:
        for _ in range(args.frames):
            for label, step in steps.items():
                t = time.perf_counter()
                step()
                times[label].append(time.perf_counter() - t)
    loads.append(os.getloadavg()[0])
    base = float(np.median(times[ort_label]))
    for label, ts in times.items():
        med = float(np.median(ts))
        print(f"{label:24s} median {med * 1e3:7.2f} ms  p99 {np.percentile(ts, 99) * 1e3:7.2f} ms  "
              f"x onnxruntime {med / base:.2f}")
    how = "frames each, in blocks" if args.sequential else "rounds"
    print(f"{args.frames} {how}, load {loads[0]:.2f} -> {loads[1]:.2f}")
    for rt in runtimes.values():
        rt.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
