"""PyTorch on the same GPU running the same network (model.onnx through torch_onnx.py): the peer for our engine.

First the check that it is the same network: fp32 and fp16 outputs against onnxruntime on a real letterboxed
frame. Then batch-1 latency, p50/p99 with a CUDA synchronize per frame, two ways: end to end (host numpy in,
host numpy out, as `engine.run`) and device-resident (input already on the GPU, outputs left there); for fp32,
fp32 without TF32 (PyTorch lets cuDNN use TF32 for fp32 convs by default, which is not float32 arithmetic),
and fp16 (`.half()`), each with `cudnn.benchmark` off and on; a CUDA-graph replay of fp32 and fp16; then
throughput at batch 8 and 32. Skipped (recorded) where torch or CUDA is missing, e.g. in the PoCL dry run.

    python3 bench/gpu/bench_torch.py
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from common import DRY, Fragment, count, load_images, log, model_dir, preprocessed, stats_ms

FRAMES = count(300, 5)
WARMUP = count(30, 1)


@contextlib.contextmanager
def tf32(allowed: bool) -> Iterator[None]:
    """cuDNN/cuBLAS TF32 for fp32 convolutions on or off (old-style flags; still honoured in torch 2.x)."""
    import torch

    old = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = allowed
    torch.backends.cuda.matmul.allow_tf32 = allowed
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old


def sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(fn: Callable[[], Any], device: Any, n: int = FRAMES, warmup: int = WARMUP) -> dict[str, Any]:
    """Per-call latency with a synchronize after every call, so each sample is one whole frame."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    cpu0 = time.process_time()
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return {**stats_ms(times), "cpu_us_per_frame": (time.process_time() - cpu0) / n * 1e6}


def max_abs(outs: Any, ref: dict[str, Any], names: list[str]) -> float:
    import numpy as np

    return max(float(np.max(np.abs(o.float().cpu().numpy() - ref[n]))) for o, n in zip(outs, names, strict=True))


def latency_rows(model: Any, x_host: Any, device: Any, dtype: Any) -> dict[str, Any]:
    """End-to-end and device-resident latency of one model/dtype under the current cudnn/TF32 settings."""
    import torch

    x_dev = torch.from_numpy(x_host).to(device=device, dtype=dtype)

    def e2e() -> Any:
        x = torch.from_numpy(x_host).to(device=device, dtype=dtype)
        return [o.float().cpu().numpy() for o in model(x)]

    def resident() -> Any:
        return model(x_dev)

    with torch.no_grad():
        return {"e2e": measure(e2e, device), "resident": measure(resident, device)}


def cuda_graph(model: Any, x_host: Any, device: Any, dtype: Any) -> dict[str, Any]:
    """The whole forward captured once as a CUDA graph and replayed per frame (launch overhead gone)."""
    import torch

    static_in = torch.from_numpy(x_host).to(device=device, dtype=dtype)
    with torch.no_grad():
        stream = torch.cuda.Stream(device)
        stream.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(stream):
            for _ in range(3):
                model(static_in)
        torch.cuda.current_stream(device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = model(static_in)
    pinned = torch.from_numpy(x_host).to(dtype=dtype).pin_memory()

    def e2e() -> Any:
        static_in.copy_(pinned, non_blocking=True)
        graph.replay()
        return [o.float().cpu().numpy() for o in static_out]

    def resident() -> Any:
        graph.replay()

    return {"e2e": measure(e2e, device), "resident": measure(resident, device)}


def batch_throughput(model: Any, x_host: Any, device: Any, dtype: Any, batch: int) -> dict[str, Any]:
    """frames/s of back-to-back forwards at `batch` (input resident, one synchronize at the end), ~2 s."""
    import numpy as np
    import torch

    x = torch.from_numpy(np.repeat(x_host, batch, axis=0)).to(device=device, dtype=dtype)
    with torch.no_grad():
        for _ in range(5):
            model(x)
        sync(device)
        calls, t0 = 0, time.perf_counter()
        while calls < count(10, 2) or (time.perf_counter() - t0 < count(2.0, 0.5) and calls < 2000):
            model(x)
            calls += 1
            if calls % 10 == 0:
                sync(device)
        sync(device)
        wall = time.perf_counter() - t0
    return {"batch": batch, "calls": calls, "wall_s": wall, "frames_per_s": calls * batch / wall,
            "ms_per_batch": wall / calls * 1e3}


def main() -> int:
    frag = Fragment("bench_torch")
    try:
        import torch
    except ImportError as err:
        frag.put("skipped", f"torch not importable here: {err}")
        log("bench_torch: torch missing, skipped")
        return 0
    import onnxruntime as ort
    import torch_onnx

    cuda = torch.cuda.is_available()
    frag.put("torch", {"version": torch.__version__, "cuda": torch.version.cuda, "cuda_available": cuda,
                       "cudnn": torch.backends.cudnn.version() if cuda else None,
                       "gpu": torch.cuda.get_device_name(0) if cuda else None,
                       "tf32_default": {"cudnn": torch.backends.cudnn.allow_tf32,
                                        "matmul": torch.backends.cuda.matmul.allow_tf32}})
    if not cuda and not DRY:
        frag.fail("cuda", "torch.cuda.is_available() is False")
        return 1
    device = torch.device("cuda:0" if cuda else "cpu")
    onnx_path = model_dir(1) / "model.onnx"
    name, feed = preprocessed(model_dir(1), load_images()[:1])[0]
    x_host = next(iter(feed.values()))
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    ref = dict(zip(names, sess.run(names, feed), strict=True))
    frag.put("input", f"{name} letterboxed, {list(x_host.shape)}")

    model32 = torch_onnx.load(str(onnx_path)).to(device)
    model16 = torch_onnx.load(str(onnx_path)).to(device).half()
    models = {"fp32": (model32, torch.float32), "fp16": (model16, torch.float16)}

    def same_network() -> dict[str, Any]:
        with torch.no_grad(), tf32(False):
            x = torch.from_numpy(x_host).to(device)
            out = {"fp32_max_abs_vs_onnxruntime": max_abs(model32(x), ref, names),
                   "fp16_max_abs_vs_onnxruntime": max_abs(model16(x.half()), ref, names),
                   "ref_max_abs": max(float(abs(v).max()) for v in ref.values())}
        with torch.no_grad(), tf32(True):
            out["fp32_tf32_max_abs_vs_onnxruntime"] = max_abs(model32(x), ref, names)
        log(f"torch vs onnxruntime: fp32 {out['fp32_max_abs_vs_onnxruntime']:.3g}, fp16 "
            f"{out['fp16_max_abs_vs_onnxruntime']:.3g} (max |ref| {out['ref_max_abs']:.3g})")
        return out

    if frag.attempt("same_network", same_network) is None:
        return 1
    configs = [("fp32 (TF32 allowed, torch default)", "fp32", True), ("fp32 strict (no TF32)", "fp32", False),
               ("fp16", "fp16", True)]

    def each_config(what: str, key: str, run: Callable[[Any, Any], dict[str, Any]],
                    describe: Callable[[str, dict[str, Any]], str] | None = None) -> None:
        """`run(model, dtype)` in every precision config under its TF32 setting, attempted as `what` (with the
        config's label in its {}); each result joins the fragment's `key` list as it arrives, so a later failure
        keeps it, and `describe(label, result)` is logged."""
        rows: list[dict[str, Any]] = frag.data.get(key, [])
        for label, name, allow in configs:
            model, dtype = models[name]

            def one(model: Any = model, dtype: Any = dtype, allow: bool = allow) -> dict[str, Any]:
                with tf32(allow):
                    return run(model, dtype)

            res = frag.attempt(what.format(label), one, store=False)
            if res is not None:
                rows.append({"config": label, "cudnn_benchmark": torch.backends.cudnn.benchmark, **res})
                frag.put(key, rows)
                if describe is not None:
                    log(describe(label, res))

    for bench_mode in (False, True):
        torch.backends.cudnn.benchmark = bench_mode
        each_config(f"latency {{}}, cudnn.benchmark={bench_mode}", "latency",
                    lambda model, dtype: latency_rows(model, x_host, device, dtype),
                    lambda label, res, m=bench_mode: f"torch {label}, cudnn.benchmark={m}: e2e p50 "
                    f"{res['e2e']['p50_ms']:.3f} ms, resident p50 {res['resident']['p50_ms']:.3f} ms")
    torch.backends.cudnn.benchmark = True
    if cuda:
        each_config("cuda graph {}", "cuda_graph", lambda model, dtype: cuda_graph(model, x_host, device, dtype))
    else:
        frag.put("cuda_graph", {"skipped": "no CUDA"})
    for batch in (8, 32) if not DRY else (8,):
        each_config(f"throughput {{}} batch {batch}", "throughput",
                    lambda model, dtype, b=batch: batch_throughput(model, x_host, device, dtype, b),
                    lambda label, res, b=batch: f"torch {label} batch {b}: {res['frames_per_s']:.0f} frames/s")
    return 0 if not frag.data["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
