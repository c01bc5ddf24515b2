"""Depthwise 3x3 convs of MobileNet shapes through the engine: the "depthwise" variant against the general
"blocked" kernel (the planner's choice without it), interleaved, minimum device time over rounds (OpenCL
events, padding pass included), and onnxruntime's wall time on the same layer for scale.

    .venv/bin/python bench/kernels_lab/depthwise_ab.py [--rounds 20]
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnx import helper

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "test" / "engine"))
from onnx_models import convert, make_model

from ocl_infer.engine import Engine
from ocl_infer.engine.kernels.conv_depthwise import ConvDepthwise

SHAPES = ((32, 112, 1), (96, 112, 2), (144, 56, 1), (192, 28, 1), (576, 14, 1), (960, 7, 1))  # (C, H, stride)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    tmp = Path(tempfile.mkdtemp())
    print(f"load {os.getloadavg()[0]:.2f}\n")
    print("| C x H x W, stride | depthwise ms | blocked ms | speed-up | onnxruntime ms |")
    print("|---|---|---|---|---|")
    for c, h, s in SHAPES:
        x = rng.standard_normal((1, c, h, h)).astype(np.float32)
        nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                                  strides=[s, s], group=c), helper.make_node("Relu", ["c"], ["y"])]
        model = make_model(nodes, {"x": x.shape}, ["y"], {"w": rng.standard_normal((c, 1, 3, 3)).astype(np.float32),
                                                          "b": rng.standard_normal(c).astype(np.float32)})
        path = convert(model, tmp / f"dw{c}_{h}_{s}.nnef")
        engines = {"depthwise": Engine(path)}
        supports = ConvDepthwise.supports
        ConvDepthwise.supports = classmethod(lambda cls, *a: False)  # type: ignore[method-assign]
        engines["blocked"] = Engine(path)
        ConvDepthwise.supports = supports  # type: ignore[method-assign]
        best = dict.fromkeys(engines, float("inf"))
        for _ in range(args.rounds):
            for name, engine in engines.items():
                best[name] = min(best[name], sum(ms for _, ms in engine.profile({"x": x})))
        chosen = {st.variant for st in engines["depthwise"].plan.steps}
        so = ort.SessionOptions()
        so.intra_op_num_threads = os.cpu_count() or 1
        sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        walls = []
        for _ in range(args.rounds * 3):
            t = time.perf_counter()
            sess.run(None, {"x": x})
            walls.append(time.perf_counter() - t)
        if "depthwise" in chosen:
            dw, gain = f"{best['depthwise']:.3f}", f"{best['blocked'] / best['depthwise']:.2f}x"
        else:
            dw, gain = "(not taken: stride 2)", "-"
        print(f"| {c}x{h}x{h}, {s} | {dw} | {best['blocked']:.3f} | {gain} | {min(walls) * 1e3:.3f} |")
        for engine in engines.values():
            engine.close()
    print(f"\nload {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
