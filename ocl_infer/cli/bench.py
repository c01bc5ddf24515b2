"""`ocl-infer bench`: our OpenCL engine against onnxruntime and OpenCV DNN on YOLOv3-tiny, in one run.

Everything that is compared is measured in the same process on the same machine, one backend after the other:
latency median / p99 over N frames after warm-up, achieved GFLOP/s against the machine's measured numpy sgemm
ceiling, pre-processing cost, first-frame time with cold and warm program caches (fresh subprocesses), peak
device memory. The machine's load average is recorded next to the numbers, since a shared machine makes them
noisy. `--write FILE` replaces the results section of FILE (docs/performance.md) between two markers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ocl_infer.errors import ConfigError, ModelError, SetupError

BEGIN_MARK = "<!-- bench:begin (written by `ocl-infer bench --write`; edits inside are overwritten) -->"
END_MARK = "<!-- bench:end -->"
CHILD_FLAG = "--first-frame-child"  # internal: time Engine() + first run in this fresh process


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("bench", help="benchmark the engine against onnxruntime and OpenCV DNN (YOLOv3-tiny)")
    p.add_argument("--sizes", default="416,320", help="network input sizes, comma separated (default 416,320)")
    p.add_argument("--frames", type=int, default=50, help="timed frames per backend and size (default 50)")
    p.add_argument("--warmup", type=int, default=5, help="untimed frames first (default 5)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for every backend (default: all cores)")
    p.add_argument("--devices", default=None, help="engine device selector (default: the first device)")
    p.add_argument("--backends", default="ours,ours-fp16,onnxruntime,opencv",
                   help="which backends to time, comma separated (default ours,ours-fp16,onnxruntime,opencv; "
                        "ours-fp16: the engine with precision='fp16')")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 416 only, 5 frames, 1 warm-up, no cold/warm first-frame subprocesses")
    p.add_argument("--no-first-frame", action="store_true", help="skip the cold/warm first-frame subprocesses")
    p.add_argument("--profile", action="store_true", help="per-layer table from OpenCL event timing (ours)")
    p.add_argument("--write", type=Path, default=None, metavar="FILE",
                   help="write the results section of FILE (e.g. docs/performance.md)")
    p.add_argument("--json", type=Path, default=None, metavar="FILE", help="also write raw results as JSON")
    p.add_argument(CHILD_FLAG, default=None, help=argparse.SUPPRESS)
    p.set_defaults(func=run)


@dataclass
class Timing:
    """Latency of one backend at one size; `error` says why there is no number."""

    backend: str
    size: int
    median_ms: float | None = None
    p99_ms: float | None = None
    frames: int = 0
    load: tuple[float, float] = (0.0, 0.0)  # 1-minute load average before, after
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class SizeResult:
    size: int
    model: str
    gflop: float
    preprocess_ms: float
    timings: list[Timing]
    first_frame: dict[str, float | str] = field(default_factory=dict)
    memory_bytes: int | None = None
    max_abs_diff: float | None = None  # ours vs onnxruntime on the same input
    profile: list[tuple[str, float]] | None = None


# ---------------------------------------------------------------------------------------------- measurements


def percentile_ms(samples_s: list[float], q: float) -> float:
    import numpy as np

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


def sgemm_ceiling_gflops(n: int = 1024, reps: int = 8) -> float:
    """Best float32 matmul rate numpy reaches here (all cores): the machine's practical FLOP ceiling."""
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(reps))
    return 2 * n**3 / best / 1e9


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def graph_gflop(nnef_dir: Path) -> float:
    """Multiply-adds x 2 of every conv in the NNEF graph (shapes inferred); the rest is < 0.1 % here."""
    import math

    import nnef

    try:
        graph = nnef.load_graph(str(nnef_dir))
        nnef.infer_shapes(graph)
    except nnef.Error as err:
        raise ModelError(f"{nnef_dir}: cannot load the NNEF graph to count FLOPs: {err}") from err
    flops = 0
    for op in graph.operations:
        if op.name in ("conv", "deconv"):
            filt = graph.tensors[op.inputs["filter"]].shape
            out = graph.tensors[op.outputs["output"]].shape
            flops += 2 * math.prod(out) * math.prod(filt[1:])
    return flops / 1e9


def model_for_size(size: int) -> Path:
    """The prepared YOLOv3-tiny folder for this input size; prepares it (PyPI sdist) when missing."""
    from ocl_infer import paths

    folder = paths.default_model_dir() if size == 416 else paths.models_dir() / f"{paths.DEFAULT_MODEL_NAME}-{size}"
    if not (folder / "model.json").is_file():
        from ocl_infer.detection.prepare import prepare_default_model

        print(f"bench: preparing {folder.name} (ocl-infer prepare-model --size {size})", flush=True)
        prepare_default_model(folder, size, paths.DEFAULT_MODEL_NAME, paths.downloads_dir())
    return folder


def sample_frame() -> Any:
    """A real street frame (vtest.avi, 768x576) or, failing that, dog.jpg; BGR uint8."""
    import cv2

    from ocl_infer import paths

    video = paths.data_dir() / "vtest.avi"
    if video.is_file():
        cap = cv2.VideoCapture(str(video))
        ok, frame = cap.read()
        cap.release()
        if ok:
            return frame
    image = cv2.imread(str(paths.data_dir() / "dog.jpg"))
    if image is None:
        raise SetupError(f"no sample frame in {paths.data_dir()}: run `make setup`")
    return image


def bench_onnxruntime(onnx_path: Path, feed: dict[str, Any], threads: int, frames: int, warmup: int,
                      size: int) -> tuple[Timing, dict[str, Any]]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    outputs = dict(zip(names, sess.run(names, feed), strict=True))
    load0 = os.getloadavg()[0]
    times = time_frames(lambda: sess.run(names, feed), frames, warmup)
    time.sleep(0.2)  # its pool threads spin a while after a run; the session itself goes when we return
    return _timing("onnxruntime", size, times, load0), outputs


def bench_opencv(onnx_path: Path, x: Any, threads: int, frames: int, warmup: int, size: int) -> Timing:
    import cv2

    cv2.setNumThreads(threads)
    try:
        net = cv2.dnn.readNetFromONNX(str(onnx_path))
        net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)  # its own CPU code (the default target)
        names = net.getUnconnectedOutLayersNames()

        def step() -> object:
            net.setInput(x)
            return net.forward(names)

        step()
    except cv2.error as err:
        return Timing("opencv-dnn", size, error=f"OpenCV could not run {onnx_path.name}: {str(err).strip()[:120]}")
    load0 = os.getloadavg()[0]
    timing = _timing("opencv-dnn", size, time_frames(step, frames, warmup), load0)
    time.sleep(0.2)  # let its worker threads go idle before the next backend
    return timing


def _timing(backend: str, size: int, times: list[float], load0: float) -> Timing:
    return Timing(backend, size, percentile_ms(times, 50), percentile_ms(times, 99), len(times),
                  (load0, os.getloadavg()[0]))


def open_engine(nnef_dir: Path, devices: str | None, precision: str = "fp32") -> Any:
    """Engine(model, devices), or a string saying why it cannot run here (not built yet, ...)."""
    try:
        from ocl_infer.engine import Engine
    except ImportError as err:
        return f"engine not available: {err}"
    return Engine(nnef_dir, devices=devices, precision=precision)


def bench_ours(nnef_dir: Path, feed: dict[str, Any], reference: dict[str, Any] | None, devices: str | None,
               frames: int, warmup: int, size: int, result: SizeResult, profile: bool,
               precision: str = "fp32") -> Timing:
    """Our engine. precision "fp16" (the "ours fp16" row) keeps its memory and max abs diff in `extra`, so
    the fp32 figures of the size stay the float32 engine's."""
    import numpy as np

    from ocl_infer.errors import OclInferError

    label = "ours (OpenCL)" if precision == "fp32" else f"ours {precision} (OpenCL)"
    try:
        engine = open_engine(nnef_dir, devices, precision)
    except OclInferError as err:
        return Timing(label, size, error=f"engine failed: {err}")
    if isinstance(engine, str):
        return Timing(label, size, error=engine)
    with engine:
        try:
            outputs = engine.run(feed)
            load0 = os.getloadavg()[0]
            times = time_frames(lambda: engine.run(feed), frames, warmup)
            timing = _timing(label, size, times, load0)
            timing.extra["device"] = ", ".join(str(s.label) for s in engine.stats())
            timing.extra["tuning"] = tuning_note(engine)
            diff = (max(float(np.abs(outputs[k] - reference[k]).max()) for k in reference)
                    if reference is not None else None)
            if precision != "fp32":
                timing.extra.update(memory_bytes=int(engine.memory_bytes()), max_abs_diff=diff)
                return timing
            result.memory_bytes = int(engine.memory_bytes())
            result.max_abs_diff = diff
            if profile:
                result.profile = engine_profile(engine, feed)
        except OclInferError as err:
            return Timing(label, size, error=f"engine failed: {err}")
    return timing


def tuning_note(engine: Any) -> str:
    """How many of the engine's tunable conv steps took their parameters from a device tuning table."""
    from ocl_infer.engine.tuning import tunable_steps

    steps = [s for plan in engine.plans for s, _, _ in tunable_steps(plan)]
    tuned = sum(1 for s in steps if s.attrs.get("tuned"))
    return (f"{tuned} of {len(steps)} conv steps from the device's tuning table (`ocl-infer tune`)" if tuned
            else f"none of {len(steps)} conv steps tuned (no tuning table: the kernels' rules)")


def engine_profile(engine: Any, feed: dict[str, Any]) -> list[tuple[str, float]] | None:
    """Per-layer device milliseconds, when the engine offers `profile(inputs) -> [(op, ms), ...]`."""
    hook = getattr(engine, "profile", None)
    if not callable(hook):
        return None
    return [(str(name), float(ms)) for name, ms in hook(feed)]


def first_frame_times(nnef_dir: Path, devices: str | None, threads: int) -> dict[str, float | str]:
    """Engine() + first run in fresh subprocesses: with empty caches (cold), then with the caches it filled."""
    out: dict[str, float | str] = {}
    with tempfile.TemporaryDirectory(prefix="ocl-infer-bench-") as tmp:
        env = {
            **os.environ,
            "POCL_CACHE_DIR": str(Path(tmp) / "pocl"),
            "XDG_CACHE_HOME": str(Path(tmp) / "xdg"),  # pyopencl's binary cache
            "OCL_INFER_CACHE": str(Path(tmp) / "ocl_infer"),  # the engine's program cache lives under it
            "POCL_MAX_PTHREAD_COUNT": str(threads),
        }
        cmd = [sys.executable, "-m", "ocl_infer.cli", "bench", CHILD_FLAG, str(nnef_dir)]
        if devices:
            cmd += ["--devices", devices]
        for label in ("cold", "warm"):
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, check=False)
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
            if proc.returncode != 0 or not lines:
                out[label] = f"failed: {(proc.stderr.strip().splitlines() or ['no output'])[-1][:100]}"
                break
            reply = json.loads(lines[-1])
            out[label] = float(reply["first_frame_s"])
            if label == "cold":  # the binaries are written in the background after the first frame
                out["cache_written"] = float(reply["cache_written_s"])
    return out


def run_first_frame_child(nnef_dir: Path, devices: str | None) -> int:
    """In a fresh process: seconds from Engine() to the first outputs (program builds included)."""
    import numpy as np

    t0 = time.perf_counter()
    engine = open_engine(nnef_dir, devices)
    if isinstance(engine, str):
        print(engine, file=sys.stderr)
        return 2
    with engine:
        feed = {name: np.zeros(spec.shape, np.float32) for name, spec in engine.inputs.items()}
        engine.run(feed)
        elapsed = time.perf_counter() - t0
        engine.wait_for_program_cache(timeout=300)  # so the warm child finds the binaries
        written = time.perf_counter() - t0
    print(json.dumps({"first_frame_s": elapsed, "cache_written_s": written}))
    return 0


def bench_size(size: int, args: argparse.Namespace, backends: list[str]) -> SizeResult:
    import numpy as np

    from ocl_infer.detection.description import load_description
    from ocl_infer.detection.preprocess import preprocess

    folder = model_for_size(size)
    desc = load_description(folder)
    frame = sample_frame()
    pre_times = time_frames(lambda: preprocess(frame, desc.input), max(args.frames, 10), 2)
    x, _ = preprocess(frame, desc.input)
    feed = {desc.input.name: np.ascontiguousarray(x)}
    result = SizeResult(size, desc.name, graph_gflop(desc.nnef_path), percentile_ms(pre_times, 50), [])
    print(f"bench: {desc.name} {size}x{size}: {result.gflop:.2f} GFLOP", flush=True)
    reference = None
    for backend in backends:
        if backend == "onnxruntime":
            timing, reference = bench_onnxruntime(desc.onnx_path, feed, args.threads, args.frames, args.warmup,
                                                  size)
        elif backend == "opencv":
            timing = bench_opencv(desc.onnx_path, x, args.threads, args.frames, args.warmup, size)
        elif backend == "ours-fp16":
            timing = bench_ours(desc.nnef_path, feed, reference, args.devices, args.frames, args.warmup, size,
                                result, False, precision="fp16")
        else:
            timing = bench_ours(desc.nnef_path, feed, reference, args.devices, args.frames, args.warmup, size,
                                result, args.profile)
        print(f"bench:   {timing.backend}: "
              f"{timing.error or f'{timing.median_ms:.2f} ms median'}", flush=True)
        result.timings.append(timing)
    if "ours" in backends and not args.no_first_frame:
        result.first_frame = first_frame_times(desc.nnef_path, args.devices, args.threads)
    return result


# --------------------------------------------------------------------------------------------------- report


def machine_line() -> str:
    model = platform.processor() or platform.machine()
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10, check=False).stdout
        fields = dict(line.split(":", 1) for line in lscpu.splitlines() if ":" in line)
        model = fields.get("Model name", model).strip()
    except OSError:
        pass
    return (f"{model}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}")


def device_line() -> str:
    try:
        from ocl_infer.engine.devices import list_devices

        devs = list_devices()
        return ", ".join(f"cl:{d.index} {d.name} ({d.platform})" for d in devs)
    except Exception as err:  # the report still prints without the device line
        return f"unknown ({err})"


def _fmt(v: float | None, spec: str = ".2f") -> str:
    return "n/a" if v is None else format(v, spec)


def render_report(results: list[SizeResult], ceiling: float, meta: dict[str, str]) -> str:
    """The markdown report: metadata, the latency table, first-frame/memory, optional per-layer profile."""
    lines = [
        f"- date: {meta['date']}",
        f"- machine: {meta['machine']}",
        f"- OpenCL devices: {meta['devices']}",
        f"- command: `{meta['command']}`",
        f"- threads per backend: {meta['threads']}; frames: {meta['frames']} timed after {meta['warmup']} warm-up",
        f"- load average (1 min) at start / end: {meta['load_start']} / {meta['load_end']}",
        f"- sgemm ceiling (numpy float32 1024³, all cores, best of start and end): {ceiling:.0f} GFLOP/s",
        "",
        "| size | backend | median ms | p99 ms | GFLOP/s | % of sgemm | × onnxruntime | load before/after |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        ort = next((t for t in r.timings if t.backend == "onnxruntime" and t.median_ms), None)
        for t in r.timings:
            if t.error:
                lines.append(f"| {r.size} | {t.backend} | n/a | n/a | n/a | n/a | n/a | {t.error} |")
                continue
            assert t.median_ms is not None
            gf = r.gflop / (t.median_ms / 1e3)
            ratio = f"{t.median_ms / ort.median_ms:.2f}" if ort and ort.median_ms else "n/a"
            lines.append(f"| {r.size} | {t.backend} | {t.median_ms:.2f} | {_fmt(t.p99_ms)} | {gf:.0f} "
                         f"| {100 * gf / ceiling:.0f} % | {ratio} | {t.load[0]:.2f} / {t.load[1]:.2f} |")
    lines += ["", "| size | model GFLOP | pre-process ms (letterbox+convert) | first frame cold s "
              "| program cache written s | first frame warm s | peak device memory MiB | max abs diff vs onnxruntime |",
              "|---|---|---|---|---|---|---|---|"]
    for r in results:
        cold, written, warm = (r.first_frame.get(k, "n/a") for k in ("cold", "cache_written", "warm"))
        mem = "n/a" if r.memory_bytes is None else f"{r.memory_bytes / 2**20:.1f}"
        lines.append(f"| {r.size} | {r.gflop:.2f} | {r.preprocess_ms:.2f} | {_fmt_any(cold)} | {_fmt_any(written)} "
                     f"| {_fmt_any(warm)} | {mem} | {_fmt(r.max_abs_diff, '.1e')} |")
    half = [(r, t) for r in results for t in r.timings if t.backend.startswith("ours fp16") and not t.error]
    if half:  # the "ours fp16" rows: what storing weights/scratch as half costs in accuracy, saves in memory
        lines += ["", "| size | ours fp16: max abs diff vs onnxruntime | ours fp16: peak device memory MiB |",
                  "|---|---|---|"]
        lines += [f"| {r.size} | {_fmt(t.extra.get('max_abs_diff'), '.1e')} "
                  f"| {t.extra.get('memory_bytes', 0) / 2**20:.1f} |" for r, t in half]
    tuning = [(r.size, t.backend, t.extra["tuning"]) for r in results for t in r.timings if t.extra.get("tuning")]
    if tuning:
        lines += ["", *(f"- kernel tuning, {size} {backend}: {note}" for size, backend, note in tuning)]
    for r in results:
        if r.profile is None and meta.get("profile") == "yes":
            lines += ["", f"Per-layer profile, {r.size}: not available (the engine has no `profile(inputs)` hook)."]
        if r.profile:
            total = sum(ms for _, ms in r.profile) or 1.0
            lines += ["", f"Per-layer device time, {r.size} (OpenCL events, one frame):", "",
                      "| op | ms | % |", "|---|---|---|"]
            lines += [f"| {name} | {ms:.3f} | {100 * ms / total:.1f} |" for name, ms in r.profile]
    return "\n".join(lines) + "\n"


def _fmt_any(v: float | str) -> str:
    return f"{v:.2f}" if isinstance(v, float) else str(v)


def write_section(path: Path, body: str) -> None:
    """Replace the text between the bench markers of `path` (append the section when it has none)."""
    section = f"{BEGIN_MARK}\n{body}{END_MARK}\n"
    text = path.read_text() if path.is_file() else "# Performance\n\n## Results\n\n"
    if BEGIN_MARK in text and END_MARK in text:
        head, rest = text.split(BEGIN_MARK, 1)
        tail = rest.split(END_MARK, 1)[1].lstrip("\n")
        text = head + section + ("\n" + tail if tail else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


# ------------------------------------------------------------------------------------------------------- run


def run(args: argparse.Namespace) -> int:
    if args.first_frame_child:
        return run_first_frame_child(Path(args.first_frame_child), args.devices)
    threads = args.threads or os.cpu_count() or 1
    args.threads = threads
    # PoCL reads this when it starts: give the engine the same thread count as the others.
    os.environ.setdefault("POCL_MAX_PTHREAD_COUNT", str(threads))
    if args.quick:
        args.sizes, args.frames, args.warmup, args.no_first_frame = "416", min(args.frames, 5), 1, True
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError as err:
        raise ConfigError(f"--sizes: expected comma separated integers, got {args.sizes!r}") from err
    if not sizes or any(s <= 0 or s % 32 for s in sizes):
        raise ConfigError(f"--sizes: each size must be a positive multiple of 32, got {args.sizes!r}")
    if args.frames < 1 or args.warmup < 0:
        raise ConfigError("--frames must be >= 1 and --warmup >= 0")
    known = ("onnxruntime", "opencv", "ours", "ours-fp16")
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if not backends or any(b not in known for b in backends):
        raise ConfigError(f"--backends: choose from {', '.join(known)}, got {args.backends!r}")
    backends.sort(key=known.index)  # onnxruntime first: its outputs check ours

    load_start = os.getloadavg()[0]
    ceiling = sgemm_ceiling_gflops()
    print(f"bench: sgemm ceiling {ceiling:.0f} GFLOP/s, load {load_start:.2f}", flush=True)
    results = [bench_size(size, args, backends) for size in sizes]
    # Neighbours on a shared machine can only lower the measured ceiling: keep the better of start and end.
    ceiling = max(ceiling, sgemm_ceiling_gflops())
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine_line(),
        "devices": device_line(),
        "command": "ocl-infer bench " + " ".join(sys.argv[2:] if sys.argv[1:2] == ["bench"] else sys.argv[1:]),
        "threads": str(threads),
        "frames": str(args.frames),
        "warmup": str(args.warmup),
        "load_start": f"{load_start:.2f}",
        "load_end": f"{os.getloadavg()[0]:.2f}",
        "profile": "yes" if args.profile else "no",
    }
    report = render_report(results, ceiling, meta)
    print()
    print(report, end="")
    if args.write:
        write_section(args.write, report)
        print(f"bench: results written to {args.write}")
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "ceiling_gflops": ceiling,
                                         "results": [_as_dict(r) for r in results]}, indent=1, default=str))
    return 0


def _as_dict(r: SizeResult) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(r)
