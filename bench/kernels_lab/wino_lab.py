"""Winograd F(2x2,3x3) on the YOLOv3-tiny 3x3 layers vs the direct covec kernel; checked against float64.

    .venv/bin/python bench/kernels_lab/wino_lab.py [--layers 8,10,12,14,21] [--nt 7 --nv 2] [--size 416]
"""

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import pyopencl as cl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conv_lab import BUILD_OPTIONS, Covec, measure, pool_ref_host, reference
from layers import ConvLayer, yolov3_tiny_convs

HERE = Path(__file__).resolve().parent
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], np.float64)


def winograd_weights(w: np.ndarray, cov: int) -> np.ndarray:
    """U = G g G^T per (co, ci), laid out [16][NCB][CIN][CO_V] (COUT zero-padded to NCB*CO_V)."""
    co, ci = w.shape[:2]
    ncb = -(-co // cov)
    u = np.einsum("ik,ockl,jl->ijoc", G, w.astype(np.float64), G).reshape(16, co, ci)
    up = np.zeros((16, ncb * cov, ci), np.float64)
    up[:, :co] = u
    return np.ascontiguousarray(up.reshape(16, ncb, cov, ci).transpose(0, 1, 3, 2).astype(np.float32))


class Wino:
    def __init__(self, ctx: cl.Context, layer: ConvLayer, nt: int, nv: int) -> None:
        assert layer.ks == 3
        self.layer, self.nt, self.nv = layer, nt, min(nv, -(-layer.cout // 16))
        self.cov = 16 * self.nv
        self.ncb = -(-layer.cout // self.cov)
        self.t = ((layer.w + 1) // 2) * ((layer.h + 1) // 2)
        self.tp = -(-self.t // nt) * nt
        opts = (f"{BUILD_OPTIONS} -DCIN={layer.cin} -DCOUT={layer.cout} -DH={layer.h} -DW={layer.w} -DNT={nt}"
                f" -DNV={self.nv} -DNCB={self.ncb} -DTP={self.tp} -DLEAKY={int(layer.leaky)} -DALPHA=0.1f")
        self.prog = cl.Program(ctx, (HERE / "wino.cl").read_text()).build(opts)
        self.kin, self.kgemm, self.kout = self.prog.wino_input, self.prog.wino_gemm, self.prog.wino_output
        self.fuses_pool = False

    def run(self, queue: cl.CommandQueue, ctx: cl.Context, x: np.ndarray, w: np.ndarray, b: np.ndarray,
            reps: int) -> tuple[np.ndarray, list[float], list[float]]:
        ly, mf = self.layer, cl.mem_flags
        xb = cl.Buffer(ctx, mf.READ_ONLY | mf.COPY_HOST_PTR, hostbuf=x)
        ub = cl.Buffer(ctx, mf.READ_ONLY | mf.COPY_HOST_PTR, hostbuf=winograd_weights(w, self.cov))
        bb = cl.Buffer(ctx, mf.READ_ONLY | mf.COPY_HOST_PTR, hostbuf=b)
        vb = cl.Buffer(ctx, mf.READ_WRITE, 16 * ly.cin * self.tp * 4)
        mb = cl.Buffer(ctx, mf.READ_WRITE, 16 * self.tp * self.ncb * self.cov * 4)
        out = np.empty((ly.cout, ly.h, ly.w), np.float32)
        ob = cl.Buffer(ctx, mf.WRITE_ONLY, out.nbytes)
        totals, parts = [], []
        for _ in range(reps + 2):
            e1 = self.kin(queue, (self.tp, ly.cin), None, xb, vb)
            e2 = self.kgemm(queue, (self.tp // self.nt, self.ncb, 16), (1, 1, 1), vb, ub, mb)
            e3 = self.kout(queue, (ly.cout, self.t), None, mb, bb, ob)
            e3.wait()
            ts = [(e.profile.end - e.profile.start) * 1e-6 for e in (e1, e2, e3)]
            totals.append(sum(ts))
            parts.append(ts)
        cl.enqueue_copy(queue, out, ob).wait()
        best = int(np.argmin(totals[2:])) + 2
        return out, totals[2:], parts[best]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", default="6,8,10,12,14,21")
    ap.add_argument("--size", type=int, default=416)
    ap.add_argument("--nt", type=int, default=7)
    ap.add_argument("--nv", type=int, default=2)
    ap.add_argument("--reps", type=int, default=6)
    ap.add_argument("--sweep", action="store_true", help="interleaved rounds over (NT, NV) candidates, min time")
    args = ap.parse_args()
    platform = next(p for p in cl.get_platforms() if "Portable" in p.name)
    ctx = cl.Context([platform.get_devices()[0]])
    queue = cl.CommandQueue(ctx, properties=cl.command_queue_properties.PROFILING_ENABLE)
    os.environ["LAB_MIN"] = "1"
    wanted = {int(v) for v in args.layers.split(",")}
    if args.sweep:
        return sweep(ctx, queue, wanted, args)
    print(f"# winograd F(2x2,3x3) nt={args.nt} nv={args.nv}, load {os.getloadavg()[0]:.2f}")
    for ly in yolov3_tiny_convs(args.size):
        if ly.index not in wanted or ly.ks != 3:
            continue
        rng = np.random.default_rng(ly.index)
        x = rng.standard_normal((ly.cin, ly.h, ly.w)).astype(np.float32)
        w = (rng.standard_normal((ly.cout, ly.cin, 3, 3)) / np.sqrt(ly.cin * 9)).astype(np.float32)
        b = rng.standard_normal(ly.cout).astype(np.float32) * 0.1
        var = Wino(ctx, ly, args.nt, args.nv)
        out, totals, parts = var.run(queue, ctx, x, w, b, args.reps)
        ref = reference(x, w, b, ly)
        err = float(np.abs(pool_ref_host(out, ly) - ref).max() / np.abs(ref).max())
        direct = Covec(ctx, ly, 7, 2, 1, (1, 1, 1), fuse_pool=False)
        d_ms, _ = measure(ctx, queue, direct, args.reps, check=False)
        wm = min(totals)
        print(f"{ly.name:34s} wino {wm:7.3f} ms (in {parts[0]:.3f} gemm {parts[1]:.3f} out {parts[2]:.3f}) "
              f"= {ly.flops / wm / 1e6:5.0f} eff. GFLOP/s, err {err:.1e} | direct covec {d_ms:7.3f} ms "
              f"| speed-up {d_ms / wm:.2f}")
    return 0


SWEEP = ((7, 2), (7, 3), (4, 4), (13, 2), (4, 3), (8, 2))


def sweep(ctx: cl.Context, queue: cl.CommandQueue, wanted: set[int], args: argparse.Namespace) -> int:
    print(f"# winograd GEMM blocking sweep, 3 interleaved rounds, min ms; load {os.getloadavg()[0]:.2f}")
    for ly in yolov3_tiny_convs(args.size):
        if ly.index not in wanted or ly.ks != 3:
            continue
        rng = np.random.default_rng(ly.index)
        x = rng.standard_normal((ly.cin, ly.h, ly.w)).astype(np.float32)
        w = (rng.standard_normal((ly.cout, ly.cin, 3, 3)) / np.sqrt(ly.cin * 9)).astype(np.float32)
        b = rng.standard_normal(ly.cout).astype(np.float32) * 0.1
        variants = {c: Wino(ctx, ly, *c) for c in SWEEP}
        best = dict.fromkeys(variants, float("inf"))
        for _ in range(3):
            for c, var in variants.items():
                best[c] = min(best[c], min(var.run(queue, ctx, x, w, b, args.reps)[1]))
        cells = "  ".join(f"nt{c[0]}/nv{c[1]} {t:6.3f}" for c, t in best.items())
        print(f"{ly.name:30s} {cells}  load {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
