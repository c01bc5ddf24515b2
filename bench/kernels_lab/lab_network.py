"""The whole YOLOv3-tiny network on the lab kernels (real weights, real frame), checked against onnxruntime.

A stand-in for the engine, to show what the winning kernels give end to end: conv (+bias+leaky, +2x2/2
max-pool fused where the conv's only consumer is that pool) with covec, the stride-1 pool, upsample and
concat (both written in place: the upsample and conv5 write straight into the concat buffer's halves).
Times whole frames (enqueue every launch, one wait) and reports GFLOP/s against numpy's sgemm.

    .venv/bin/python bench/kernels_lab/lab_network.py [--size 416] [--frames 30] [--no-fuse-pool]
"""

import argparse
import os
import sys
import time
from pathlib import Path

import nnef
import numpy as np
import pyopencl as cl

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
BUILD_OPTIONS = "-cl-fast-relaxed-math -cl-mad-enable"


def covec_config(cin: int, cout: int, h: int, w: int, ks: int, fused_pool: bool) -> tuple[int, int, int]:
    """(NP, NV, RY) from the tuning runs (bench/kernels_lab/README.md)."""
    if fused_pool:
        return {16: (8, 1, 2), 32: (4, 2, 2)}.get(cout, (2, 4, 2))
    if ks == 1:
        return (13, 2, 1) if w == 13 else (2, 4, 2)
    return (7, 2, 1)


class Net:
    def __init__(self, ctx: cl.Context, queue: cl.CommandQueue, nnef_dir: Path, fuse_pool: bool,
                 winograd_min_cin: int = 0) -> None:
        self.ctx, self.queue = ctx, queue
        self.winograd_min_cin = winograd_min_cin
        g = nnef.load_graph(str(nnef_dir))
        nnef.infer_shapes(g)
        self.graph = g
        self.source = (HERE / "conv_covec.cl").read_text()
        self.pool_prog = cl.Program(ctx, (HERE / "pool_upsample.cl").read_text()).build(BUILD_OPTIONS)
        mf = cl.mem_flags
        ops = list(g.operations)
        users: dict[str, list[nnef.Operation]] = {}
        for op in ops:
            for v in op.inputs.values():
                for name in v if isinstance(v, list) else [v]:
                    if isinstance(name, str):
                        users.setdefault(name, []).append(op)
        self.buf: dict[str, cl.Buffer] = {}
        self.shape = {n: tuple(t.shape) for n, t in g.tensors.items()}
        self.launches: list[tuple[str, object]] = []
        alias: dict[str, str] = {}  # tensor -> tensor whose buffer holds it (fused away)
        concat_parts: dict[str, tuple[str, int]] = {}  # tensor -> (concat tensor, byte offset)
        for op in ops:
            if op.name == "concat":
                off = 0
                for part in op.inputs["values"]:
                    concat_parts[part] = (op.outputs["value"], off)
                    off += int(np.prod(self.shape[part])) * 4
        self.skip: set[int] = set()

        def buffer(name: str) -> cl.Buffer:
            name = alias.get(name, name)
            if name in self.buf:
                return self.buf[name]
            if name in concat_parts:
                whole, off = concat_parts[name]
                parent = buffer(whole)
                self.buf[name] = parent.get_sub_region(off, int(np.prod(self.shape[name])) * 4)
            else:
                self.buf[name] = cl.Buffer(ctx, mf.READ_WRITE, int(np.prod(self.shape[name])) * 4)
            return self.buf[name]

        self.buffer = buffer
        self.flops = 0
        for i, op in enumerate(ops):
            if i in self.skip or op.name in ("external", "variable"):
                continue
            if op.name == "conv":
                self._conv(op, ops, users, alias, fuse_pool)
            elif op.name == "leaky_relu":
                raise AssertionError(f"unfused {op.name}")
            elif op.name == "max_pool":
                self._pool(op)
            elif op.name == "nearest_upsample":
                src, dst = op.inputs["input"], op.outputs["output"]
                _, c, h, w = self.shape[src]
                k = self.pool_prog.upsample2
                self.launches.append((f"upsample {src}", (k, (w, h, c), buffer(src), buffer(dst), np.int32(h),
                                                          np.int32(w))))
            elif op.name == "concat":
                pass  # parts were written in place
            else:
                raise AssertionError(f"op {op.name} not in the lab network")
        for name in g.outputs:
            buffer(name)

    def _conv(self, op: nnef.Operation, ops: list, users: dict, alias: dict, fuse_pool: bool) -> None:
        g = self.graph
        x, wname, bname = op.inputs["input"], op.inputs["filter"], op.inputs["bias"]
        w = g.tensors[wname].data.astype(np.float32)
        b = g.tensors[bname].data.astype(np.float32).reshape(-1)
        cout, cin, ks, _ = w.shape
        _, _, h, wd = self.shape[x]
        assert op.attribs["stride"] == [1, 1] and op.attribs["groups"] in (0, 1)
        out = op.outputs["output"]
        leaky, alpha = False, 0.0
        nxt = users.get(out, [])
        if len(nxt) == 1 and nxt[0].name == "leaky_relu":
            leaky, alpha = True, float(nxt[0].attribs["alpha"])
            self.skip.add(next(i for i, o in enumerate(ops) if o is nxt[0]))
            alias[out] = nxt[0].outputs["y"]
            out = nxt[0].outputs["y"]
        nxt = users.get(out, [])
        fused = (fuse_pool and len(nxt) == 1 and nxt[0].name == "max_pool"
                 and nxt[0].attribs["stride"] == [1, 1, 2, 2] and h % 2 == 0 and wd % 2 == 0)
        if (self.winograd_min_cin and ks == 3 and cin >= self.winograd_min_cin and not fused
                and op.attribs["padding"] == [(1, 1), (1, 1)]):
            self._winograd(x, w, b, out, leaky, alpha)
            return
        np_, nv, ry = covec_config(cin, cout, h, wd, ks, fused)
        if fused:
            self.skip.add(next(i for i, o in enumerate(ops) if o is nxt[0]))
            out = nxt[0].outputs["output"]
        nv = min(nv, -(-cout // 16))
        cov = 16 * nv
        cpad = -(-cout // cov) * cov
        wp = np.zeros((cpad, cin, ks, ks), np.float32)
        wp[:cout] = w
        wl = np.ascontiguousarray(wp.reshape(cpad // cov, cov, cin, ks, ks).transpose(0, 3, 4, 2, 1))
        bp = np.zeros(cpad, np.float32)
        bp[:cout] = b
        opts = (f"{BUILD_OPTIONS} -DCIN={cin} -DCOUT={cout} -DH={h} -DW={wd} -DKS={ks} -DPAD={ks // 2}"
                f" -DNP={np_} -DNV={nv} -DRY={ry} -DLEAKY={int(leaky)} -DALPHA={alpha}f -DPOOL={2 if fused else 0}")
        k = cl.Program(self.ctx, self.source).build(opts).conv_covec
        mf = cl.mem_flags
        wb = cl.Buffer(self.ctx, mf.READ_ONLY | mf.COPY_HOST_PTR, hostbuf=wl)
        bb = cl.Buffer(self.ctx, mf.READ_ONLY | mf.COPY_HOST_PTR, hostbuf=bp)
        gs = (-(-wd // np_), -(-h // ry), cpad // cov)
        self.flops += 2 * cout * cin * ks * ks * h * wd
        label = f"conv {cin}->{cout} {ks}x{ks} @{h}{' +pool' if fused else ''} np{np_}/nv{nv}/ry{ry}"
        self.launches.append((label, (k, gs, self.buffer(x), wb, bb, self.buffer(out)), (1, 1, 1)))

    def _winograd(self, x: str, w: np.ndarray, b: np.ndarray, out: str, leaky: bool, alpha: float) -> None:
        from wino_lab import winograd_weights

        cout, cin = w.shape[:2]
        _, _, h, wd = self.shape[x]
        t = ((wd + 1) // 2) * ((h + 1) // 2)
        nt, nv = (7, 3) if t % 7 == 0 else (4, 4)
        cov = 16 * nv
        ncb = -(-cout // cov)
        tp = -(-t // nt) * nt
        opts = (f"{BUILD_OPTIONS} -DCIN={cin} -DCOUT={cout} -DH={h} -DW={wd} -DNT={nt} -DNV={nv} -DNCB={ncb}"
                f" -DTP={tp} -DLEAKY={int(leaky)} -DALPHA={alpha}f")
        prog = cl.Program(self.ctx, (HERE / "wino.cl").read_text()).build(opts)
        mf = cl.mem_flags
        ub = cl.Buffer(self.ctx, mf.READ_ONLY | mf.COPY_HOST_PTR, hostbuf=winograd_weights(w, cov))
        bb = cl.Buffer(self.ctx, mf.READ_ONLY | mf.COPY_HOST_PTR, hostbuf=b)
        vb = cl.Buffer(self.ctx, mf.READ_WRITE, 16 * cin * tp * 4)
        mb = cl.Buffer(self.ctx, mf.READ_WRITE, 16 * tp * ncb * cov * 4)
        self.flops += 2 * cout * cin * 9 * h * wd
        tag = f"wino {cin}->{cout} @{h} nt{nt}/nv{nv}"
        self.launches.append((f"{tag} input", (prog.wino_input, (tp, cin), self.buffer(x), vb)))
        self.launches.append((f"{tag} gemm", (prog.wino_gemm, (tp // nt, ncb, 16), vb, ub, mb), (1, 1, 1)))
        self.launches.append((f"{tag} output", (prog.wino_output, (cout, t), mb, bb, self.buffer(out))))

    def _pool(self, op: nnef.Operation) -> None:
        src, dst = op.inputs["input"], op.outputs["output"]
        _, c, h, w = self.shape[src]
        _, _, oh, ow = self.shape[dst]
        s = op.attribs["stride"][3]
        k = self.pool_prog.max_pool2
        self.launches.append((f"max_pool s{s} @{h}", (k, (ow, oh, c), self.buffer(src), self.buffer(dst),
                                                       np.int32(h), np.int32(w), np.int32(oh), np.int32(ow),
                                                       np.int32(s))))

    def enqueue(self) -> list[cl.Event]:
        events = []
        for item in self.launches:
            if len(item) == 3:
                _, (k, gs, *bufs), local = item
                events.append(k(self.queue, gs, local, *bufs))
            else:
                _, (k, gs, *args) = item
                events.append(k(self.queue, gs, None, *args))
        return events

    def run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        inp = self.graph.inputs[0]
        cl.enqueue_copy(self.queue, self.buffer(inp), np.ascontiguousarray(x, np.float32))
        self.enqueue()
        outs = {}
        for name in self.graph.outputs:
            a = np.empty(self.shape[name], np.float32)
            cl.enqueue_copy(self.queue, a, self.buffer(name))
            outs[name] = a
        self.queue.finish()
        return outs


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=416)
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--no-fuse-pool", action="store_true")
    ap.add_argument("--winograd", type=int, default=0, metavar="MIN_CIN",
                    help="Winograd F(2x2,3x3) for 3x3 convs with at least MIN_CIN input channels (0: never)")
    ap.add_argument("--profile", action="store_true", help="per-launch device time (OpenCL events)")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(HERE))
    from ocl_infer.detection.description import load_description
    from ocl_infer.detection.preprocess import preprocess

    folder = ROOT / ".cache" / "models" / ("yolov3-tiny" if args.size == 416 else f"yolov3-tiny-{args.size}")
    desc = load_description(folder)
    import cv2
    frame = cv2.imread(str(ROOT / ".cache" / "data" / "dog.jpg"))
    x, _ = preprocess(frame, desc.input)
    platform = next(p for p in cl.get_platforms() if "Portable" in p.name)
    ctx = cl.Context([platform.get_devices()[0]])
    queue = cl.CommandQueue(ctx, properties=cl.command_queue_properties.PROFILING_ENABLE)
    t0 = time.perf_counter()
    net = Net(ctx, queue, desc.nnef_path, not args.no_fuse_pool, args.winograd)
    outs = net.run(x)
    print(f"build + first frame {time.perf_counter() - t0:.2f} s, {len(net.launches)} launches")

    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = os.cpu_count() or 1
    sess = ort.InferenceSession(str(desc.onnx_path), so, providers=["CPUExecutionProvider"])
    ref = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {desc.input.name: x}), strict=True))
    for name, a in outs.items():
        r = ref[name]
        print(f"{name}: max abs diff vs onnxruntime {np.abs(a - r).max():.2e} (max |ref| {np.abs(r).max():.1f})")

    a = np.random.default_rng(0).standard_normal((1024, 1024), dtype=np.float32)
    ceiling = max(2 * 1024**3 / _timed(lambda: a @ a) for _ in range(8)) / 1e9
    # One after the other, not interleaved: onnxruntime's pool threads spin after a run and would slow ours.
    ours = [_timed(lambda: net.run(x)) for _ in range(args.frames)]
    if args.profile:
        events = net.enqueue()
        queue.finish()
        for (label, *_), ev in zip(net.launches, events, strict=True):
            print(f"  {label:50s} {(ev.profile.end - ev.profile.start) * 1e-6:7.3f} ms")
    theirs = [_timed(lambda: sess.run(None, {desc.input.name: x})) for _ in range(args.frames)]
    gf = net.flops / 1e9
    for label, t in (("lab kernels", ours), ("onnxruntime", theirs)):
        med = float(np.median(t)) * 1e3
        print(f"{label:12s} median {med:6.2f} ms  p99 {np.percentile(t, 99) * 1e3:6.2f} ms  "
              f"{gf / med * 1e3:5.0f} GFLOP/s  {100 * gf / med * 1e3 / ceiling:3.0f} % of sgemm {ceiling:.0f}")
    print(f"ratio lab/onnxruntime {np.median(ours) / np.median(theirs):.2f}, load {os.getloadavg()[0]:.2f}")
    return 0


def _timed(fn: object) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


if __name__ == "__main__":
    sys.exit(main())
