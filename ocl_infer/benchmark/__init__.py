"""Benchmarks as a library: the models a run times (`models`), the backends behind one protocol (`backends`:
our engine, its fp16 storage, onnxruntime, OpenCV DNN), measurement and machine facts (`measure`), one run over
models and backends (`suite`, `first_frame`) and the markdown report (`report`).

`ocl-infer bench`, the scripts in bench/ and the docs writers share it. Never imports rclpy or the CLI.
"""

from ocl_infer.benchmark.backends import BACKENDS, Backend, BackendOptions, BackendUnavailable, open_backend
from ocl_infer.benchmark.measure import Timing, machine_info, machine_line, time_alternating, time_frames
from ocl_infer.benchmark.models import BenchModel, default_model, resolve_model
from ocl_infer.benchmark.report import render_report, write_section
from ocl_infer.benchmark.suite import ModelResult, RunOptions, bench_model

__all__ = [
    "BACKENDS",
    "Backend",
    "BackendOptions",
    "BackendUnavailable",
    "BenchModel",
    "ModelResult",
    "RunOptions",
    "Timing",
    "bench_model",
    "default_model",
    "machine_info",
    "machine_line",
    "open_backend",
    "render_report",
    "resolve_model",
    "time_alternating",
    "time_frames",
    "write_section",
]
