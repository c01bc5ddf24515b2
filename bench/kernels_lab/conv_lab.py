"""The x-vectorised conv (the formulation that lost, `conv_xvec.cl`) against the engine's own conv kernels on
the real YOLOv3-tiny layer shapes (PoCL), each checked against a float64 numpy convolution.

The engine side is the engine itself (`Engine` on a one-layer model; the planner picks covec or Winograd and
fuses a following 2x2 pool), so this lab never keeps a copy of an engine kernel that could drift.

    .venv/bin/python bench/kernels_lab/conv_lab.py --kernel engine [--layers 0,12] [--size 416]
    .venv/bin/python bench/kernels_lab/conv_lab.py --kernel xvec --cob 8 --ry 2
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyopencl as cl

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "test" / "engine"))  # onnx_models: model builders
from layers import ConvLayer, yolov3_tiny_convs

HERE = Path(__file__).resolve().parent
BUILD_OPTIONS = "-cl-fast-relaxed-math -cl-mad-enable"


def reference(x: np.ndarray, w: np.ndarray, b: np.ndarray, layer: ConvLayer) -> np.ndarray:
    """float64 conv (+leaky, +2x2 max-pool) of x [Cin,H,W] with w [Cout,Cin,k,k]; returns [Cout,H',W']."""
    k, pad = layer.ks, layer.ks // 2
    xp = np.pad(x.astype(np.float64), ((0, 0), (pad, pad), (pad, pad)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(1, 2))  # [Cin,H,W,k,k]
    y = np.einsum("chwij,ocij->ohw", win, w.astype(np.float64), optimize=True) + b[:, None, None]
    if layer.leaky:
        y = np.where(y > 0, y, 0.1 * y)
    if layer.pool_after == 2:
        c, h, ww = y.shape
        y = y.reshape(c, h // 2, 2, ww // 2, 2).max(axis=(2, 4))
    elif layer.pool_after == 1:
        yp = np.pad(y, ((0, 0), (0, 1), (0, 1)), constant_values=-np.inf)
        y = np.maximum.reduce([yp[:, :-1, :-1], yp[:, 1:, :-1], yp[:, :-1, 1:], yp[:, 1:, 1:]])
    return y


class EngineConv:
    """One layer (conv + leaky + its 2x2 pool) as a one-layer model through the engine; time = the sum of its
    launches' OpenCL event times (`Engine.profile`)."""

    def __init__(self, layer: ConvLayer, folder: Path) -> None:
        from onnx import helper
        from onnx_models import convert, make_model

        from ocl_infer.engine import Engine

        self.layer = layer
        self.fuses_pool = layer.pool_after == 2
        rng = np.random.default_rng(layer.index)
        self.x = rng.standard_normal((layer.cin, layer.h, layer.w)).astype(np.float32)
        self.w = (rng.standard_normal((layer.cout, layer.cin, layer.ks, layer.ks))
                  / np.sqrt(layer.cin * layer.ks * layer.ks)).astype(np.float32)
        self.b = rng.standard_normal(layer.cout).astype(np.float32) * 0.1
        pad = layer.ks // 2
        nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[layer.ks] * 2, pads=[pad] * 4)]
        last = "c"
        if layer.leaky:
            nodes.append(helper.make_node("LeakyRelu", [last], ["a"], alpha=0.1))
            last = "a"
        if self.fuses_pool:
            nodes.append(helper.make_node("MaxPool", [last], ["p"], kernel_shape=[2, 2], strides=[2, 2]))
            last = "p"
        nodes.append(helper.make_node("Identity", [last], ["y"]))
        model = make_model(nodes, {"x": (1, *self.x.shape)}, ["y"], {"w": self.w, "b": self.b})
        self.engine = Engine(convert(model, folder / f"l{layer.index}.nnef"))
        self.variants = "+".join(sorted({st.variant for st in self.engine.plan.steps} - {"alias"}))


class Xvec:
    """Vector over x (16 columns); COB channels x RY rows per work-item; fused 2x2/2 max-pool."""

    def __init__(self, ctx: cl.Context, layer: ConvLayer, cob: int, ry: int, local: tuple[int, ...] | None) -> None:
        assert layer.ks == 3 and layer.cout % cob == 0
        self.layer, self.cob, self.local = layer, cob, local
        self.fuses_pool = layer.pool_after == 2
        self.ry = max(ry, 2) if self.fuses_pool else ry
        opts = (f"{BUILD_OPTIONS} -DCIN={layer.cin} -DCOUT={layer.cout} -DH={layer.h} -DW={layer.w}"
                f" -DCOB={cob} -DRY={self.ry} -DLEAKY={int(layer.leaky)} -DPOOL={int(self.fuses_pool)}")
        self.prog = cl.Program(ctx, (HERE / "conv_xvec.cl").read_text()).build(opts)
        self.kernel = self.prog.conv_xvec

    def pack(self, w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        co, ci, k, _ = w.shape
        wl = w.reshape(co // self.cob, self.cob, ci, k, k).transpose(0, 2, 3, 4, 1)  # [Cout/COB][Cin][3][3][COB]
        return np.ascontiguousarray(wl), b.astype(np.float32)

    def global_size(self) -> tuple[int, int, int]:
        ly = self.layer
        return (-(-ly.w // 16), -(-ly.h // self.ry), ly.cout // self.cob)


def pool_ref_host(y: np.ndarray, layer: ConvLayer) -> np.ndarray:
    """The max-pool part of `reference` on the kernel's unpooled output (variants that do not fuse it)."""
    y = y.astype(np.float64)
    if layer.pool_after == 2:
        c, h, w = y.shape
        return y.reshape(c, h // 2, 2, w // 2, 2).max(axis=(2, 4))
    if layer.pool_after == 1:
        yp = np.pad(y, ((0, 0), (0, 1), (0, 1)), constant_values=-np.inf)
        return np.maximum.reduce([yp[:, :-1, :-1], yp[:, 1:, :-1], yp[:, :-1, 1:], yp[:, 1:, 1:]])
    return y


def measure_engine(conv: EngineConv, reps: int, check: bool) -> tuple[float, float]:
    """The engine's time for the layer (ms, sum of its launches, minimum or median of `reps`) and max error."""
    feed = {"x": conv.x[None]}
    times = [sum(ms for _, ms in conv.engine.profile(feed)) for _ in range(reps + 2)][2:]
    err = float("nan")
    if check:
        got = next(iter(conv.engine.run(feed).values()))[0]
        ref = reference(conv.x, conv.w, conv.b, conv.layer)
        got = got if conv.fuses_pool else pool_ref_host(got, conv.layer)
        err = float(np.abs(got - ref).max() / np.abs(ref).max())
    return float(np.min(times)) if os.environ.get("LAB_MIN") else float(np.median(times)), err


def measure(ctx: cl.Context, queue: cl.CommandQueue, variant: object, reps: int, check: bool) -> tuple[float, float]:
    """Median kernel time (ms, OpenCL event profiling) and max error relative to max |ref|."""
    ly = variant.layer
    rng = np.random.default_rng(ly.index)
    x = rng.standard_normal((ly.cin, ly.h, ly.w)).astype(np.float32)
    w = (rng.standard_normal((ly.cout, ly.cin, ly.ks, ly.ks)) / np.sqrt(ly.cin * ly.ks * ly.ks)).astype(np.float32)
    b = rng.standard_normal(ly.cout).astype(np.float32) * 0.1
    wl, bl = variant.pack(w, b)
    mf = cl.mem_flags
    xb = cl.Buffer(ctx, mf.READ_ONLY | mf.COPY_HOST_PTR, hostbuf=x)
    wb = cl.Buffer(ctx, mf.READ_ONLY | mf.COPY_HOST_PTR, hostbuf=wl)
    bb = cl.Buffer(ctx, mf.READ_ONLY | mf.COPY_HOST_PTR, hostbuf=bl)
    oh, ow = (ly.h // 2, ly.w // 2) if variant.fuses_pool else (ly.h, ly.w)
    out = np.empty((ly.cout, oh, ow), np.float32)
    ob = cl.Buffer(ctx, mf.WRITE_ONLY, out.nbytes)
    gs = variant.global_size()
    times = []
    for i in range(reps + 2):
        ev = variant.kernel(queue, gs, variant.local, xb, wb, bb, ob)
        ev.wait()
        if i >= 2:
            times.append((ev.profile.end - ev.profile.start) * 1e-6)
    err = float("nan")
    if check:
        cl.enqueue_copy(queue, out, ob).wait()
        ref = reference(x, w, b, ly)
        got = out if variant.fuses_pool else pool_ref_host(out, ly)
        err = float(np.abs(got - ref).max() / np.abs(ref).max())
    return float(np.min(times)) if os.environ.get("LAB_MIN") else float(np.median(times)), err


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kernel", choices=["engine", "xvec"], default="engine")
    ap.add_argument("--cob", type=int, default=8, help="xvec: output channels per work-item")
    ap.add_argument("--ry", type=int, default=1, help="xvec: rows per work-item")
    ap.add_argument("--local", default="", help="local size, e.g. 1,1,1 (default: PoCL picks)")
    ap.add_argument("--layers", default="", help="darknet layer indices, comma separated (default: all)")
    ap.add_argument("--size", type=int, default=416)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--no-check", action="store_true")
    args = ap.parse_args()
    platform = next(p for p in cl.get_platforms() if "Portable" in p.name)
    ctx = cl.Context([platform.get_devices()[0]])
    queue = cl.CommandQueue(ctx, properties=cl.command_queue_properties.PROFILING_ENABLE)
    local = tuple(int(v) for v in args.local.split(",")) if args.local else None
    wanted = {int(v) for v in args.layers.split(",")} if args.layers else None
    folder = Path(tempfile.mkdtemp(prefix="conv_lab-"))
    total_ms = total_flops = 0.0
    print(f"# {args.kernel} cob={args.cob} ry={args.ry} local={local} "
          f"load={os.getloadavg()[0]:.2f}")
    for ly in yolov3_tiny_convs(args.size):
        if wanted is not None and ly.index not in wanted:
            continue
        try:
            t0 = time.perf_counter()
            label = ly.name
            if args.kernel == "engine":
                conv = EngineConv(ly, folder)
                label = f"{ly.name} [{conv.variants}]"
                build_s = time.perf_counter() - t0
                ms, err = measure_engine(conv, args.reps, not args.no_check)
                conv.engine.close()
            else:
                if ly.ks != 3 or ly.cout % args.cob:
                    continue
                var = Xvec(ctx, ly, args.cob, args.ry, local)
                build_s = time.perf_counter() - t0
                ms, err = measure(ctx, queue, var, args.reps, not args.no_check)
        except cl.Error as e:
            print(f"{ly.name:34s} FAILED {e}")
            continue
        total_ms += ms
        total_flops += ly.flops
        flag = "" if not err > 1e-4 else "  WRONG"
        print(f"{label:48s} {ms:8.3f} ms {ly.flops / ms / 1e6:7.1f} GFLOP/s  err {err:.1e}"
              f"  build {build_s:.2f}s{flag}")
    if total_ms:
        print(f"{'total':48s} {total_ms:8.3f} ms {total_flops / total_ms / 1e6:7.1f} GFLOP/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
