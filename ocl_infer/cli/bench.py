"""`ocl-infer bench`: our OpenCL engine against onnxruntime and OpenCV DNN, in one run.

A thin command over `ocl_infer.benchmark`: the bundled YOLOv3-tiny at each `--sizes`, or any `--model` (an ONNX
file, a prepared model folder, a folder with model.nnef [+ model.onnx], an NNEF model), the backends timed in
this process in alternating blocks of frames: latency median / p99 after warm-up, achieved GFLOP/s against the
machine's measured numpy sgemm ceiling, pre-processing cost, first-frame time with cold and warm program caches
(fresh processes), peak device memory, agreement with onnxruntime. The load average is recorded next to the
numbers, since a shared machine makes them noisy. `--write FILE` replaces the results section of FILE
(docs/performance.md).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from ocl_infer.benchmark.backends import BACKENDS, BackendOptions
from ocl_infer.benchmark.measure import device_line, load_average, machine_line, sgemm_ceiling_gflops
from ocl_infer.benchmark.models import DEFAULT, BenchModel, default_model, resolve_model
from ocl_infer.benchmark.report import render_report, write_section
from ocl_infer.benchmark.suite import RunOptions, bench_model
from ocl_infer.errors import ConfigError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("bench", help="benchmark the engine against onnxruntime and OpenCV DNN (YOLOv3-tiny or "
                                     "--model)")
    p.add_argument("--model", action="append", default=None, metavar="PATH",
                   help=f"model to time, repeatable: an ONNX file, a prepared model folder, a folder with "
                        f"model.nnef [+ model.onnx], an NNEF model, or {DEFAULT!r} (the bundled one at each "
                        f"--sizes; the default)")
    p.add_argument("--sizes", default="416,320",
                   help=f"input sizes of {DEFAULT}, comma separated (default 416,320)")
    p.add_argument("--frames", type=int, default=50, help="timed frames per backend and model (default 50)")
    p.add_argument("--warmup", type=int, default=5, help="untimed frames first (default 5)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for every backend (default: all cores)")
    p.add_argument("--devices", default=None, help="engine device selector (default: the first device)")
    p.add_argument("--backends", default="ours,ours-fp16,onnxruntime,opencv",
                   help="which backends to time, comma separated (default ours,ours-fp16,onnxruntime,opencv; "
                        "ours-fp16: the engine with precision='fp16')")
    p.add_argument("--quick", action="store_true",
                   help=f"smoke run: {DEFAULT} at 416 only, 5 frames, 1 warm-up, no first-frame subprocesses")
    p.add_argument("--no-first-frame", action="store_true", help="skip the cold/warm first-frame subprocesses")
    p.add_argument("--profile", action="store_true", help="per-layer table from OpenCL event timing (ours)")
    p.add_argument("--write", type=Path, default=None, metavar="FILE",
                   help="write the results section of FILE (e.g. docs/performance.md)")
    p.add_argument("--json", type=Path, default=None, metavar="FILE", help="also write raw results as JSON")
    p.set_defaults(func=run)


def _check(args: argparse.Namespace) -> tuple[list[int], list[str]]:
    """Sizes and backends from the flags; ConfigError naming the flag otherwise."""
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError as err:
        raise ConfigError(f"--sizes: expected comma separated integers, got {args.sizes!r}") from err
    if not sizes or any(s <= 0 or s % 32 for s in sizes):
        raise ConfigError(f"--sizes: each size must be a positive multiple of 32, got {args.sizes!r}")
    if args.frames < 1 or args.warmup < 0:
        raise ConfigError("--frames must be >= 1 and --warmup >= 0")
    known = list(BACKENDS)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if not backends or any(b not in known for b in backends):
        raise ConfigError(f"--backends: choose from {', '.join(known)}, got {args.backends!r}")
    backends.sort(key=known.index)  # onnxruntime first: its outputs check ours
    return sizes, backends


def _models(paths: list[str], sizes: list[int], work: Path) -> list[BenchModel]:
    models: list[BenchModel] = []
    for path in paths:
        if path == DEFAULT:
            models += [default_model(size) for size in sizes]
        else:
            models.append(resolve_model(Path(path), work))
    return models


def run(args: argparse.Namespace) -> int:
    threads = args.threads or os.cpu_count() or 1
    # PoCL reads this when it starts: give the engine the same thread count as the others.
    os.environ.setdefault("POCL_MAX_PTHREAD_COUNT", str(threads))
    if args.quick:
        args.sizes, args.frames, args.warmup, args.no_first_frame = "416", min(args.frames, 5), 1, True
    sizes, backends = _check(args)
    options = RunOptions(args.frames, args.warmup, BackendOptions(threads, args.devices), args.profile,
                         not args.no_first_frame)

    load_start = load_average()
    ceiling = sgemm_ceiling_gflops()
    print(f"bench: sgemm ceiling {ceiling:.0f} GFLOP/s, load {load_start:.2f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="ocl-infer-bench-models-") as work:
        results = [bench_model(m, backends, options) for m in _models(args.model or [DEFAULT], sizes, Path(work))]
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
        "blocks": f"blocks of {min(options.block, args.frames)} frames, {options.pause_s:g} s pause before each",
        "load_start": f"{load_start:.2f}",
        "load_end": f"{load_average():.2f}",
        "profile": "yes" if args.profile else "no",
    }
    report = render_report(results, ceiling, meta)
    print()
    print(report, end="")
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "ceiling_gflops": ceiling,
                                         "results": [asdict(r) for r in results]}, indent=1, default=str))
    failed = [(r, t) for r in results for t in r.failed_ours]
    for r, t in failed:
        print(f"ocl-infer bench: error: {r.model} {r.size}: {t.backend}: {t.error or t.extra.get('wrong')}",
              file=sys.stderr)
    if failed:  # a broken engine must not pass for a result, nor replace the docs' numbers
        return 1
    if args.write:
        write_section(args.write, report)
        print(f"bench: results written to {args.write}")
    return 0
