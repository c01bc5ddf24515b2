"""Engine precision "fp16": conv weights (covec, Winograd U) and Winograd's V/M scratch stored as half, float math.

Op level against float64 numpy, with an error bound computed from the data (what rounding the stored values to
half can cost, element by element), never a guessed tolerance; end to end on YOLOv3-tiny against onnxruntime;
the option's checks and the memory it saves."""

from pathlib import Path

import numpy as np
import pytest
from onnx import helper

rng = np.random.default_rng(816)
U16 = 2.0**-11  # unit roundoff of half (round to nearest)
U32 = 2.0**-24
TINY16 = 2.0**-14  # smallest normal half: a device that flushes subnormals reads smaller values as 0

BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], float)  # Winograd F(2x2, 3x3)
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], float)
AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], float)


def conv64(x: np.ndarray, w: np.ndarray, pad: int) -> np.ndarray:
    """Float64 2-D correlation, stride 1, `pad` zeros on every side: x [N,C,H,W], w [O,C,KH,KW]."""
    kh, kw = w.shape[2:]
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = xp.shape[2] - kh + 1, xp.shape[3] - kw + 1
    y = np.zeros((x.shape[0], w.shape[0], oh, ow))
    for ky in range(kh):
        for kx in range(kw):
            y += np.einsum("nchw,oc->nohw", xp[:, :, ky:ky + oh, kx:kx + ow], w[:, :, ky, kx].astype(np.float64))
    return y


def leaky(v: np.ndarray) -> np.ndarray:
    return np.where(v < 0, 0.1 * v, v)


@pytest.fixture
def conv_engine(tmp_path: Path):
    """A conv (+ LeakyRelu 0.1) model as ONNX -> NNEF, run by the engine at `precision` (poisoned buffers) with
    the kernel family `kernels` ("auto": by device type, so a GPU-typed device such as Oclgrind takes the GPU
    family, which has no Winograd). Returns (output, input, weights, bias, conv variants, filter dtypes)."""
    from onnx_models import convert, make_model

    from ocl_infer.engine import Engine

    def run(shape: tuple[int, ...], oc: int, k: int, act: bool, precision: str = "fp16",
            w: np.ndarray | None = None, kernels: str = "auto"):
        x = rng.standard_normal(shape).astype(np.float32)
        if w is None:
            w = (rng.standard_normal((oc, shape[1], k, k)) / np.sqrt(shape[1] * k * k)).astype(np.float32)
        b = rng.standard_normal(oc).astype(np.float32)
        pad = k // 2
        nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c" if act else "y"], kernel_shape=[k, k],
                                  pads=[pad] * 4)]
        if act:
            nodes.append(helper.make_node("LeakyRelu", ["c"], ["y"], alpha=0.1))
        model = make_model(nodes, {"x": x.shape}, ["y"], {"w": w, "b": b})
        with Engine(convert(model, tmp_path / "model.nnef"), poison=True, precision=precision,
                    kernels=kernels) as engine:
            y = engine.run({"x": x})["y"]
            convs = [s for s in engine.plan.steps if s.kind == "conv"]
            dtypes = {str(engine.plan.constants[s.inputs[1]].dtype) for s in convs}
            return y, x, w, b, {s.variant for s in convs}, dtypes

    return run


@pytest.mark.parametrize("shape,oc,k,act", [
    ((1, 19, 11, 13), 35, 3, True),    # channel tail (35 of 64 lanes), border blocks, NV 2
    ((1, 5, 17, 19), 16, 3, True),     # NV 1, RY 2 (3 input channels go to the pixels kernel)
    ((1, 48, 13, 13), 255, 1, False),  # the YOLO head class: 1x1 (the pointwise kernel, same summation order)
])
def test_covec_fp16_error_is_the_weight_rounding_and_nothing_else(conv_engine, shape, oc, k, act):
    y, x, w, b, variants, dtypes = conv_engine(shape, oc, k, act)
    assert variants == ({"pointwise"} if k == 1 else {"covec"}) and dtypes == {"float16"}
    act_fn = leaky if act else (lambda v: v)
    w16 = w.astype(np.float16).astype(np.float64)
    # 1) Against float64 with the weights rounded to half: only float32 summation error is left, bounded by
    #    (K + 1) u32 * sum |x||w| per output (K = taps summed); activations here are 1-Lipschitz.
    fp32_bound = (shape[1] * k * k + 1) * U32 * (conv64(np.abs(x), np.abs(w16), k // 2) + np.abs(b)[:, None, None])
    assert np.all(np.abs(y - act_fn(conv64(x, w16, k // 2) + b[:, None, None])) <= fp32_bound + 1e-7)
    # 2) Against the exact weights: the rounding costs at most sum |x| |w16 - w| per output.
    exact = act_fn(conv64(x, w, k // 2) + b[:, None, None])
    bound = conv64(np.abs(x), np.abs(w16 - w), k // 2) + fp32_bound + 1e-7
    err = np.abs(y - exact)
    assert np.all(err <= bound)
    assert bound.max() < 2e-3 * np.abs(exact).max()  # the bound is tight enough to mean something
    assert err.max() > 0  # and half storage really happened (float32 weights would be exact here)


# F(4x4, 3x3) (conv_winograd4): 6x6 input tiles, 4x4 output tiles
BT4 = np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0], [0, -2, -1, 2, 1, 0],
                [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], float)
G4 = np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6], [1 / 24, 1 / 12, 1 / 6],
               [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]])
AT4 = np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]], float)


@pytest.mark.parametrize("variant,shape,oc,act", [
    # channels: the least that take Winograd (`min_channel_mean`), since Oclgrind runs these too
    ("winograd", (1, 112, 7, 5), 112, True),    # 12 tiles; odd map: the last tiles half outside
    ("winograd", (1, 112, 6, 5), 112, False),   # 9 tiles -> padded to 10; odd width (larger maps take F(4x4))
    ("winograd4", (1, 64, 20, 19), 56, True),   # F(4x4): 25 tiles, the last column of tiles partly outside
])
def test_winograd_fp16_within_the_bound_of_half_u_v_m(conv_engine, variant, shape, oc, act):
    y, x, w, b, variants, dtypes = conv_engine(shape, oc, 3, act, kernels="cpu")  # Winograd: CPU family only
    assert variants == {variant} and dtypes == {"float16"}
    exact = conv64(x, w, 1) + b[:, None, None]
    exact = leaky(exact) if act else exact
    bt, g, at = (BT, G, AT) if variant == "winograd" else (BT4, G4, AT4)
    n = at.shape[0]  # outputs per tile side; input tiles are n + 2
    # Per tile and output channel: U = G g G^T, V = B^T d B and M = sum_ci U V are each stored as half, so each
    # carries a relative error u16 (plus its float32 computation; a value below 2^-14 may read back as 0 where
    # the device flushes subnormals), the sum and the transforms add (IC + 16) u32 sum|U||V|, and Y = A^T M A
    # turns |dM| into |A^T| |dM| |A|. All of it computed element by element in float64 from this test's data.
    _, ic, h, wd = shape
    th, tw = -(-h // n), -(-wd // n)
    pads = ((0, 0), (1, n * th + 1 - h), (1, n * tw + 1 - wd))
    def tiles_of(a: np.ndarray) -> np.ndarray:  # [IC, th, tw, n+2, n+2] input patches, stride n
        win = np.lib.stride_tricks.sliding_window_view(np.pad(a, pads), (n + 2, n + 2), axis=(1, 2))
        return win[:, ::n, ::n]
    d = tiles_of(x[0].astype(np.float64))
    v = np.einsum("ij,ctsjk,lk->ctsil", bt, d, bt)
    v_mag = np.einsum("ij,ctsjk,lk->ctsil", np.abs(bt), np.abs(d), np.abs(bt))
    w64 = w.astype(np.float64)
    u = np.einsum("ij,ocjk,lk->ocil", g, w64, g)
    u_mag = np.einsum("ij,ocjk,lk->ocil", np.abs(g), np.abs(w64), np.abs(g))
    du = U16 * np.abs(u) + 16 * U32 * u_mag + np.where(np.abs(u) < TINY16, np.abs(u), 0)
    # V and M are stored times 2^-2 / 2^-7, so more of them are subnormal halves: rounded to 2^-24 in stored
    # units, 2^-25 / scale absolute. That they are kept is the kernel's doing on any device (its conversions
    # go through no float subnormal), not a device property (a flushing conversion would need |v| where
    # |v| < 2^-14 / scale, which makes the F(4x4) bound ~80 % of the output range)
    tiny = 2.0**-25 * (4.0 if variant == "winograd" else 128.0)
    dv = U16 * np.abs(v) + 16 * U32 * v_mag + tiny
    uv_mag = np.einsum("ocil,ctsil->otsil", np.abs(u), np.abs(v))
    m = np.einsum("ocil,ctsil->otsil", u, v)
    dm = (np.einsum("ocil,ctsil->otsil", du, np.abs(v)) + np.einsum("ocil,ctsil->otsil", np.abs(u) + du, dv)
          + (ic + 16) * U32 * uv_mag)
    dm = 1.001 * (dm + U16 * (np.abs(m) + dm)) + tiny
    dy = np.einsum("ij,otsjk,lk->otsil", np.abs(at), dm, np.abs(at))  # [OC, th, tw, n, n]
    bound = dy.transpose(0, 1, 3, 2, 4).reshape(oc, n * th, n * tw)[None, :, :h, :wd] + 1e-6
    err = np.abs(y - exact)
    assert np.all(err <= bound), f"worst excess {np.max(err - bound):.3g}"
    # not a vacuous bound: F(2x2) ~0.7-0.9 % of the output range here, F(4x4) ~23 % (its transforms sum up to
    # 19 |coefficients| per side, a worst case that random rounding errors do not reach: measured 1 %)
    assert bound.max() < (0.01 if variant == "winograd" else 0.3) * np.abs(exact).max()
    assert err.max() > 1e-5 * np.abs(exact).max()     # half storage really happened


def winograd_conv(tmp_path: Path, x: np.ndarray, oc: int, precision: str = "fp16") -> tuple[np.ndarray, ...]:
    """One 3x3 conv (small weights, so outputs and M stay far inside half's range) on the engine and on
    onnxruntime: (engine output, onnxruntime output, max |V| of F(2x2) and F(4x4) in float64, conv variant)."""
    from onnx_models import convert, make_model, run_onnx

    from ocl_infer.engine import Engine

    w = (0.1 * rng.standard_normal((oc, x.shape[1], 3, 3)) / np.sqrt(x.shape[1] * 9)).astype(np.float32)
    b = rng.standard_normal(oc).astype(np.float32)
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[3, 3], pads=[1] * 4)
    model = make_model([node], {"x": x.shape}, ["y"], {"w": w, "b": b})
    # the CPU family, forced: Winograd is one of its kernels, and a GPU-typed device (Oclgrind) would get `gemm`
    with Engine(convert(model, tmp_path / "model.nnef"), poison=True, precision=precision,
                kernels="cpu") as engine:
        y = engine.run({"x": x})["y"]
        variant = next(s.variant for s in engine.plan.steps if s.kind == "conv")
    v_max = []
    for bt in (BT, BT4):  # V = B^T d B over every (n+2)x(n+2) patch at stride n: as big as the kernel stores
        p, n = bt.shape[0], bt.shape[0] - 2
        win = np.lib.stride_tricks.sliding_window_view(np.pad(x[0].astype(np.float64), ((0, 0), (1, p), (1, p))),
                                                       (p, p), axis=(1, 2))[:, ::n, ::n]
        v_max.append(float(np.abs(np.einsum("ij,ctsjk,lk->ctsil", bt, win, bt)).max()))
    return y, run_onnx(model, {"x": x})["y"], *v_max, variant


@pytest.mark.parametrize("variant,shape,oc,amp,tol", [
    ("winograd", (1, 112, 7, 5), 112, 2.0e4, 2e-3),    # F(2x2): |V| up to 4 |d| = 8e4
    ("winograd4", (1, 64, 20, 20), 56, 2.0e3, 3e-2),   # F(4x4): up to 100 |d| = 2e5 (YOLOv8n's head, white frame:
                                                       # 2.3e5)
])
def test_winograd_fp16_scratch_beyond_half_range_is_scaled_not_overflowed(tmp_path, variant, shape, oc, amp, tol):
    """Activations inside half's range whose Winograd transform is not: V = B^T d B sums up to 4 |d| (F(2x2))
    or 100 |d| (F(4x4)). Stored unscaled, such V overflowed to inf and came out as finite garbage (outputs 25-60x
    the output range on YOLOv8n fed a white frame); V and M are stored times 2^-2 / 2^-7 instead."""
    x = (amp * rng.choice([-1.0, 1.0], shape)).astype(np.float32)  # +-amp: the largest |V| per |d|
    y, ref, v2, v4, got = winograd_conv(tmp_path, x, oc)
    assert got == variant
    assert (v2 if variant == "winograd" else v4) > 65504  # the scratch really exceeds half's range unscaled
    assert np.all(np.isfinite(y))
    err, scale = float(np.abs(y - ref).max()), float(np.abs(ref).max())
    assert err <= tol * scale, f"max abs error {err:.4g}, output range {scale:.4g}"


def test_winograd_fp16_overflow_is_inf_or_nan_never_a_finite_value(tmp_path):
    """Activations beyond half's range overflow the scaled scratch too: the output must then say so (inf/NaN,
    which `ocl-infer bench` reports as a broken engine), not come back as finite numbers (the half->float
    conversion of the output transform used to read inf as 65536 and NaN as 98304)."""
    x = (3.0e5 * rng.choice([-1.0, 1.0], (1, 112, 7, 5))).astype(np.float32)
    y, ref, *_, variant = winograd_conv(tmp_path, x, 112)
    assert variant == "winograd" and np.all(np.isfinite(ref))
    assert not np.all(np.isfinite(y))


def test_yolov3_tiny_fp16_matches_onnxruntime_and_saves_memory(model_dir: Path, data_dir: Path):
    """End to end on dog.jpg. Stated tolerance: max abs <= 0.15 and <= 6e-3 of the largest |output| (measured
    over dog.jpg + 20 vtest frames: 0.079 and 3.3e-3 with F(4x4) on conv5/conv11, docs/performance.md "fp16
    storage"); fp32 stays 1e-4."""
    import cv2
    from onnx_models import run_onnx

    from ocl_infer.detection.description import load_description
    from ocl_infer.detection.preprocess import preprocess
    from ocl_infer.engine import Engine
    from ocl_infer.engine.devices.facts import facts_of
    from ocl_infer.engine.plan import make_plan

    desc = load_description(model_dir)
    x, _ = preprocess(cv2.imread(str(data_dir / "dog.jpg")), desc.input)
    feed = {desc.input.name: np.ascontiguousarray(x)}
    ref = run_onnx(desc.onnx_path, feed)
    with Engine(desc.nnef_path, precision="fp16") as engine:
        out = engine.run(feed)
        for name, want in ref.items():
            err = float(np.max(np.abs(out[name].astype(np.float64) - want)))
            assert np.all(np.isfinite(out[name])) and out[name].dtype == np.float32
            assert err <= 0.15 and err <= 6e-3 * float(np.max(np.abs(want))), (name, err)
            assert err > 1e-4, "fp16 storage should not be bit-for-bit the float32 path"
        # memory: every covec/pointwise/Winograd filter is float16; the plan counts the real (smaller) sizes
        facts = facts_of(engine.devices[0])
        p32, p16 = (make_plan(engine.graph, facts, precision=p) for p in ("fp32", "fp16"))
        fast = [s for s in p16.steps if s.variant in ("covec", "pointwise", "winograd", "winograd4")]
        assert len(fast) == 13 and all(p16.constants[s.inputs[1]].dtype == np.float16 for s in fast)
        halves = {n: a for n, a in p16.constants.items() if a.dtype == np.float16}
        assert all(p32.constants[n].dtype == np.float32 and p32.constants[n].shape == a.shape
                   for n, a in halves.items())
        assert p16.weights_bytes == p32.weights_bytes - sum(a.nbytes for a in halves.values())
        assert p16.scratch_bytes * 2 == p32.scratch_bytes
        assert engine.memory_bytes() == engine.plan.peak_bytes < 0.6 * p32.peak_bytes


def test_bad_precision_is_a_config_error_naming_it(model_dir: Path):
    from ocl_infer.detection import Detector
    from ocl_infer.engine import Engine
    from ocl_infer.engine.graph import load_graph
    from ocl_infer.engine.plan import make_plan
    from ocl_infer.errors import ConfigError

    with pytest.raises(ConfigError, match=r"precision.*'fp8'"):
        Engine(model_dir / "model.nnef", precision="fp8")
    with pytest.raises(ConfigError, match=r"precision.*'bf16'"):
        make_plan(load_graph(model_dir / "model.nnef"), precision="bf16")
    with pytest.raises(ConfigError, match="precision='fp16' needs backend='opencl'"):
        Detector(model_dir, backend="onnxruntime", precision="fp16")


def test_weights_beyond_half_range_are_refused_naming_the_filter(conv_engine):
    from ocl_infer.errors import ModelError

    w = np.full((16, 4, 3, 3), 0.01, np.float32)
    w[3, 1, 1, 1] = 7.0e4  # > 65504: would be inf on the device
    y, *_ = conv_engine((1, 4, 8, 8), 16, 3, False, precision="fp32", w=w)  # float32 takes it
    assert np.all(np.isfinite(y))
    with pytest.raises(ModelError, match=r"filter .*does not fit fp16 storage"):
        conv_engine((1, 4, 8, 8), 16, 3, False, w=w)


def test_cli_run_precision_fp16_halves_the_weights(tmp_path: Path, capsys):
    """`ocl-infer run --precision fp16` as a user runs it: same outputs within the weight rounding, less memory;
    a bad value is refused by the parser."""
    from onnx_models import convert, make_model

    from ocl_infer.cli.main import main

    w = (rng.standard_normal((128, 128, 3, 3)) / np.sqrt(128 * 9)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])]
    model = make_model(nodes, {"x": (1, 128, 13, 13)}, ["y"], {"w": w, "b": np.zeros(128, np.float32)})
    path = convert(model, tmp_path / "m.nnef")
    x = rng.standard_normal((1, 128, 13, 13)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    mib, outs = {}, {}
    for p in ("fp32", "fp16"):
        assert main(["run", str(path), "--input", f"x={tmp_path / 'x.npy'}", "--precision", p,
                     "--output-dir", str(tmp_path / p)]) == 0
        printed = capsys.readouterr().out
        mib[p] = float(printed.split("planned device memory ")[1].split(" MiB")[0])
        outs[p] = np.load(tmp_path / p / "y.npy")
    assert mib["fp16"] < 0.6 * mib["fp32"]  # Winograd filter and scratch dominate this model
    err = np.abs(outs["fp16"] - outs["fp32"]).max()
    assert 0 < err <= 2e-3 * np.abs(outs["fp32"]).max()  # plumbing only: the exact bound is tested above
    with pytest.raises(SystemExit):
        main(["run", str(path), "--precision", "fp8"])
    assert "invalid choice: 'fp8'" in capsys.readouterr().err
