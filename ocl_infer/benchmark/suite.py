"""One benchmark run over models and backends, in one process, one backend after the other: latency, FLOPs,
pre-processing cost, agreement with onnxruntime, device memory, first-frame times, an optional per-step profile."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ocl_infer.benchmark.backends import LABELS, Backend, BackendOptions, BackendUnavailable, open_backend
from ocl_infer.benchmark.first_frame import first_frame_times
from ocl_infer.benchmark.measure import Timing, graph_gflop, max_abs_diff, percentile_ms, time_frames, timing_of
from ocl_infer.benchmark.models import BenchModel, model_feed, sample_frame
from ocl_infer.errors import OclInferError


@dataclass(frozen=True)
class RunOptions:
    frames: int = 50
    warmup: int = 5
    backend: BackendOptions = field(default_factory=BackendOptions)
    profile: bool = False  # per-step device time of our engine (OpenCL events)
    first_frame: bool = True  # cold/warm Engine() + first run in fresh processes


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
    """Time each backend on `model` (onnxruntime first when asked: its outputs check ours)."""
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
    reference: dict[str, Any] | None = None
    for name in backends:
        timing, outputs = _time_backend(name, model, feed, reference, result, options)
        if name == "onnxruntime" and outputs is not None:
            reference = outputs
        print(f"bench:   {timing.backend}: {timing.error or f'{timing.median_ms:.2f} ms median'}", flush=True)
        result.timings.append(timing)
    if "ours" in backends and options.first_frame and model.nnef is not None and not result.failed_ours:
        result.first_frame = first_frame_times(model.nnef, options.backend.devices, options.backend.threads)
    return result


def _time_backend(name: str, model: BenchModel, feed: dict[str, Any], reference: dict[str, Any] | None,
                  result: ModelResult, options: RunOptions) -> tuple[Timing, dict[str, Any] | None]:
    """One backend's Timing row and its outputs on `feed`; a backend that cannot run gives a row saying why.
    The float32 engine's memory and agreement go to the model's result, fp16's stay in its row's `extra`."""
    label = LABELS[name]
    try:
        backend: Backend = open_backend(name, model, options.backend)
    except OclInferError as err:
        return _failed(name, label, model.size, err), None
    try:
        outputs = backend.run(feed)
        timing = timing_of(backend.label, model.size, lambda: backend.run(feed), options.frames, options.warmup)
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
        return timing, outputs
    except OclInferError as err:
        return _failed(name, label, model.size, err), None
    finally:
        backend.close()


def _failed(name: str, label: str, size: int, err: OclInferError) -> Timing:
    """The row of a backend that could not run: why, in one line."""
    if isinstance(err, BackendUnavailable):
        return Timing(label, size, error=str(err))
    return Timing(label, size, error=f"{'engine' if name.startswith('ours') else name} failed: {err}",
                  extra={"failed": True})
