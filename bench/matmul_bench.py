"""Matmul/linear kernels on transformer shapes (RT-DETR-l at 416: 300 queries, 169 and 3549 tokens, 8 heads of
32; the issue's 3600-token cases): device time per op from OpenCL events (minimum over rounds), GFLOP/s, and
onnxruntime (2 threads) on the same one-node model. `--variant strided` measures the general kernel (the one
every matmul used before the blocked kernels); `--block MR,NV` forces the CPU kernel's blocking. `--model` times
a whole NNEF model (RT-DETR-l) with the general kernel and with the blocked ones, interleaved in one process.

    .venv/bin/python bench/matmul_bench.py [--kernels cpu|gpu] [--variant auto|strided] [--rounds 5] [--ort]
    .venv/bin/python bench/matmul_bench.py --model rtdetr-l.nnef [--kernels cpu|gpu] [--rounds 4]
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "test" / "engine"))
from onnx_models import convert, make_model

from ocl_infer.engine import Engine
from ocl_infer.engine.kernels import matmul

# name: (A shape, B shape, B constant, transpose B (Gemm transB / a Transpose node), activation)
CASES = {
    "ffn1 300x256 -> 1024 relu": ((300, 256), (1024, 256), True, True, "Relu"),
    "ffn2 300x1024 -> 256": ((300, 1024), (256, 1024), True, True, None),
    "proj 3549x256 -> 256": ((3549, 256), (256, 256), True, True, None),
    "[300,1,256] x [256,256]": ((300, 1, 256), (256, 256), True, False, None),
    "QK^T [8,300,32] x [8,32,300]": ((8, 300, 32), (8, 32, 300), False, False, None),
    "AV [8,300,300] x [8,300,32]": ((8, 300, 300), (8, 300, 32), False, False, None),
    "QK^T [8,300,32] x [8,3600,32]^T": ((8, 300, 32), (8, 3600, 32), False, True, None),
    "[1,3600,256] x [256,1024]": ((1, 3600, 256), (256, 1024), True, False, None),
}


def model(name: str, folder: Path) -> tuple[Path, dict[str, np.ndarray], float, onnx.ModelProto]:
    a, b, const, tb, act = CASES[name]
    rng = np.random.default_rng(0)
    feeds = {"a": rng.standard_normal(a).astype(np.float32)}
    bv = (rng.standard_normal(b) / np.sqrt(a[-1])).astype(np.float32)
    inits = {"b": bv} if const else {}
    if not const:
        feeds["b"] = bv
    nodes = []
    if len(a) == 2 and const:  # Gemm: becomes NNEF linear
        inits["c"] = rng.standard_normal(b[0]).astype(np.float32)
        nodes.append(helper.make_node("Gemm", ["a", "b", "c"], ["y"], transB=int(tb)))
    elif tb:
        nodes += [helper.make_node("Transpose", ["b"], ["bt"], perm=[0, 2, 1]),
                  helper.make_node("MatMul", ["a", "bt"], ["y"])]
    else:
        nodes.append(helper.make_node("MatMul", ["a", "b"], ["y"]))
    if act:
        nodes[-1].output[0] = "g"
        nodes.append(helper.make_node(act, ["g"], ["y"]))
    m = make_model(nodes, {k: v.shape for k, v in feeds.items()}, ["y"], inits)
    k = a[-1]
    n = b[-2] if tb else b[-1]
    flops = 2.0 * np.prod(a[:-1]) * k * n
    return convert(m, folder / "m.nnef"), feeds, float(flops), m


def onnxruntime_ms(m: onnx.ModelProto, feeds: dict[str, np.ndarray], rounds: int) -> float:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    s = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    s.run(None, feeds)
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        s.run(None, feeds)
        best = min(best, time.perf_counter() - t)
    return best * 1e3


def whole_model(path: str, kernels: str, rounds: int) -> None:
    """Median wall time per frame and profiled matmul+linear device time, general vs blocked kernels, interleaved
    (so both see the same machine load); the outputs must agree."""
    engines = {}
    for name, priority in (("general", -1), ("blocked", 10)):
        matmul.GemmBlock.priority = matmul.GemmTiled.priority = priority  # read when the plan is made
        engines[name] = Engine(path, kernels=kernels)
    feeds = {n: np.random.default_rng(0).random(engines["general"].plans[0].shapes[n], dtype=np.float32)
             for n in engines["general"].plans[0].inputs}
    wall: dict[str, list[float]] = {n: [] for n in engines}
    mm: dict[str, list[float]] = {n: [] for n in engines}
    outs = {}
    for e in engines.values():
        e.run(feeds)
    for _ in range(rounds):
        for name, e in engines.items():
            t = time.perf_counter()
            outs[name] = e.run(feeds)
            wall[name].append(time.perf_counter() - t)
            kinds = {s.name: s.kind for s in e.plans[0].steps}
            mm[name].append(sum(ms for n, ms in e.profile(feeds)
                                if kinds.get(n.rsplit(" [", 1)[0]) in ("matmul", "linear")))
    for name, e in engines.items():
        print(f"{name}: {np.median(wall[name]) * 1e3:.0f} ms per frame, matmul+linear {np.median(mm[name]):.1f} ms")
        e.close()
    for k, want in outs["general"].items():
        diff = float(np.max(np.abs(outs["blocked"][k] - want)) / max(float(np.max(np.abs(want))), 1e-6))
        print(f"output {k}: max difference {diff:.2e} of its largest value")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kernels", default="cpu")
    ap.add_argument("--variant", default="auto", choices=("auto", "strided"))
    ap.add_argument("--block", default="", help="MR,NV for the CPU kernel (default: its rule)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--only", default="", help="cases whose name contains this")
    ap.add_argument("--ort", action="store_true", help="also time onnxruntime")
    ap.add_argument("--model", default="", help="a whole NNEF model: general vs blocked kernels")
    args = ap.parse_args()
    if args.model:
        print(f"load {Path('/proc/loadavg').read_text().split()[:3]}, kernels {args.kernels}")
        whole_model(args.model, args.kernels, args.rounds)
        print(f"load {Path('/proc/loadavg').read_text().split()[:3]}")
        return 0
    if args.variant == "strided":  # the general kernel only
        matmul.GemmBlock.priority = matmul.GemmTiled.priority = -1
    if args.block:
        mr, nv = (int(v) for v in args.block.split(","))
        matmul.block_shape = lambda n: (mr, nv)  # type: ignore[assignment]
    print(f"load {Path('/proc/loadavg').read_text().split()[:3]}, kernels {args.kernels}, variant {args.variant}")
    for name in CASES:
        if args.only not in name:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            path, feeds, flops, m = model(name, Path(tmp))
            with Engine(path, kernels=args.kernels, warmup=False, prewarm=False, disk_cache=False) as e:
                e.run(feeds)
                steps = [s for s in e.plans[0].steps if s.kind in ("matmul", "linear")]
                best = float("inf")
                for _ in range(args.rounds):
                    prof = e.profile(feeds)
                    ms = sum(t for _, t in prof)  # every step (a Transpose node's too)
                    best = min(best, ms)
                variants = sorted({s.variant for s in steps})
                kinds = "+".join(s.kind for s in e.plans[0].steps)
        ort = f"  onnxruntime {onnxruntime_ms(m, feeds, args.rounds):7.2f} ms" if args.ort else ""
        print(f"{name:34s} {'/'.join(variants):8s} {best:8.2f} ms {flops / best / 1e6:7.1f} GFLOP/s{ort}  ({kinds})",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
