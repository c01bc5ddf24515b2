"""The backends a benchmark times, behind one protocol: our engine (float32 and fp16 storage), onnxruntime and
OpenCV DNN, each opened on a BenchModel, run on a feed, closed. A table maps the CLI's names to them."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ocl_infer.benchmark.models import BenchModel
from ocl_infer.errors import ConfigError, ModelError, OclInferError


class BackendUnavailable(OclInferError):
    """A backend cannot run this model here (no ONNX file, OpenCV lacks an op, the conversion failed)."""


@dataclass(frozen=True)
class BackendOptions:
    threads: int = 1
    devices: str | None = None  # engine device selector
    engine: Mapping[str, Any] | None = None  # further Engine options (kernels, fuse, tuning, ...)


class Backend(Protocol):
    label: str  # the report's row name

    def run(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def details(self) -> dict[str, Any]:
        """What the report shows beside the latency (device, memory, tuning); may be empty."""
        ...

    def close(self) -> None: ...


class OnnxRuntimeBackend:
    """onnxruntime's CPU provider, sequential, `threads` intra-op threads: the reference and the speed peer."""

    label = "onnxruntime"

    def __init__(self, model: BenchModel, options: BackendOptions, profile_prefix: str | None = None) -> None:
        import onnxruntime as ort

        if model.onnx is None:
            raise BackendUnavailable(f"{model.label}: no ONNX file to run")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = options.threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        if profile_prefix:
            opts.enable_profiling = True
            opts.profile_file_prefix = profile_prefix
        try:
            self.session = ort.InferenceSession(str(model.onnx), opts, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own untyped errors
            raise ModelError(f"{model.onnx}: onnxruntime cannot load it ({err})") from err
        self.names = [o.name for o in self.session.get_outputs()]

    def run(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self.names, self.session.run(self.names, dict(feed)), strict=True))

    def details(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        time.sleep(0.2)  # its pool threads spin a while after a run; let them stop before the next backend


class OpenCVBackend:
    """OpenCV DNN on its own CPU code (DNN_BACKEND_OPENCV; it does not really use PoCL)."""

    label = "opencv-dnn"

    def __init__(self, model: BenchModel, options: BackendOptions) -> None:
        import cv2

        if model.onnx is None:
            raise BackendUnavailable(f"{model.label}: no ONNX file to run")
        if len(model.inputs) != 1:
            raise BackendUnavailable(f"{model.onnx.name}: OpenCV DNN takes one input, the model has "
                                     f"{len(model.inputs)}")
        cv2.setNumThreads(options.threads)
        self._error = cv2.error
        try:
            self.net = cv2.dnn.readNetFromONNX(str(model.onnx))
            self.net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
            self.names = list(self.net.getUnconnectedOutLayersNames())
        except cv2.error as err:
            raise BackendUnavailable(f"OpenCV could not run {model.onnx.name}: {str(err).strip()[:120]}") from err

    def run(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            self.net.setInput(next(iter(feed.values())))
            return dict(zip(self.names, self.net.forward(self.names), strict=True))
        except self._error as err:  # first frame: an op its importer accepted but cannot run
            raise BackendUnavailable(f"OpenCV could not run the model: {str(err).strip()[:120]}") from err

    def details(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        time.sleep(0.2)  # let its worker threads go idle before the next backend


class EngineBackend:
    """Our OpenCL engine on the model's NNEF network; `precision` "fp16" stores weights and scratch as half."""

    def __init__(self, model: BenchModel, options: BackendOptions, precision: str = "fp32") -> None:
        from ocl_infer.engine import Engine

        if model.nnef is None:
            raise BackendUnavailable(f"{model.label}: {model.nnef_error or 'no NNEF network'}")
        self.label = "ours (OpenCL)" if precision == "fp32" else f"ours {precision} (OpenCL)"
        self.engine = Engine(model.nnef, devices=options.devices, precision=precision, **dict(options.engine or {}))

    def run(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.engine.run(feed)

    def details(self) -> dict[str, Any]:
        return {"device": ", ".join(str(s.label) for s in self.engine.stats()), "tuning": tuning_note(self.engine),
                "memory_bytes": int(self.engine.memory_bytes())}

    def close(self) -> None:
        self.engine.close()


def tuning_note(engine: Any) -> str:
    """How many of the engine's tunable conv steps took their parameters from a device tuning table."""
    from ocl_infer.engine.tuning import tunable_steps

    steps = [s for plan in engine.plans for s, _, _ in tunable_steps(plan)]
    tuned = sum(1 for s in steps if s.attrs.get("tuned"))
    return (f"{tuned} of {len(steps)} conv steps from the device's tuning table (`ocl-infer tune`)" if tuned
            else f"none of {len(steps)} conv steps tuned (no tuning table: the kernels' rules)")


# CLI name -> factory; the order is the run order: onnxruntime first, so its outputs check ours.
BACKENDS: dict[str, Callable[[BenchModel, BackendOptions], Backend]] = {
    "onnxruntime": OnnxRuntimeBackend,
    "opencv": OpenCVBackend,
    "ours": EngineBackend,
    "ours-fp16": lambda model, options: EngineBackend(model, options, precision="fp16"),
}
LABELS = {"onnxruntime": "onnxruntime", "opencv": "opencv-dnn", "ours": "ours (OpenCL)",
          "ours-fp16": "ours fp16 (OpenCL)"}


def open_backend(name: str, model: BenchModel, options: BackendOptions) -> Backend:
    if name not in BACKENDS:
        raise ConfigError(f"unknown benchmark backend {name!r}; known: {', '.join(BACKENDS)}")
    return BACKENDS[name](model, options)
