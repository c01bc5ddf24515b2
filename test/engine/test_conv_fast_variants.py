"""The fast conv variants (covec, winograd, depthwise) against onnxruntime, on shapes that reach their border, padding
and channel-tail code paths; each case also asserts that the planner really picked the variant under test."""

import numpy as np
import pytest
from onnx import helper
from onnx_models import normal_floats

rng = np.random.default_rng(4321)


rand = normal_floats(rng)


@pytest.fixture
def run_conv(tmp_path):
    """Conv (+activation) as ONNX -> NNEF -> Engine (poisoned buffers); returns (rel error, conv variants)."""
    from onnx_models import convert, make_model, rel_error, run_onnx

    from ocl_infer.engine import Engine

    def run(shape, oc, k, pads, act=None, stride=(1, 1), group=1, dilation=(1, 1)):
        x = rand(*shape)
        nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c" if act else "y"], kernel_shape=list(k),
                                  pads=list(pads), strides=list(stride), group=group, dilations=list(dilation))]
        if act:
            nodes.append(helper.make_node(act, ["c"], ["y"], **({"alpha": 0.1} if act == "LeakyRelu" else {})))
        icg = shape[1] // group
        inits = {"w": rand(oc, icg, *k) / np.float32(np.sqrt(icg * k[0] * k[1])), "b": rand(oc)}
        model = make_model(nodes, {"x": x.shape}, ["y"], inits)
        path = convert(model, tmp_path / "model.nnef")
        with Engine(path, poison=True) as engine:
            got = engine.run({"x": x})["y"]
            variants = {s.variant for s in engine.plan.steps if s.kind == "conv"}
        return rel_error(got, run_onnx(model, {"x": x})["y"]), variants

    return run


@pytest.mark.parametrize("shape,oc,k,pads,act", [
    ((1, 5, 17, 19), 16, (3, 3), (1, 1, 1, 1), "LeakyRelu"),   # NV 1, RY 2, odd H (3 channels: pixels)
    ((1, 19, 11, 13), 35, (3, 3), (1, 1, 1, 1), "Relu"),       # channel tail: 35 of 64 padded lanes stored
    ((2, 8, 9, 30), 40, (3, 5), (0, 2, 2, 1), None),           # batch 2, 3x5, asymmetric padding
    ((1, 24, 11, 11), 255, (1, 1), (1, 1, 1, 1), None),        # the YOLO head shape class (13x13 out): one row
                                                               # per item; padded, so not the pointwise kernel's
    ((1, 40, 26, 26), 64, (3, 3), (1, 1, 1, 1), "Sigmoid"),    # 2x4x2 blocking on a 26-wide map
    ((1, 32, 7, 52), 64, (3, 3), (1, 1, 1, 1), None),          # 4x4x1 on 52 columns (7 would pad to 56)
])
def test_covec_matches_onnxruntime(run_conv, shape, oc, k, pads, act):
    err, variants = run_conv(shape, oc, k, pads, act)
    assert variants == {"covec"}
    assert err <= 1e-4


@pytest.mark.parametrize("shape,oc,act", [
    ((1, 128, 13, 13), 104, "LeakyRelu"),  # 49 tiles -> 5 per item; odd map: the last tile is half outside;
                                           # channel tail (104 of 128 lanes)
    ((1, 192, 6, 5), 96, "Tanh"),          # 9 tiles -> padded to 10; odd width
    ((1, 128, 10, 10), 256, None),        # 25 tiles -> 5 per item
])
def test_winograd_matches_onnxruntime(run_conv, shape, oc, act):
    err, variants = run_conv(shape, oc, (3, 3), (1, 1, 1, 1), act)
    assert variants == {"winograd"}
    assert err <= 1e-4


@pytest.mark.parametrize("shape,oc,act", [
    ((1, 128, 26, 26), 256, None),        # 49 tiles of 4x4, the last row and column half outside
    ((1, 96, 10, 7), 48, "Tanh"),         # 6 tiles -> padded to 4s; odd width
    ((1, 64, 20, 22), 72, "LeakyRelu"),   # 30 tiles -> 4 per item; channel tail (72 of 80 lanes)
    ((1, 64, 20, 20), 80, "Sigmoid"),     # 80 channels: 5 vectors per item (4 would pad them to 128)
])
def test_winograd4_matches_onnxruntime(run_conv, shape, oc, act):
    """F(4x4, 3x3) where it saves enough multiplies over F(2x2); its rounding error is larger but well within
    the float32 tolerance."""
    err, variants = run_conv(shape, oc, (3, 3), (1, 1, 1, 1), act)
    assert variants == {"winograd4"}
    assert err <= 1e-4


def test_blocking_rules_take_the_least_padded_blocking():
    """The rules weigh the work a blocking pads in: equal padding keeps the preferred blocking, and a blocking
    that pads a small dimension by a third or more loses to one that pads nothing."""
    from ocl_infer.engine.kernels.conv_common import least_padded
    from ocl_infer.engine.kernels.conv_covec import covec_blocking
    from ocl_infer.engine.kernels.conv_pointwise import pointwise_blocking
    from ocl_infer.engine.kernels.conv_winograd import winograd_blocking

    assert least_padded(((7,), (4,)), (52,)) == (4,)   # 56 vs 52
    assert least_padded(((7,), (4,)), (56,)) == (7,)   # both exact: the first
    assert least_padded(((7, 3), (5, 4)), (49, 64)) == (7, 3)  # 3234 vs 3200 within 2 %: the first
    assert winograd_blocking(49, 64) == (5, 4)      # 7x3 would compute 96 channels
    assert winograd_blocking(49, 512) == (7, 3)     # 33 of 32 vectors: within the tie
    assert winograd_blocking(169, 80) == (4, 5)     # 4x4 would compute 128 channels
    assert winograd_blocking(100, 256) == (5, 4)
    assert covec_blocking(64, 52, 52, 3, 3) == (4, 4, 1)
    assert covec_blocking(256, 13, 13, 3, 3) == (7, 2, 1)  # 2x4x2 would compute 14 rows
    assert covec_blocking(128, 26, 26, 3, 3) == (2, 4, 2)
    assert pointwise_blocking(64, 26 * 26) == (8, 1)   # 43 vectors: 3 per item would compute 45
    assert pointwise_blocking(64, 52 * 52) == (8, 3)   # 169 vectors: 171


def test_winograd4_filter_transform_reproduces_direct_conv_in_float64():
    from ocl_infer.engine.kernels.conv_winograd4 import winograd4_filter

    # One 6x6 tile through B^T d B, (U * V), A^T M A must equal the 4x4 direct correlation.
    g = rng.standard_normal((1, 1, 3, 3))
    d = rng.standard_normal((6, 6))
    bt = np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0], [0, -2, -1, 2, 1, 0],
                   [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], float)
    at = np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]], float)
    u = winograd4_filter(g.astype(np.float32), 16)[:, 0, 0, 0].astype(np.float64).reshape(6, 6)
    y = at @ (u * (bt @ d @ bt.T)) @ at.T
    direct = np.array([[np.sum(d[i:i + 3, j:j + 3] * g[0, 0]) for j in range(4)] for i in range(4)])
    np.testing.assert_allclose(y, direct, rtol=1e-5, atol=1e-5)


def test_strided_conv_runs_on_covec_not_winograd(run_conv):
    err, variants = run_conv((1, 64, 12, 12), 32, (3, 3), (1, 1, 1, 1), stride=(2, 2))
    assert variants == {"covec"} and err <= 1e-4


def test_winograd_filter_transform_reproduces_direct_conv_in_float64():
    # Imported here, not at the top: importing one kernel module before the registry has loaded its
    # families would leave the others unregistered (the registry loads them only while it is empty).
    from ocl_infer.engine.kernels.conv_winograd import winograd_filter

    # One 4x4 tile through B^T d B, (U * V), A^T M A must equal the 2x2 direct correlation.
    g = rng.standard_normal((1, 1, 3, 3))
    d = rng.standard_normal((4, 4))
    bt = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], float)
    at = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], float)
    u = winograd_filter(g.astype(np.float32), 16)[:, 0, 0, 0].astype(np.float64).reshape(4, 4)
    y = at @ (u * (bt @ d @ bt.T)) @ at.T
    direct = np.array([[np.sum(d[i:i + 3, j:j + 3] * g[0, 0]) for j in range(2)] for i in range(2)])
    np.testing.assert_allclose(y, direct, rtol=1e-5, atol=1e-5)


def test_winograd_scratch_is_counted_in_the_memory_figure(tmp_path):
    """memory_bytes() includes the V/M buffers the Winograd launches allocate for themselves, byte for byte."""
    from onnx_models import convert, make_model

    from ocl_infer.engine import Engine
    from ocl_infer.engine.kernels.conv_winograd import ScratchLaunch

    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])]
    model = make_model(nodes, {"x": (1, 128, 13, 13)}, ["y"], {"w": rand(104, 128, 3, 3), "b": rand(104)})
    with Engine(convert(model, tmp_path / "model.nnef")) as engine:
        plan = engine.plan
        allocated = {id(b): b.size for launch in engine.runtimes[0].launches if isinstance(launch, ScratchLaunch)
                     for b in launch.scratch}
        assert {s.variant for s in plan.steps if s.kind == "conv"} == {"winograd"}
        assert plan.scratch_bytes == sum(allocated.values()) > 0
        assert engine.memory_bytes() == plan.weights_bytes + plan.buffers.activation_bytes + plan.scratch_bytes


@pytest.mark.parametrize("shape,oc,k,pads,dilation,act", [
    ((1, 32, 17, 19), 32, (3, 3), (1, 1, 1, 1), (1, 1), "Relu"),      # 16-wide vectors, one hanging over
    ((1, 24, 7, 7), 24, (3, 3), (1, 1, 1, 1), (1, 1), None),           # narrow map: 8-wide vectors
    ((2, 8, 20, 33), 16, (3, 3), (0, 2, 1, 1), (1, 1), "LeakyRelu"),   # batch 2, multiplier 2, odd padding
    ((1, 16, 23, 18), 16, (5, 5), (4, 4, 4, 4), (2, 2), "Sigmoid"),    # 5x5 dilated
    ((1, 40, 9, 40), 40, (3, 1), (1, 0, 1, 0), (1, 1), None),          # non-square kernel
])
def test_depthwise_matches_onnxruntime(run_conv, shape, oc, k, pads, dilation, act):
    err, variants = run_conv(shape, oc, k, pads, act, group=shape[1], dilation=dilation)
    assert variants == {"depthwise"}
    assert err <= 1e-4


def test_strided_depthwise_stays_with_the_general_kernel(run_conv):
    err, variants = run_conv((1, 16, 15, 15), 16, (3, 3), (1, 1, 1, 1), "Relu", stride=(2, 2), group=16)
    assert variants == {"blocked"}
    assert err <= 1e-4


def test_depthwise_reads_its_padding_in_place(tmp_path):
    """One launch per depthwise layer and no scratch: the zero border is a mask on the kernel's own loads."""
    from onnx_models import convert, make_model

    from ocl_infer.engine import Engine

    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=32)]
    model = make_model(nodes, {"x": (1, 32, 30, 30)}, ["y"], {"w": rand(32, 1, 3, 3), "b": rand(32)})
    with Engine(convert(model, tmp_path / "model.nnef")) as engine:
        assert [s.variant for s in engine.plan.steps] == ["depthwise"]
        assert len(engine.runtimes[0].launches) == 1
        assert engine.plan.scratch_bytes == 0
