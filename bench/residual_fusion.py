"""Residual-add fusion on a ResNet-style basic block (conv3x3 -> relu -> conv3x3 -> add(x) -> relu): the
engine with the add fused into the second conv's epilogue against the same engine with that fusion off,
interleaved, minimum device time over rounds (OpenCL events).

    .venv/bin/python bench/residual_fusion.py [--rounds 30]
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from onnx import helper

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "test" / "engine"))
from onnx_models import convert, make_model

from ocl_infer.engine import Engine
from ocl_infer.engine.plan import planner

SHAPES = ((64, 56), (128, 28), (256, 14))  # (channels, map size): ResNet-18 stages


def block(c: int, h: int, rng: np.random.Generator, folder: Path) -> Path:
    inits = {}
    for name in ("c1", "c2"):
        inits[f"{name}_w"] = (rng.standard_normal((c, c, 3, 3)) / np.sqrt(9 * c)).astype(np.float32)
        inits[f"{name}_b"] = rng.standard_normal(c).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "c1_w", "c1_b"], ["a"], kernel_shape=[3, 3], pads=[1] * 4),
             helper.make_node("Relu", ["a"], ["ar"]),
             helper.make_node("Conv", ["ar", "c2_w", "c2_b"], ["b"], kernel_shape=[3, 3], pads=[1] * 4),
             helper.make_node("Add", ["b", "x"], ["s"]), helper.make_node("Relu", ["s"], ["y"])]
    return convert(make_model(nodes, {"x": (1, c, h, h)}, ["y"], inits), folder / f"block{c}_{h}.nnef")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=30)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    folder = Path(tempfile.mkdtemp())
    print(f"load {os.getloadavg()[0]:.2f}\n")
    print("| block C x H x W | fused ms | add separate ms | saved |")
    print("|---|---|---|---|")
    for c, h in SHAPES:
        path = block(c, h, rng, folder)
        fused = Engine(path)
        keep = planner._fuse_residual
        planner._fuse_residual = lambda drafts, *a: drafts  # type: ignore[assignment]
        separate = Engine(path)
        planner._fuse_residual = keep
        x = {"x": rng.standard_normal((1, c, h, h)).astype(np.float32)}
        np.testing.assert_allclose(fused.run(x)["y"], separate.run(x)["y"], rtol=1e-4, atol=1e-4)
        best = {"fused": float("inf"), "separate": float("inf")}
        for _ in range(args.rounds):
            for name, engine in (("fused", fused), ("separate", separate)):
                best[name] = min(best[name], sum(ms for _, ms in engine.profile(x)))
        print(f"| {c}x{h}x{h} | {best['fused']:.3f} | {best['separate']:.3f} "
              f"| {100 * (1 - best['fused'] / best['separate']):.0f} % |")
        fused.close()
        separate.close()
    print(f"\nload {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
