"""The k x k convs YOLOv8n/YOLO11n run on covec (stride-2 downsamplers, the 16-32 channel 3x3 bottlenecks)
through the engine: the "pixels" variant (each of its tuner blockings with --blockings) against covec, the
planner's choice without it; interleaved, minimum device time over rounds (OpenCL events), load printed.

    .venv/bin/python bench/kernels_lab/conv_pixels_ab.py [--rounds 15] [--blockings] [--size 416]
    .venv/bin/python bench/kernels_lab/conv_pixels_ab.py --model .cache/models/modern/yolov8n [--model ...]

--model: the whole model instead, with and without the pixels variant (the planner's rule), interleaved; the
device time of covec's and pixels' steps and of all steps (minimum per step over rounds).
"""

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from onnx import helper

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "test" / "engine"))
from onnx_models import convert, make_model

from ocl_infer.engine import Engine
from ocl_infer.engine.kernels import conv_pixels
from ocl_infer.engine.kernels.conv_pixels import ConvPixels


def layers(size: int) -> list[tuple[int, int, int, int, bool]]:
    """(IC, OC, input side, stride, residual) of YOLOv8n's covec-run 3x3s at `size` (YOLO11n's are the same
    downsamplers; its C3k2 bottlenecks have the same 16/32-channel 3x3s)."""
    s = size
    return [(3, 16, s, 2, False), (16, 32, s // 2, 2, False), (32, 64, s // 4, 2, False), (64, 128, s // 8, 2, False),
            (128, 256, s // 16, 2, False), (64, 64, s // 8, 2, False), (128, 128, s // 16, 2, False),
            (16, 16, s // 4, 1, True), (32, 32, s // 8, 1, True), (32, 32, s // 8, 1, False)]


def model_of(ic: int, oc: int, side: int, stride: int, residual: bool, rng: np.random.Generator) -> tuple:
    conv = dict(kernel_shape=[3, 3], strides=[stride, stride], pads=[1, 1, 1, 1])
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], **conv), helper.make_node("Sigmoid", ["c"], ["s"]),
             helper.make_node("Mul", ["c", "s"], ["a" if residual else "y"])]
    if residual:
        nodes.append(helper.make_node("Add", ["a", "x"], ["y"]))
    inits = {"w": (rng.standard_normal((oc, ic, 3, 3)) / np.sqrt(9 * ic)).astype(np.float32),
             "b": rng.standard_normal(oc).astype(np.float32)}
    return make_model(nodes, {"x": (1, ic, side, side)}, ["y"], inits)


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def model_ab(path: Path, rounds: int) -> None:
    """YOLO at its stored input size: without pixels (covec takes its layers) and with the planner's rule."""
    supports = ConvPixels.supports
    ConvPixels.supports = classmethod(lambda cls, *a: False)  # type: ignore[method-assign]
    engines = {"without": Engine(path, kernels="cpu")}
    ConvPixels.supports = supports  # type: ignore[method-assign]
    engines["with"] = Engine(path, kernels="cpu")
    rng = np.random.default_rng(0)
    feeds = {n: rng.random(s.shape, dtype=np.float32) for n, s in engines["with"].inputs.items()}
    best: dict[str, dict[str, float]] = {k: {} for k in engines}
    for _ in range(rounds):
        for name, engine in engines.items():
            for label, ms in engine.profile(feeds):
                best[name][label] = min(ms, best[name].get(label, float("inf")))
    print(f"{path} (load {load()}):")
    for name, steps in best.items():
        total = sum(steps.values())
        parts = []
        for variant in ("covec", "pixels"):
            ms = [v for k, v in steps.items() if k.endswith(f"[{variant}]")]
            parts.append(f"{variant} {len(ms)} steps {sum(ms):.2f} ms ({100 * sum(ms) / total:.1f} %)")
        print(f"  {name} pixels: device {total:.2f} ms; " + "; ".join(parts))
    for label, ms in best["with"].items():  # the steps pixels took, against covec on the same layer
        if label.endswith("[pixels]"):
            before = best["without"][label.removesuffix("[pixels]") + "[covec]"]
            print(f"  {label}: {ms:.3f} ms, covec {before:.3f} ms ({before / ms:.2f}x)")
    for engine in engines.values():
        engine.close()


def conv_ms(engine: Engine, x: np.ndarray) -> float:
    """Device time of the conv step (the only one here; fused epilogue included)."""
    return sum(ms for _, ms in engine.profile({"x": x}))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--size", type=int, default=416)
    ap.add_argument("--blockings", action="store_true", help="every tuner blocking of pixels, not only the rule's")
    ap.add_argument("--model", type=Path, action="append", help="A/B a whole model instead (repeatable)")
    args = ap.parse_args()
    if args.model:
        for path in args.model:
            model_ab(path, args.rounds)
        return 0
    rng = np.random.default_rng(0)
    tmp = Path(tempfile.mkdtemp())
    print(f"load {load()}\n")
    print("| IC -> OC, input, stride | covec ms | pixels ms (OB x NPV) | speed-up | GFLOP/s covec / pixels |")
    print("|---|---|---|---|---|")
    rule, supports = conv_pixels.pixels_blocking, ConvPixels.supports
    for ic, oc, side, stride, residual in layers(args.size):
        model = model_of(ic, oc, side, stride, residual, rng)
        path = convert(model, tmp / f"c{ic}_{oc}_{side}_{stride}.nnef")
        x = rng.standard_normal((1, ic, side, side)).astype(np.float32)
        ConvPixels.supports = classmethod(lambda cls, *a: False)  # type: ignore[method-assign]
        engines = {"covec": Engine(path, kernels="cpu")}
        ConvPixels.supports = supports  # type: ignore[method-assign]
        conv_pixels.MAX_IC = 1 << 30  # every layer here, to compare
        probe = Engine(path, kernels="cpu")
        step = next(s for s in probe.plan.steps if s.kind == "conv")
        assert step.variant == "pixels", step.variant
        blockings = [tuple(c["blocking"]) for c in ConvPixels.candidates(step, probe.plan.shapes)]
        probe.close()
        for b in blockings if args.blockings else blockings[:1]:
            conv_pixels.pixels_blocking = lambda oc, ow, b=b: b  # type: ignore[assignment]
            engines[f"{b[0]}x{b[1]}"] = Engine(path, kernels="cpu")
        conv_pixels.pixels_blocking = rule
        best = dict.fromkeys(engines, float("inf"))
        for _ in range(args.rounds):
            for name, engine in engines.items():
                best[name] = min(best[name], conv_ms(engine, x))
        top = min((k for k in engines if k != "covec"), key=lambda k: best[k])
        oside = -(-side // stride)
        gflop = 2 * ic * 9 * oc * oside * oside / 1e9
        extra = "" if not args.blockings else " [" + ", ".join(f"{k} {best[k]:.3f}" for k in engines
                                                               if k != "covec") + "]"
        print(f"| {ic} -> {oc}, {side}x{side}, s{stride}{' +res' if residual else ''} | {best['covec']:.3f} | "
              f"{best[top]:.3f} ({top}) | {best['covec'] / best[top]:.2f}x | "
              f"{gflop / best['covec'] * 1e3:.0f} / {gflop / best[top] * 1e3:.0f} |{extra}", flush=True)
        for engine in engines.values():
            engine.close()
    print(f"\nload {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
