"""Every supported op against onnxruntime on the same ONNX model: random inputs and parameters, odd sizes,
channels not multiples of 4/8, max relative error <= 1e-4, NaN never passes (buffers are NaN-poisoned)."""

import numpy as np
import pytest
from onnx import helper
from onnx_models import normal_floats

rng = np.random.default_rng(1234)


rand = normal_floats(rng)


CONV_CASES = [
    # (input shape, out channels, kernel, strides, dilations, pads (t, l, b, r), groups, bias)
    ((1, 3, 17, 19), 5, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1), 1, True),
    ((2, 6, 11, 13), 10, (3, 3), (2, 2), (1, 1), (0, 1, 2, 1), 2, True),
    ((1, 7, 9, 10), 7, (3, 3), (1, 1), (2, 2), (2, 2, 2, 2), 7, True),  # depthwise, dilated
    ((1, 16, 8, 9), 12, (1, 1), (1, 1), (1, 1), (0, 0, 0, 0), 1, False),  # 1x1, no bias
    ((1, 5, 12, 15), 9, (3, 5), (1, 3), (2, 1), (2, 1, 0, 2), 1, True),
    ((1, 12, 6, 7), 20, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1), 4, True),  # groups with 3 and 5 channels each
    ((1, 10, 9, 11), 33, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1), 1, True),  # >= 16 channels: the covec kernel
    ((2, 24, 13, 13), 40, (1, 1), (1, 1), (1, 1), (0, 0, 0, 0), 1, True),  # covec 1x1 on a 13x13 map
    ((1, 8, 30, 29), 17, (3, 3), (1, 1), (1, 1), (0, 1, 2, 0), 1, True),  # covec, asymmetric padding
    ((2, 6, 17, 20), 24, (3, 3), (2, 2), (1, 1), (1, 1, 1, 1), 1, True),  # covec stride 2 (YOLOv8's downsampling)
    ((1, 5, 15, 16), 33, (3, 3), (2, 1), (1, 1), (1, 0, 1, 2), 1, True),  # covec, stride 2 x 1, odd padding
    ((1, 4, 13, 14), 16, (1, 1), (2, 2), (1, 1), (0, 0, 0, 0), 1, True),  # covec 1x1 stride 2
]


@pytest.mark.parametrize("shape,oc,k,s,d,pads,groups,bias", CONV_CASES)
def test_conv(check_against_onnx, shape, oc, k, s, d, pads, groups, bias):
    w = rand(oc, shape[1] // groups, *k)
    inits = {"w": w, **({"b": rand(oc)} if bias else {})}
    node = helper.make_node("Conv", ["x", "w", *(["b"] if bias else [])], ["y"], kernel_shape=list(k),
                            strides=list(s), dilations=list(d), pads=[pads[0], pads[1], pads[2], pads[3]],
                            group=groups)
    check_against_onnx([node], {"x": rand(*shape)}, ["y"], inits)


def test_conv1d(check_against_onnx):
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[3], pads=[1, 2], strides=[2])
    check_against_onnx([node], {"x": rand(2, 4, 21)}, ["y"], {"w": rand(6, 4, 3), "b": rand(6)})


@pytest.mark.parametrize("oc", [11, 19])
@pytest.mark.parametrize("act", ["Relu", "LeakyRelu", "Sigmoid", "Tanh", "Elu", "Clip"])
def test_conv_fused_activation(check_against_onnx, act, oc):
    extra = {"alpha": 0.1} if act == "LeakyRelu" else {}
    inputs = ["c", "lo", "hi"] if act == "Clip" else ["c"]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node(act, inputs, ["y"], **extra)]
    inits = {"w": rand(oc, 3, 3, 3), "b": rand(oc), "lo": np.array(0, np.float32), "hi": np.array(0.6, np.float32)}
    check_against_onnx(nodes, {"x": rand(1, 3, 10, 9)}, ["y"], inits)


@pytest.mark.parametrize("shape,oc,alpha", [((1, 5, 16, 22), 16, 0.1), ((1, 6, 13, 9), 40, 0.1),
                                            ((1, 4, 12, 12), 20, -0.5)])
def test_conv_leaky_maxpool_fused(check_against_onnx, shape, oc, alpha):
    """conv -> leaky -> 2x2/2 max pool runs as one kernel (odd sizes floor like ONNX); a negative slope is not
    monotonic, so that case must stay unfused and still be right."""
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("LeakyRelu", ["c"], ["l"], alpha=alpha),
             helper.make_node("MaxPool", ["l"], ["y"], kernel_shape=[2, 2], strides=[2, 2])]
    check_against_onnx(nodes, {"x": rand(*shape)}, ["y"], {"w": rand(oc, shape[1], 3, 3), "b": rand(oc)})


def test_conv_batchnorm_relu_folded(check_against_onnx):
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("BatchNormalization", ["c", "g", "bb", "m", "v"], ["n"], epsilon=1e-3),
             helper.make_node("Relu", ["n"], ["y"])]
    inits = {"w": rand(13, 5, 3, 3), "g": rand(13), "bb": rand(13), "m": rand(13), "v": rand(13, positive=True)}
    check_against_onnx(nodes, {"x": rand(1, 5, 15, 14)}, ["y"], inits)


def test_batchnorm_standalone(check_against_onnx):
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("BatchNormalization", ["r", "g", "bb", "m", "v"], ["y"])]
    inits = {"g": rand(7), "bb": rand(7), "m": rand(7), "v": rand(7, positive=True)}
    check_against_onnx(nodes, {"x": rand(2, 7, 5, 3)}, ["y"], inits)


@pytest.mark.parametrize("shape,oc,k,s,pads,groups", [
    ((1, 4, 5, 6), 3, (3, 3), (2, 2), (1, 1, 1, 1), 1),
    ((2, 6, 4, 3), 4, (2, 3), (1, 2), (0, 1, 0, 1), 2),
])
def test_deconv(check_against_onnx, shape, oc, k, s, pads, groups):
    node = helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], kernel_shape=list(k), strides=list(s),
                            pads=list(pads), group=groups)
    check_against_onnx([node], {"x": rand(*shape)}, ["y"], {"w": rand(shape[1], oc // groups, *k), "b": rand(oc)})


def test_gemm_linear(check_against_onnx):
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["g"], transB=1),
             helper.make_node("Relu", ["g"], ["y"])]
    check_against_onnx(nodes, {"x": rand(3, 37)}, ["y"], {"w": rand(13, 37), "b": rand(13)})


@pytest.mark.parametrize("a,b", [((5, 7), (7, 3)), ((2, 5, 9), (9, 6)), ((3, 4, 5), (3, 5, 2))])
def test_matmul(check_against_onnx, a, b):
    node = helper.make_node("MatMul", ["a", "b"], ["y"])
    check_against_onnx([node], {"a": rand(*a), "b": rand(*b)}, ["y"])


UNARY = ["Relu", "Sigmoid", "Tanh", "Elu", "Exp", "Abs", "Neg", "Identity", "Floor", "Ceil", "Softplus", "Sign",
         "Round"]


@pytest.mark.parametrize("shape", [(1, 3, 7, 5), (2, 9)])
def test_unary_ops(check_against_onnx, shape):
    nodes = [helper.make_node(op, ["x"], [f"y_{op}"]) for op in UNARY]
    nodes.append(helper.make_node("LeakyRelu", ["x"], ["y_leaky"], alpha=0.2))
    nodes.append(helper.make_node("Clip", ["x", "lo", "hi"], ["y_clip"]))
    nodes += [helper.make_node("Abs", ["x"], ["ax"]), helper.make_node("Log", ["ax"], ["y_log"]),
              helper.make_node("Sqrt", ["ax"], ["y_sqrt"])]
    outs = [f"y_{op}" for op in UNARY] + ["y_leaky", "y_clip", "y_log", "y_sqrt"]
    inits = {"lo": np.array(0, np.float32), "hi": np.array(6, np.float32)}
    x = rand(*shape) * 3
    x[np.abs(x) < 1e-3] = 0.5  # keep log/sqrt away from 0
    check_against_onnx(nodes, {"x": x}, outs, inits)


def test_prelu(check_against_onnx):
    node = helper.make_node("PRelu", ["x", "slope"], ["y"])
    check_against_onnx([node], {"x": rand(1, 5, 4, 3)}, ["y"], {"slope": rand(5, 1, 1)})


BINARY = ["Add", "Sub", "Mul", "Div", "Min", "Max"]


@pytest.mark.parametrize("a,b", [
    ((2, 3, 4, 5), (2, 3, 4, 5)),
    ((1, 5, 7, 9), (5, 1, 1)),
    ((1, 5, 7, 9), (9,)),
    ((1, 3, 1, 7), (2, 1, 5, 1)),
])
def test_binary_broadcast(check_against_onnx, a, b):
    nodes = [helper.make_node(op, ["a", "b"], [f"y_{op}"]) for op in BINARY]
    bv = rand(*b)
    bv[np.abs(bv) < 0.1] = 0.5  # no division blow-ups
    check_against_onnx(nodes, {"a": rand(*a), "b": bv}, [f"y_{op}" for op in BINARY])


def test_sum_of_three(check_against_onnx):
    node = helper.make_node("Sum", ["a", "b", "c"], ["y"])
    check_against_onnx([node], {"a": rand(2, 3, 5), "b": rand(2, 3, 5), "c": rand(2, 3, 5)}, ["y"])


def test_binary_with_constant_and_pow(check_against_onnx):
    nodes = [helper.make_node("Mul", ["x", "c"], ["m"]), helper.make_node("Add", ["m", "k"], ["y_add"]),
             helper.make_node("Abs", ["x"], ["ax"]), helper.make_node("Pow", ["ax", "e"], ["y_pow"])]
    inits = {"c": rand(1, 6, 1, 1), "k": np.array(0.25, np.float32), "e": rand(6, 1, 1, positive=True)}
    x = rand(1, 6, 5, 4)
    check_against_onnx(nodes, {"x": x}, ["y_add", "y_pow"], inits)


@pytest.mark.parametrize("kind,attrs", [
    ("MaxPool", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ("MaxPool", {"kernel_shape": [2, 2], "strides": [1, 1], "pads": [0, 0, 1, 1]}),  # YOLOv3-tiny's
    ("MaxPool", {"kernel_shape": [2, 3], "strides": [2, 1], "dilations": [2, 1]}),
    # the CPU family's `columns` kernel (9+ taps): SPPF's window, and a tall one with uneven strides and padding
    ("MaxPool", {"kernel_shape": [5, 5], "strides": [1, 1], "pads": [2, 2, 2, 2]}),
    ("MaxPool", {"kernel_shape": [4, 3], "strides": [3, 2], "pads": [2, 0, 3, 1], "dilations": [1, 2]}),
    ("AveragePool", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "count_include_pad": 0}),
    ("AveragePool", {"kernel_shape": [3, 2], "strides": [1, 2], "pads": [1, 0, 1, 1], "count_include_pad": 1}),
])
def test_pool(check_against_onnx, kind, attrs):
    node = helper.make_node(kind, ["x"], ["y"], **attrs)
    check_against_onnx([node], {"x": rand(2, 5, 11, 13)}, ["y"])


def test_global_pool_and_reduce(check_against_onnx):
    nodes = [helper.make_node("GlobalAveragePool", ["x"], ["y_gap"]),
             helper.make_node("GlobalMaxPool", ["x"], ["y_gmp"]),
             helper.make_node("ReduceMean", ["x"], ["y_mean"], axes=[2, 3], keepdims=1),
             helper.make_node("ReduceMax", ["x"], ["y_max"], axes=[1], keepdims=1),
             helper.make_node("ReduceMin", ["x"], ["y_min"], axes=[1, 3], keepdims=0),
             helper.make_node("ReduceSum", ["x"], ["y_sum"], axes=[3], keepdims=1)]
    check_against_onnx(nodes, {"x": rand(2, 5, 6, 7)}, ["y_gap", "y_gmp", "y_mean", "y_max", "y_min", "y_sum"],
                       opset=11)


@pytest.mark.parametrize("axis", [1, 2, -1])  # 2: a middle axis, strided rows (YOLOv8's DFL softmax)
def test_softmax(check_against_onnx, axis):
    node = helper.make_node("Softmax", ["x"], ["y"], axis=axis)
    check_against_onnx([node], {"x": rand(2, 7, 3, 5) * 4}, ["y"])


@pytest.mark.parametrize("shape,axis", [((2, 16, 3, 37), 1), ((1, 5, 16, 20), 2), ((3, 6, 16), 1),
                                        ((1, 2, 7, 169), -1), ((3, 32), 1), ((2, 3, 17), 2)])
def test_softmax_on_16_rows_per_work_item(check_against_onnx, tmp_path, shape, axis):
    """CPU family: rows of at least 16 as float16 vectors (111, 37: the last block moved back over its
    neighbour's rows; exactly 16), several outer blocks, values far apart (exp of -100 and of 0 in one row).
    Along the last axis, a row per work-item in vectors: 169 (10 vectors and a tail of 9), 32, 17."""
    from onnx_models import convert, make_model

    from ocl_infer.engine.graph import load_graph
    from ocl_infer.engine.plan import DeviceFacts, make_plan

    node = helper.make_node("Softmax", ["x"], ["y"], axis=axis)
    plan = make_plan(load_graph(convert(make_model([node], {"x": shape}, ["y"]), tmp_path / "s.nnef")),
                     DeviceFacts(type="cpu"))
    assert [(s.kind, s.attrs.get("vector")) for s in plan.steps] == [("softmax", 16)]
    check_against_onnx([node], {"x": rand(*shape) * 30}, ["y"])


def test_concat_split_slice(check_against_onnx):
    nodes = [helper.make_node("Concat", ["a", "b", "c"], ["cat"], axis=1),
             helper.make_node("Split", ["cat", "parts"], ["s1", "s2", "s3"], axis=1),
             helper.make_node("Slice", ["cat", "st", "en", "ax", "sp"], ["y_slice"]),
             helper.make_node("Relu", ["s2"], ["y_s2"]),
             helper.make_node("Neg", ["s3"], ["y_s3"]),
             helper.make_node("Abs", ["s1"], ["y_s1"]),
             helper.make_node("Exp", ["cat"], ["y_cat"])]
    inits = {"parts": np.array([2, 5, 4]), "st": np.array([1, 2]), "en": np.array([10, 100]),
             "ax": np.array([1, 3]), "sp": np.array([3, 2])}
    check_against_onnx(nodes, {"a": rand(1, 3, 4, 9), "b": rand(1, 5, 4, 9), "c": rand(1, 3, 4, 9)},
                       ["y_slice", "y_s1", "y_s2", "y_s3", "y_cat"], inits)


def test_row_copies_upsample_and_grid_broadcasts(check_against_onnx, tmp_path):
    """The CPU family's vector data movement (rows_copy16: rows of 37 and of 520 = one 512-float chunk and a
    tail; nearest_upsample2x_8: a width of 19 = two 8-pixel vectors and a tail of 3) and the grid kernel of
    broadcasts that collapse to <= 3 dims (a scalar, a row across channels, a per-channel vector), next to one
    that does not (rank-8 kernel); both families against onnxruntime. The CPU plan really takes those kernels."""
    from onnx_models import convert, make_model

    from ocl_infer.engine import Engine

    nodes = [helper.make_node("Concat", ["a", "b"], ["y_cat"], axis=2),
             helper.make_node("Transpose", ["c"], ["y_t"], perm=[0, 2, 1, 3]),
             helper.make_node("Resize", ["u", "", "scales"], ["y_up"], mode="nearest",
                              coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
             helper.make_node("Mul", ["a", "k"], ["y_scalar"]),
             helper.make_node("Mul", ["c", "row"], ["y_row"]),
             helper.make_node("Add", ["u", "ch"], ["y_ch"]),
             helper.make_node("Mul", ["v", "w"], ["y_rank4"])]
    inputs = {"a": rand(1, 3, 37), "b": rand(1, 3, 520), "c": rand(1, 4, 3, 37), "u": rand(1, 2, 3, 19),
              "v": rand(2, 3, 4, 5)}
    inits = {"scales": np.array([1, 1, 2, 2], np.float32), "k": np.array(0.37, np.float32),
             "row": rand(1, 1, 1, 37), "ch": rand(1, 2, 1, 1), "w": rand(2, 1, 4, 1)}
    outputs = ["y_cat", "y_t", "y_up", "y_scalar", "y_row", "y_ch", "y_rank4"]
    check_against_onnx(nodes, inputs, outputs, inits)
    path = convert(make_model(nodes, {k: v.shape for k, v in inputs.items()}, outputs, inits), tmp_path / "v.nnef")
    with Engine(path, kernels="cpu") as engine:
        names = {launch.kernel.function_name for launch in engine.runtimes[0].launches}
    assert {"rows_copy16", "nearest_upsample2x_8", "bg_mul", "bg_add", "b_mul"} <= names


def test_reshape_transpose_squeeze(check_against_onnx):
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]),
             helper.make_node("Reshape", ["t", "shape"], ["r"]),
             helper.make_node("Relu", ["r"], ["y_r"]),
             helper.make_node("Flatten", ["x"], ["y_flat"], axis=1),
             helper.make_node("Unsqueeze", ["x", "uax"], ["u"]),
             helper.make_node("Sigmoid", ["u"], ["y_u"]),
             helper.make_node("Squeeze", ["u", "uax"], ["y_sq"])]
    inits = {"shape": np.array([1, 35, 3]), "uax": np.array([2])}
    check_against_onnx(nodes, {"x": rand(1, 3, 5, 7)}, ["y_r", "y_flat", "y_u", "y_sq"], inits)


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge"])
def test_pad(check_against_onnx, mode):
    node = helper.make_node("Pad", ["x", "pads", "val"], ["y"], mode=mode)
    inits = {"pads": np.array([0, 0, 1, 2, 0, 0, 2, 1]), "val": np.array(0.5, np.float32)}
    check_against_onnx([node], {"x": rand(1, 3, 5, 6)}, ["y"], inits)


@pytest.mark.parametrize("mode,transform", [
    ("nearest", "asymmetric"),
    ("linear", "half_pixel"),
    ("linear", "align_corners"),
    ("linear", "asymmetric"),
])
def test_resize(check_against_onnx, mode, transform):
    extra = {"nearest_mode": "floor"} if mode == "nearest" else {}
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], mode=mode,
                            coordinate_transformation_mode=transform, **extra)
    check_against_onnx([node], {"x": rand(1, 3, 5, 7)}, ["y"], {"scales": np.array([1, 1, 2, 2], np.float32)})


def test_elu_alpha_and_clamp_tensors_from_nnef_text(tmp_path):
    """nnef-tools drops Elu's alpha, so this graph is written as NNEF text and checked against float64 numpy."""
    from ocl_infer.engine import Engine
    from ocl_infer.engine.graph.dat import write_dat

    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "graph.nnef").write_text("""version 1.0;
graph g( x ) -> ( e, c, s, r, q, w )
{
    x = external<scalar>(shape = [2, 3, 4]);
    lo = variable<scalar>(shape = [1, 3], label = 'lo');
    e = elu(x, alpha = 0.7);
    c = clamp(x, lo, 0.5);
    s = sub(mul(x, 2.0), 1.5);
    r = rcp(x);
    q = rsqrt(abs(x));
    w = sqr(x);
}
""")
    lo = -rand(1, 3, positive=True)
    write_dat(tmp_path / "m" / "lo.dat", lo)
    x = rand(2, 3, 4)
    with Engine(tmp_path / "m", poison=True) as engine:
        out = engine.run({"x": x})
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(out["e"], np.where(x64 < 0, 0.7 * np.expm1(x64), x64), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["c"], np.minimum(np.maximum(x64, lo[..., None]), 0.5), rtol=1e-6)
    np.testing.assert_allclose(out["s"], x64 * 2 - 1.5, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out["r"], 1 / x64, rtol=1e-5)  # ONNX Reciprocal does not convert: checked here
    np.testing.assert_allclose(out["q"], 1 / np.sqrt(np.abs(x64)), rtol=1e-5)
    np.testing.assert_allclose(out["w"], x64 * x64, rtol=1e-6)
