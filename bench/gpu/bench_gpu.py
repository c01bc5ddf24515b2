"""Our engine on the GPU: start-up, latency, throughput with frames in flight, host CPU cost, kernel launches,
batch 8; onnxruntime on the CPU as a reference point. Works on PoCL too (GPU_CHECK_DRY=1: small counts).

- first frame, cold: a fresh process with empty program caches (ours, PoCL's, pyopencl's, NVIDIA's JIT cache
  via CUDA_CACHE_PATH): seconds from `Engine(...)` to the first result, and the import time before it;
  warm: the same again in a second process, with the caches the first one filled;
- latency: `engine.run` on a real letterboxed frame, p50/p99 after warm-up (fp32, fp16 storage, and the
  device pre-processing path `run_image` from the raw 768x576 frame);
- throughput: `engine.submit` with `max_inflight` 1/2/4/8 and as many frames outstanding, frames/s; host CPU µs
  per frame (process CPU time / frames: Python, driver threads, any spin-waiting) and the wall time of one
  `submit` call;
- kernel launches per frame (the runtime's bound launches) and device time per step (OpenCL profiling events);
- batch 8 (the model prepared with batch 8): latency per call, frames/s.

    python3 bench/gpu/bench_gpu.py
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

from common import WORK, Fragment, count, error_text, load_images, log, model_dir, preprocessed, stats_ms

from ocl_infer.benchmark.measure import time_frames

CHILD_FLAG = "--first-frame-child"


# ------------------------------------------------------------------------------------------------ first frame


def first_frame_child(nnef: Path) -> int:
    """In a fresh process: import time, then Engine() → first result (what a node pays at start-up)."""
    t0 = time.perf_counter()
    import numpy as np

    from ocl_infer.engine import Engine

    t1 = time.perf_counter()
    engine = Engine(nnef)
    t2 = time.perf_counter()
    feed = {n: np.full(s.shape, 0.5, np.float32) for n, s in engine.inputs.items()}
    engine.run(feed)
    t3 = time.perf_counter()
    engine.wait_for_program_cache(timeout=120)  # so the warm start finds every binary
    t4 = time.perf_counter()
    programs = engine.runtimes[0].programs
    reply = {"import_s": t1 - t0, "engine_init_s": t2 - t1, "first_frame_s": t3 - t1,
             "cache_written_s": t4 - t3, "compiled": programs.compiles, "from_disk": programs.hits}
    engine.close()
    print(json.dumps(reply), flush=True)
    return 0


def first_frames(nnef: Path) -> dict[str, Any]:
    """Cold then warm start in fresh processes sharing one set of fresh cache folders. The tuning table of the
    main cache is copied in, so both build the same plan as the in-process measurements."""
    base = WORK / "first_frame"
    shutil.rmtree(base, ignore_errors=True)
    cache = base / "ocl_infer"
    tuning = Path(os.environ.get("OCL_INFER_CACHE", "")) / "tuning"
    if tuning.is_dir():
        shutil.copytree(tuning, cache / "tuning")
    env = {**os.environ, "OCL_INFER_CACHE": str(cache), "POCL_CACHE_DIR": str(base / "pocl"),
           "XDG_CACHE_HOME": str(base / "xdg"), "CUDA_CACHE_PATH": str(base / "nv_compute_cache")}
    env.pop("CUDA_CACHE_DISABLE", None)
    out: dict[str, Any] = {"caches": "fresh OCL_INFER_CACHE (tuning table copied), POCL_CACHE_DIR, XDG_CACHE_HOME, "
                                     "CUDA_CACHE_PATH"}
    for label in ("cold", "warm"):
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, __file__, CHILD_FLAG, str(nnef)], capture_output=True, text=True,
                              env=env, timeout=60, check=False)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if proc.returncode != 0 or not lines:
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-3:]
            out[label] = {"error": f"exit {proc.returncode}: {' | '.join(tail)[:500]}"}
            break
        out[label] = {**json.loads(lines[-1]), "process_s": time.perf_counter() - t0}
        log(f"first frame {label}: {out[label]['first_frame_s']:.2f} s from Engine() "
            f"(+ {out[label]['import_s']:.2f} s imports)")
    return out


# -------------------------------------------------------------------------------------------------- in-process


def quiet(engine: Any) -> None:
    """Let the engine's background program-cache writer (a child compiling binaries) finish first, so it does
    not share the host with the frames being timed."""
    engine.wait_for_program_cache(timeout=60)


def warm_in_process(nnef: Path) -> dict[str, Any]:
    """A second Engine() in a process that already has the driver up and the disk cache filled: Engine() →
    first result, as when a node restarts its engine."""
    import numpy as np

    from ocl_infer.engine import Engine

    t0 = time.perf_counter()
    with Engine(nnef) as engine:
        t1 = time.perf_counter()
        engine.run({n: np.full(s.shape, 0.5, np.float32) for n, s in engine.inputs.items()})
        t2 = time.perf_counter()
        programs = engine.runtimes[0].programs
        return {"engine_init_s": t1 - t0, "first_frame_s": t2 - t0, "compiled": programs.compiles,
                "from_disk": programs.hits}


def plan_facts(engine: Any) -> dict[str, Any]:
    """What runs per frame: bound kernel launches, host↔device copies, steps, kernels, tuned steps, memory."""
    rt = engine.runtimes[0]
    steps = [s for s in engine.plan.steps if s.variant != "alias"]
    return {"device": rt.label, "launches_per_frame": len(rt.launches),
            "copies_per_frame": len(engine.plan.inputs) + len(engine.plan.outputs), "steps": len(steps),
            "kernels": {v: sum(1 for s in steps if s.variant == v) for v in sorted({s.variant for s in steps})},
            "tuned_steps": sum(1 for s in steps if s.attrs.get("tuned")), "memory_bytes": int(engine.memory_bytes())}


def profile(engine: Any, feed: dict[str, Any], frames: int) -> dict[str, Any]:
    """Device ms per step, minimum over `frames` profiled frames (launches waited one by one)."""
    best: dict[str, float] = {}
    for _ in range(frames):
        for step, ms in engine.profile(feed):
            best[step] = min(ms, best.get(step, float("inf")))
    return {"frames": frames, "device_ms_sum": sum(best.values()),
            "steps": [{"step": k, "ms": v} for k, v in best.items()]}


def latency(engine: Any, fn: Any, n: int, warmup: int) -> dict[str, Any]:
    """p50/p99 of blocking calls, with the process CPU time they cost per frame."""
    for _ in range(warmup):
        fn()
    cpu0 = time.process_time()
    times = time_frames(fn, n, 0)
    cpu = time.process_time() - cpu0
    return {**stats_ms(times), "cpu_us_per_frame": cpu / n * 1e6, "engine_stats": _stats(engine)}


def _stats(engine: Any) -> list[dict[str, Any]]:
    from dataclasses import asdict

    return [asdict(s) for s in engine.stats()]


def throughput(nnef: Path, feed: dict[str, Any], inflight: int, frames: int, batch: int = 1) -> dict[str, Any]:
    """frames/s with `inflight` frames outstanding (Engine max_inflight the same): submit, and wait for the oldest
    when the window is full, as a camera node with a bounded queue does."""
    from ocl_infer.engine import Engine

    with Engine(nnef, max_inflight=inflight) as engine:
        quiet(engine)
        for _ in range(max(3, inflight)):
            engine.run(feed)
        window: deque[Any] = deque()
        submit_s: list[float] = []
        cpu0, t0 = time.process_time(), time.perf_counter()
        for _ in range(frames):
            if len(window) >= inflight:
                window.popleft().result()
            t = time.perf_counter()
            window.append(engine.submit(feed))
            submit_s.append(time.perf_counter() - t)
        while window:
            window.popleft().result()
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        sub = stats_ms(submit_s)
        return {"max_inflight": inflight, "calls": frames, "batch": batch, "wall_s": wall,
                "frames_per_s": frames * batch / wall, "cpu_us_per_frame": cpu / (frames * batch) * 1e6,
                "submit_call_us_p50": sub["p50_ms"] * 1e3, "submit_call_us_p99": sub["p99_ms"] * 1e3,
                "engine_stats": _stats(engine)}


def engine_latency(nnef: Path, feed: dict[str, Any], ref: dict[str, Any], precision: str) -> dict[str, Any]:
    import numpy as np

    from ocl_infer.engine import Engine

    with Engine(nnef, precision=precision) as engine:
        quiet(engine)
        out = engine.run(feed)
        res: dict[str, Any] = {"plan": plan_facts(engine),
                               "max_abs_vs_onnxruntime": max(float(np.max(np.abs(out[k] - ref[k]))) for k in ref)}
        res["latency"] = latency(engine, lambda: engine.run(feed), count(300, 20), count(30, 3))
        log(f"engine {precision} batch 1: p50 {res['latency']['p50_ms']:.3f} ms, p99 {res['latency']['p99_ms']:.3f} "
            f"ms, {res['latency']['cpu_us_per_frame']:.0f} µs CPU/frame, {res['plan']['launches_per_frame']} launches")
        try:
            res["profile"] = profile(engine, feed, count(5, 2))
        except Exception as err:  # profiling is extra information; keep the latency numbers
            res["profile"] = {"error": error_text(err)}
        return res


def image_latency(nnef: Path, image: Any) -> dict[str, Any]:
    """The node's path: the raw BGR frame to the device, which letterboxes it (Engine.run_image)."""
    from ocl_infer.detection import Detector
    from ocl_infer.engine import Engine

    det = Detector(model_dir(1), backend="onnxruntime")  # only for its public image_transform (frame geometry)
    transform, _ = det.image_transform(image)
    det.close()
    with Engine(nnef) as engine:
        engine.warm_image(transform)
        quiet(engine)
        res = latency(engine, lambda: engine.run_image(image, transform), count(200, 10), count(20, 2))
        res["frame"] = f"{image.shape[1]}x{image.shape[0]} BGR uint8"
        return res


def batch_latency(nnef: Path, feed: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    import onnxruntime as ort

    from ocl_infer.engine import Engine

    sess = ort.InferenceSession(str(nnef.parent / "model.onnx"), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    ref = dict(zip(names, sess.run(names, feed), strict=True))
    with Engine(nnef) as engine:
        quiet(engine)
        out = engine.run(feed)
        res = {"plan": plan_facts(engine),
               "max_abs_vs_onnxruntime": max(float(np.max(np.abs(out[k] - ref[k]))) for k in ref),
               "latency": latency(engine, lambda: engine.run(feed), count(100, 4), count(10, 1))}
    res["frames_per_s_serial"] = 8 / (res["latency"]["p50_ms"] / 1e3)
    return res


def onnxruntime_cpu(onnx_path: Path, feed: dict[str, Any]) -> dict[str, Any]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = len(os.sched_getaffinity(0))  # the cores this container may use, not the host's
    sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    times = time_frames(lambda: sess.run(names, feed), count(60, 5), count(5, 1))
    return {**stats_ms(times), "threads": opts.intra_op_num_threads, "version": ort.__version__}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(CHILD_FLAG, type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.first_frame_child is not None:
        return first_frame_child(args.first_frame_child)

    import numpy as np
    import onnxruntime as ort

    frag = Fragment("bench_engine")
    nnef = model_dir(1) / "model.nnef"
    images = load_images()
    feeds = preprocessed(model_dir(1), images)
    name, feed = feeds[0]
    frag.put("input", f"{name}, letterboxed to {list(next(iter(feed.values())).shape)} (Detector host preprocess)")
    sess = ort.InferenceSession(str(model_dir(1) / "model.onnx"), providers=["CPUExecutionProvider"])
    out_names = [o.name for o in sess.get_outputs()]
    ref = dict(zip(out_names, sess.run(out_names, feed), strict=True))

    first = frag.attempt("first_frame", lambda: first_frames(nnef)) or {}
    warm = frag.attempt("first_frame_same_process", lambda: warm_in_process(nnef), store=False)
    if warm is not None:
        first["warm, same process"] = warm
        frag.put("first_frame", first)
    frag.attempt("fp32", lambda: engine_latency(nnef, feed, ref, "fp32"))
    frag.attempt("fp16", lambda: engine_latency(nnef, feed, ref, "fp16"))
    frag.attempt("image_path", lambda: image_latency(nnef, images[0][1]))
    rows: list[dict[str, Any]] = []
    for k in (1, 2, 4, 8):
        row = frag.attempt(f"throughput max_inflight {k}", lambda k=k: throughput(nnef, feed, k, count(1000, 30)),
                           store=False)
        if row is not None:
            rows.append(row)
            frag.put("throughput", rows)
            log(f"throughput max_inflight {k}: {row['frames_per_s']:.1f} frames/s, "
                f"{row['cpu_us_per_frame']:.0f} µs CPU/frame, submit {row['submit_call_us_p50']:.0f} µs")
    b8 = model_dir(8) / "model.nnef"
    if b8.is_dir():
        feed8 = {n: np.concatenate([feeds[i % len(feeds)][1][n] for i in range(8)]) for n in feed}
        frag.attempt("batch8", lambda: batch_latency(b8, feed8))
        frag.attempt("batch8_throughput",
                     lambda: throughput(b8, feed8, 2, count(150, 4), batch=8))
    else:
        frag.put("batch8", {"skipped": f"{b8} was not prepared (see prepare)"})
    frag.attempt("onnxruntime_cpu", lambda: onnxruntime_cpu(model_dir(1) / "model.onnx", feed))
    return 0 if not frag.data["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
