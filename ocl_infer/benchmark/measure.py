"""Measurement: timing loops, latency statistics, the machine's FLOP ceiling, a model's FLOPs, output agreement,
and what the machine was (CPU, load, revision), so that every number is read next to its conditions."""

from __future__ import annotations

import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ocl_infer.errors import ModelError


@dataclass
class Timing:
    """Latency of one backend on one model input; `error` says why there is no number."""

    backend: str
    size: int
    median_ms: float | None = None
    p99_ms: float | None = None
    frames: int = 0
    load: tuple[float, float] = (0.0, 0.0)  # 1-minute load average before, after
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def load_average() -> float:
    return os.getloadavg()[0]


def percentile_ms(samples_s: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples_s) * 1e3, q))


def time_frames(step: Callable[[], object], frames: int, warmup: int) -> list[float]:
    """Seconds per call of `step`, after `warmup` untimed calls."""
    for _ in range(warmup):
        step()
    out = []
    for _ in range(frames):
        t0 = time.perf_counter()
        step()
        out.append(time.perf_counter() - t0)
    return out


def time_alternating(steps: Mapping[str, Callable[[], object]], frames: int, block: int,
                     pause_s: float) -> dict[str, list[float]]:
    """Seconds per call of each step, in alternating blocks of `block` calls until each has `frames`: load from
    others on a shared machine then hits every backend alike. The pause before each block lets onnxruntime's
    pool threads stop spinning before the next backend runs (and PoCL's workers go idle before onnxruntime)."""
    times: dict[str, list[float]] = {name: [] for name in steps}
    while min(len(t) for t in times.values()) < frames:
        for name, step in steps.items():
            time.sleep(pause_s)
            for _ in range(block):
                t0 = time.perf_counter()
                step()
                times[name].append(time.perf_counter() - t0)
    return times


def latency_summary(times_s: list[float]) -> dict[str, Any]:
    """Median, p90, p99 and min in ms, and every frame's time (rounded), of one backend's samples."""
    ms = np.asarray(times_s) * 1e3
    return {"median": float(np.median(ms)), "p90": float(np.percentile(ms, 90)), "p99": float(np.percentile(ms, 99)),
            "min": float(ms.min()), "frames": len(times_s), "all": [round(float(x), 3) for x in ms]}


def sgemm_ceiling_gflops(n: int = 1024, reps: int = 8) -> float:
    """Best float32 matmul rate numpy reaches here (all cores): the machine's practical FLOP ceiling."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    a @ b
    best = min(_seconds(lambda: a @ b) for _ in range(reps))
    return 2 * n**3 / best / 1e9


def _seconds(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def graph_gflop(nnef_path: Path) -> float:
    """Multiply-adds x 2 of the convs and matrix products of an NNEF model (the engine's loader infers the
    shapes); the elementwise rest is well under 1 % of a detector's work."""
    from ocl_infer.engine.graph.loader import load_graph

    graph = load_graph(nnef_path)
    flops = 0
    for op in graph.ops:
        if op.kind in ("conv", "deconv"):
            filt = graph.tensors[op.inputs[1]].shape
            out = graph.tensors[op.outputs[0]].shape
            flops += 2 * math.prod(out) * math.prod(filt[1:])
        elif op.kind in ("matmul", "linear"):
            a = graph.tensors[op.inputs[0]].shape
            out = graph.tensors[op.outputs[0]].shape
            k = a[-1] if not (op.kind == "matmul" and op.attrs.get("transposeA")) else a[-2]
            flops += 2 * math.prod(out) * k
    return flops / 1e9


def rel_error(got: np.ndarray, want: np.ndarray) -> float:
    """Max |got - want| relative to want's largest magnitude (nan: shapes differ, inf: got is not finite)."""
    if got.shape != want.shape:
        return float("nan")
    if not np.all(np.isfinite(got)):
        return float("inf")
    if not want.size:
        return 0.0
    scale = max(float(np.max(np.abs(want))), 1e-6)
    return float(np.max(np.abs(got.astype(np.float64) - want))) / scale


def max_abs_diff(got: Mapping[str, np.ndarray], want: Mapping[str, np.ndarray]) -> float:
    """Largest absolute difference over the outputs both have; ModelError when they share none."""
    common = [k for k in want if k in got]
    if not common:
        raise ModelError(f"no output in common to compare: {sorted(got)} vs {sorted(want)}")
    return max(float(np.abs(got[k] - want[k]).max()) for k in common)


def wait_for_quiet(limit: float, max_s: float = 600.0) -> None:
    """Wait (up to max_s) until the 1-minute load average is below `limit`: on a shared 2-core machine a burst
    of someone else's work slows onnxruntime's spinning pool far more than it slows our engine."""
    t0 = time.monotonic()
    while load_average() >= limit and time.monotonic() - t0 < max_s:
        time.sleep(10)
    print(f"load {load_average():.2f} after waiting {time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)


def cpu_model() -> str:
    """The CPU's model name (lscpu), or what `platform` knows."""
    name = platform.processor() or platform.machine()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return name
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    return fields.get("Model name", name).strip()


def machine_line() -> str:
    return (f"{cpu_model()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}")


def machine_info() -> dict[str, Any]:
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "system": f"{platform.system()} {platform.release()}",
            "python": platform.python_version()}


def revision(root: Path) -> str:
    """The commit measured, and whether the working tree had changes under ocl_infer/ (what counts)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "ocl_infer"], cwd=root, capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"
    return f"{head} + uncommitted changes under ocl_infer/" if dirty else head


def device_line() -> str:
    """The OpenCL devices the engine sees, for the report's header."""
    from ocl_infer.engine.devices import list_devices
    from ocl_infer.errors import OclInferError

    try:
        devs = list_devices()
    except OclInferError as err:  # the report still prints without the device line
        return f"unknown ({err})"
    return ", ".join(f"cl:{d.index} {d.name} ({d.platform})" for d in devs)
