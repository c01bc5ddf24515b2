"""One benchmark run over models and backends, in one process: latency (the backends timed in alternating
blocks of frames), FLOPs, pre-processing cost, agreement with onnxruntime, device memory, first-frame times, an
optional per-step profile."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ocl_infer.benchmark.backends import LABELS, Backend, BackendOptions, BackendUnavailable, open_backend
from ocl_infer.benchmark.first_frame import first_frame_times
from ocl_infer.benchmark.measure import (
    Timing,
    graph_gflop,
    load_average,
    max_abs_diff,
    percentile_ms,
    time_alternating,
    time_frames,
)
from ocl_infer.benchmark.models import BenchModel, model_feed, sample_frame
from ocl_infer.errors import OclInferError


@dataclass(frozen=True)
class RunOptions:
    frames: int = 50
    warmup: int = 5
    backend: BackendOptions = field(default_factory=BackendOptions)
    profile: bool = False  # per-step device time of our engine (OpenCL events)
    first_frame: bool = True  # cold/warm Engine() + first run in fresh processes
    # Latency frames alternate between the backends in blocks of `block`, each after a `pause_s` pause: a
    # neighbour's burst on a shared machine then hits every backend alike (run one after the other, the same
    # code measured 0.93-1.05x onnxruntime from run to run), and onnxruntime's pool threads stop spinning
    # before the next backend's block.
    block: int = 5
    pause_s: float = 0.1


@dataclass
class ModelResult:
    """Every backend's numbers on one model at one input size."""

    size: int
    model: str
    gflop: float | None
    preprocess_ms: float | None
    timings: list[Timing]
    first_frame: dict[str, float | str] = field(default_factory=dict)
    memory_bytes: int | None = None
    max_abs_diff: float | None = None  # ours vs onnxruntime on the same input
    profile: list[tuple[str, float]] | None = None

    @property
    def failed_ours(self) -> list[Timing]:
        """Our engine's rows that failed while it ran or loaded a model it could convert, or gave NaN/inf where
        onnxruntime gave numbers: a broken engine, which the caller must not pass over (a model it cannot convert
        is a row saying so, not a failure)."""
        return [t for t in self.timings if t.backend.startswith("ours") and t.extra.get("failed")]


def bench_model(model: BenchModel, backends: list[str], options: RunOptions) -> ModelResult:
    """Open every backend (onnxruntime first when asked: its outputs check ours), run each once, time them all
    in alternating blocks, then close them."""
    feed = model_feed(model)
    pre_ms = None
    if model.description is not None:
        from ocl_infer.detection.preprocess import preprocess

        frame = sample_frame()
        spec = model.description.input
        pre_ms = percentile_ms(time_frames(lambda: preprocess(frame, spec), max(options.frames, 10), 2), 50)
    gflop = graph_gflop(model.nnef) if model.nnef is not None else None
    result = ModelResult(model.size, model.label, gflop, pre_ms, [])
    print(f"bench: {model.label} {model.size}: "
          f"{'n/a' if gflop is None else f'{gflop:.2f}'} GFLOP", flush=True)
    rows: dict[str, Timing] = {}
    opened: dict[str, tuple[Backend, dict[str, Any]]] = {}
    try:
        reference: dict[str, Any] | None = None
        for name in backends:
            try:
                backend = open_backend(name, model, options.backend)
            except OclInferError as err:
                rows[name] = _failed(name, LABELS[name], model.size, err)
                continue
            try:
                outputs = backend.run(feed)
            except OclInferError as err:
                backend.close()
                rows[name] = _failed(name, LABELS[name], model.size, err)
                continue
            opened[name] = (backend, outputs)
            if name == "onnxruntime":
                reference = outputs
        rows.update(_time_opened(opened, feed, model.size, options))
        for name, (backend, outputs) in opened.items():
            if rows[name].error is None:
                _check_and_describe(name, backend, outputs, reference, feed, rows[name], result, options)
    finally:
        for backend, _ in opened.values():
            backend.close()
    for name in backends:
        timing = rows[name]
        print(f"bench:   {timing.backend}: {timing.error or f'{timing.median_ms:.2f} ms median'}", flush=True)
        result.timings.append(timing)
    if "ours" in backends and options.first_frame and model.nnef is not None and not result.failed_ours:
        result.first_frame = first_frame_times(model.nnef, options.backend.devices, options.backend.threads)
    return result


def _time_opened(opened: Mapping[str, tuple[Backend, dict[str, Any]]], feed: dict[str, Any], size: int,
                 options: RunOptions) -> dict[str, Timing]:
    """Each opened backend's Timing row: warm-up, then alternating blocks (`time_alternating`). A backend that
    fails while timed leaves the rotation and gets a row saying why; the others go on."""
    errors: dict[str, OclInferError] = {}

    def step(name: str, backend: Backend) -> Callable[[], object]:
        def run() -> object:
            if name in errors:
                return None
            try:
                return backend.run(feed)
            except OclInferError as err:
                errors[name] = err
                return None
        return run

    steps = {name: step(name, backend) for name, (backend, _) in opened.items()}
    for run in steps.values():
        for _ in range(options.warmup):
            run()
    load0 = load_average()
    times = time_alternating(steps, options.frames, min(options.block, options.frames), options.pause_s)
    load = (load0, load_average())
    rows: dict[str, Timing] = {}
    for name, (backend, _) in opened.items():
        if name in errors:
            rows[name] = _failed(name, LABELS[name], size, errors[name])
            continue
        t = times[name]
        rows[name] = Timing(backend.label, size, percentile_ms(t, 50), percentile_ms(t, 99), len(t), load)
    return rows


def _check_and_describe(name: str, backend: Backend, outputs: dict[str, Any], reference: dict[str, Any] | None,
                        feed: dict[str, Any], timing: Timing, result: ModelResult, options: RunOptions) -> None:
    """Agreement with onnxruntime and the backend's details into its row; the float32 engine's memory and
    agreement go to the model's result, fp16's stay in its row's `extra`."""
    details = backend.details()
    diff = max_abs_diff(outputs, reference) if reference is not None and name.startswith("ours") else None
    if diff is not None and not math.isfinite(diff):  # NaN or inf where onnxruntime has numbers: broken
        timing.extra.update(failed=True, wrong=f"outputs not finite where onnxruntime's are (max abs diff {diff})")
    if name == "ours":
        result.memory_bytes = details.pop("memory_bytes")
        result.max_abs_diff = diff
        if options.profile:
            result.profile = [(str(step), float(ms)) for step, ms in backend.engine.profile(feed)]  # type: ignore[attr-defined]
    elif name == "ours-fp16":
        details["max_abs_diff"] = diff
    timing.extra.update(details)


def _failed(name: str, label: str, size: int, err: OclInferError) -> Timing:
    """The row of a backend that could not run: why, in one line."""
    if isinstance(err, BackendUnavailable):
        return Timing(label, size, error=str(err))
    return Timing(label, size, error=f"{'engine' if name.startswith('ours') else name} failed: {err}",
                  extra={"failed": True})
