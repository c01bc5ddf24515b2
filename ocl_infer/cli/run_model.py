"""`ocl-infer run`: run an NNEF model on .npy inputs and print output statistics or save them as .npy."""

import argparse
from pathlib import Path


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("run", help="run an NNEF model on .npy inputs")
    p.add_argument("model", type=Path, metavar="MODEL.nnef", help="NNEF folder or .tgz archive")
    p.add_argument("--input", action="append", default=[], metavar="NAME=FILE.npy",
                   help="an input tensor (repeatable); random [0,1) data for inputs not given")
    p.add_argument("--output-dir", type=Path, default=None, metavar="DIR", help="save every output as DIR/NAME.npy")
    p.add_argument("--devices", nargs="+", default=None,
                   help="OpenCL devices: 'all', indices, 'cl:1', 'P:D', name parts, gpu/cpu (default: first)")
    p.add_argument("--repeat", type=int, default=1, help="run this many times and report the latency")
    p.add_argument("--precision", choices=("fp32", "fp16"), default="fp32",
                   help="fp16: conv weights and Winograd scratch stored as half, math in float (default fp32)")
    p.add_argument("--batch", type=int, default=None, metavar="N",
                   help="run N frames at once: every input's first dimension becomes N (default: the model's)")
    p.add_argument("--kernels", choices=("auto", "cpu", "gpu"), default="auto",
                   help="kernel family: auto (by device type), or force the CPU or the GPU family")
    p.set_defaults(func=run)


def load_inputs(items: list[str]) -> dict[str, "object"]:
    import numpy as np

    from ocl_infer.errors import ConfigError

    feeds = {}
    for item in items:
        name, sep, file = item.partition("=")
        if not sep or not name or not file:
            raise ConfigError(f"--input {item!r}: expected NAME=FILE.npy")
        try:
            feeds[name] = np.load(file, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise ConfigError(f"--input {name}: cannot read {file}: {err}") from err
    return feeds


def run(args: argparse.Namespace) -> int:
    import time

    import numpy as np

    from ocl_infer.engine import Engine
    from ocl_infer.errors import ConfigError

    if args.repeat < 1:
        raise ConfigError(f"--repeat must be >= 1, got {args.repeat}")
    feeds = load_inputs(args.input)
    with Engine(args.model, devices=args.devices, precision=args.precision, kernels=args.kernels,
                batch=args.batch) as engine:
        rng = np.random.default_rng(0)
        for name, spec in engine.inputs.items():
            if name not in feeds:
                print(f"input {name}: random {list(spec.shape)}")
                feeds[name] = rng.random(spec.shape, dtype=np.float32)
        times = []
        futures = [engine.submit(feeds) for _ in range(args.repeat)]
        t0 = time.perf_counter()
        for fut in futures:
            outs = fut.result()
            times.append(time.perf_counter() - t0)
        if args.output_dir is not None:
            args.output_dir.mkdir(parents=True, exist_ok=True)
        for name, arr in outs.items():
            print(f"{name}: shape {list(arr.shape)} min {arr.min():.6g} max {arr.max():.6g} "
                  f"mean {arr.mean():.6g} std {arr.std():.6g}")
            if args.output_dir is not None:
                np.save(args.output_dir / f"{name}.npy", arr)
        for s in engine.stats():
            print(f"{s.label}: {s.frames} frames, p50 {s.latency_p50_ms:.1f} ms, p95 {s.latency_p95_ms:.1f} ms, "
                  f"errors {s.errors}")
        print(f"planned device memory {engine.memory_bytes() / 2**20:.1f} MiB; "
              f"{args.repeat} run(s) in {times[-1] * 1e3:.1f} ms")
    return 0
