"""The ops of end-to-end detection heads (YOLOv10/YOLO26: TopK -> GatherElements/Gather, Div/Mod for the class),
converted ONNX -> NNEF through our custom fragments and checked against onnxruntime for both kernel families;
and the refusal of an op we still cannot run, with the op named (issue 18).

Integer tensors cannot be graph inputs or outputs of `check_against_onnx` (float only), so index tensors are
produced inside the graph (TopK, Cast) or come as int64 initializers, and leave it through a Cast to float."""

from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper
from onnx_models import convert, make_model

from ocl_infer.errors import ModelError

rng = np.random.default_rng(20261205)


@pytest.fixture(autouse=True)
def _seeded() -> None:
    """The same data for a test whether it runs alone or with the others."""
    global rng
    rng = np.random.default_rng(20261205)


def distinct(*shape: int) -> np.ndarray:
    """Distinct values in random order (TopK's order is then unique), negatives and positives."""
    n = int(np.prod(shape))
    return (rng.permutation(n).astype(np.float32) - n / 2).reshape(shape) / 8


def to_float(name: str) -> helper.NodeProto:
    return helper.make_node("Cast", [name], [f"{name}_f"], to=TensorProto.FLOAT)


@pytest.mark.parametrize("shape,axis,k,largest", [((2, 37), -1, 5, 1), ((2, 37), 1, 37, 0), ((2, 29, 3), 1, 7, 1),
                                                   ((3, 4, 5), 0, 2, 0)])
def test_top_k(check_against_onnx, shape: tuple[int, ...], axis: int, k: int, largest: int) -> None:
    """Values and indices, sorted best first, on the last, a middle and the first axis, largest and smallest."""
    nodes = [helper.make_node("TopK", ["x", "k"], ["v", "i"], axis=axis, largest=largest, sorted=1), to_float("i")]
    check_against_onnx(nodes, {"x": distinct(*shape)}, ["v", "i_f"], {"k": np.array([k], np.int64)})


def test_top_k_ties_keep_the_lower_index(check_against_onnx) -> None:
    """onnxruntime keeps the lower index among equal values, also when the k-th value is a tie; -0 ties +0."""
    x = np.array([[3, 1, 3, 2, 3, 1, 0, 2, 2, -0.0, 0, 5, 1, 2, 0]], np.float32)
    nodes = [helper.make_node("TopK", ["x", "k"], ["v", "i"], axis=-1), to_float("i"),
             helper.make_node("TopK", ["x", "k2"], ["v2", "i2"], axis=-1, largest=0), to_float("i2")]
    check_against_onnx(nodes, {"x": x}, ["v", "i_f", "v2", "i2_f"],
                       {"k": np.array([6], np.int64), "k2": np.array([4], np.int64)})


@pytest.mark.parametrize("axis,same_dims", [(0, False), (1, False), (2, False), (1, True)])
def test_gather_elements(check_against_onnx, axis: int, same_dims: bool) -> None:
    """Constant int64 indices, negative ones included, along every axis; the index shape differs from the data's,
    or only along the axis (the rows kernel of detection heads)."""
    x = rng.standard_normal((4, 5, 6)).astype(np.float32)
    idx_shape = [4, 3, 6] if same_dims else [3, 4, 5]
    idx = rng.integers(-x.shape[axis], x.shape[axis], idx_shape).astype(np.int64)
    nodes = [helper.make_node("GatherElements", ["x", "idx"], ["y"], axis=axis)]
    check_against_onnx(nodes, {"x": x}, ["y"], {"idx": idx})


def test_integer_div_mod_and_gather(check_against_onnx) -> None:
    """Integer tensors made from floats (Cast truncates), then ONNX's integer Div (truncating), Mod with fmod 0
    (the divisor's sign) and 1 (the dividend's), a float Mod, and Gather with the computed indices."""
    x = np.array([[-7.9, -7, -6.5, -1, 0, 1, 5.5, 7, 8, 13, 22, 23]], np.float32)
    table = rng.standard_normal((5, 3)).astype(np.float32)
    nodes = [helper.make_node("Cast", ["x"], ["xi"], to=TensorProto.INT64),
             helper.make_node("Div", ["xi", "three"], ["q"]), to_float("q"),
             helper.make_node("Mod", ["xi", "three"], ["r"], fmod=0), to_float("r"),
             helper.make_node("Mod", ["xi", "minus4"], ["rn"], fmod=0), to_float("rn"),
             helper.make_node("Mod", ["xi", "minus4"], ["rc"], fmod=1), to_float("rc"),
             helper.make_node("Mod", ["x", "two5"], ["rf"], fmod=1),
             helper.make_node("Mod", ["xi", "five"], ["row"], fmod=0),
             helper.make_node("Mul", ["row", "one"], ["row1"]),
             helper.make_node("Add", ["row1", "zero"], ["row2"]),
             helper.make_node("Sub", ["row2", "zero"], ["row3"]),
             helper.make_node("Gather", ["t", "row3"], ["y"], axis=0)]
    inits = {"three": np.array(3, np.int64), "minus4": np.array(-4, np.int64), "two5": np.array(2.5, np.float32),
             "five": np.array(5, np.int64), "one": np.array(1, np.int64), "zero": np.array(0, np.int64)}
    check_against_onnx(nodes, {"x": x, "t": table},
                       ["q_f", "r_f", "rn_f", "rc_f", "rf", "y"], inits)


def end_to_end_head(anchors: int, nc: int, k: int, boxes_by: str) -> tuple[list, dict[str, np.ndarray]]:
    """Ultralytics' end-to-end (NMS-free) postprocess of YOLOv10/YOLO26: preds [1, A, 4 + nc] -> [1, k, 6] (box,
    score, class). TopK over each anchor's best score, GatherElements of the scores, TopK over the flattened
    scores, Div/Mod by nc for anchor and class, then the boxes of those anchors: `boxes_by` "gather_elements"
    is the graph ultralytics 8.4.190 exports (opset 13, nms=False; node for node, checked against full YOLOv10n
    and YOLO26n exports), "gather" the older `boxes[i, index // nc]` (torch's index export: linear index, Gather)."""
    i64 = lambda v: np.asarray(v, np.int64)  # noqa: E731
    nodes = [
        helper.make_node("Split", ["preds", "split"], ["boxes", "scores"], axis=-1),
        helper.make_node("ReduceMax", ["scores"], ["best"], axes=[-1], keepdims=0),
        helper.make_node("TopK", ["best", "k"], ["_", "top"], axis=1, largest=1, sorted=1),
        helper.make_node("Unsqueeze", ["top", "two"], ["top_u"]),
        helper.make_node("Expand", ["top_u", "shape_c"], ["topc"]),
        helper.make_node("GatherElements", ["scores", "topc"], ["scores_k"], axis=1),
        helper.make_node("Flatten", ["scores_k"], ["flat"], axis=1),
        helper.make_node("TopK", ["flat", "k"], ["score", "index"], axis=1, largest=1, sorted=1),
        helper.make_node("Unsqueeze", ["score", "two"], ["score_u"]),
        helper.make_node("Mod", ["index", "nc"], ["cls"], fmod=0),
        helper.make_node("Div", ["index", "nc"], ["anchor"]),
        helper.make_node("Unsqueeze", ["cls", "two"], ["cls_u"]),
    ]
    inits = {"split": i64([4, nc]), "k": i64([k]), "two": i64([2]), "shape_c": i64([1, 1, nc]), "nc": i64(nc)}
    if boxes_by == "gather_elements":  # the anchor's index from the first TopK, then its 4 coordinates
        nodes += [helper.make_node("GatherElements", ["top", "anchor"], ["top_a"], axis=1),
                  helper.make_node("Cast", ["cls_u"], ["cls_f"], to=TensorProto.FLOAT),
                  helper.make_node("Unsqueeze", ["top_a", "two"], ["top_au"]),
                  helper.make_node("Expand", ["top_au", "shape_4"], ["top4"]),
                  helper.make_node("GatherElements", ["boxes", "top4"], ["box"], axis=1)]
        inits["shape_4"] = i64([1, 1, 4])
    else:  # boxes of the first TopK's anchors, rows [k, 4] indexed by batch * k + anchor
        nodes += [helper.make_node("Expand", ["top_u", "shape_4"], ["top4"]),
                  helper.make_node("GatherElements", ["boxes", "top4"], ["boxes_k"], axis=1),
                  helper.make_node("Reshape", ["boxes_k", "rows"], ["box_rows"]),
                  helper.make_node("Mul", ["batch", "kk"], ["batch_off"]),
                  helper.make_node("Add", ["batch_off", "anchor"], ["linear"]),
                  helper.make_node("Gather", ["box_rows", "linear"], ["box"], axis=0),
                  helper.make_node("Cast", ["cls_u"], ["cls_f"], to=TensorProto.FLOAT)]
        inits.update(shape_4=i64([1, 1, 4]), rows=i64([-1, 4]), batch=i64([[0]]), kk=i64(k))
    nodes.append(helper.make_node("Concat", ["box", "score_u", "cls_f"], ["out"], axis=-1))
    return nodes, inits


@pytest.mark.parametrize("boxes_by", ["gather_elements", "gather"])
def test_end_to_end_detection_head(check_against_onnx, boxes_by: str) -> None:
    """The YOLOv10/YOLO26 end-to-end head at full width (80 classes, 300 detections) over 420 anchors, with
    distinct scores, to 1e-4. (On a whole model, scores closer than float noise may swap places between
    engines: that is TopK's order, not an error, so the head is checked on identical inputs.)"""
    anchors, nc, k = 420, 80, 300
    nodes, inits = end_to_end_head(anchors, nc, k, boxes_by)
    boxes = rng.uniform(0, 416, (1, anchors, 4)).astype(np.float32)
    scores = (rng.permutation(anchors * nc).astype(np.float32) / (anchors * nc)).reshape(1, anchors, nc)
    errors = check_against_onnx(nodes, {"preds": np.concatenate([boxes, scores], axis=2)}, ["out"], inits)
    assert errors["out"] <= 1e-4


def test_op_without_conversion_is_refused_by_name(tmp_path: Path) -> None:
    """An op neither nnef-tools nor our fragments convert fails conversion with a ModelError naming it."""
    nodes = [helper.make_node("TopK", ["x", "k"], ["v", "i"], axis=-1),
             helper.make_node("Hardmax", ["v"], ["y"], axis=-1)]
    model = make_model(nodes, {"x": (1, 8)}, ["y"], {"k": np.array([4], np.int64)})
    with pytest.raises(ModelError, match="Hardmax"):
        convert(model, tmp_path / "m.nnef")
    assert not (tmp_path / "m.nnef").exists()


@pytest.mark.parametrize("axis,bias", [(-1, True), (1, False)])
def test_layer_normalization(check_against_onnx, axis: int, bias: bool) -> None:
    """ONNX LayerNormalization (opset 17) over the last axis with scale and bias, and over the last two without
    bias; an offset mean makes a one-pass variance lose digits, which the two-pass kernel does not."""
    x = (rng.standard_normal((2, 5, 16)) * 3 + 50).astype(np.float32)
    norm_shape = x.shape[axis:]
    inits = {"scale": rng.standard_normal(norm_shape).astype(np.float32)}
    if bias:
        inits["bias"] = rng.standard_normal(norm_shape).astype(np.float32)
    node = helper.make_node("LayerNormalization", ["x", "scale", *(["bias"] if bias else [])], ["y"], axis=axis,
                            epsilon=1e-5)
    check_against_onnx([node], {"x": x}, ["y"], inits, opset=17)


def test_erf_and_exact_gelu(check_against_onnx) -> None:
    """Erf alone and in GELU as torch exports it (x * 0.5 * (1 + erf(x / sqrt 2))): transformer MLPs."""
    x = np.linspace(-5, 5, 2 * 3 * 40, dtype=np.float32).reshape(2, 3, 40)
    nodes = [helper.make_node("Erf", ["x"], ["e"]),
             helper.make_node("Div", ["x", "sqrt2"], ["xs"]), helper.make_node("Erf", ["xs"], ["es"]),
             helper.make_node("Add", ["es", "one"], ["e1"]), helper.make_node("Mul", ["x", "e1"], ["xe"]),
             helper.make_node("Mul", ["xe", "half"], ["gelu"])]
    inits = {"sqrt2": np.array(np.sqrt(2), np.float32), "one": np.array(1, np.float32),
             "half": np.array(0.5, np.float32)}
    check_against_onnx(nodes, {"x": x}, ["e", "gelu"], inits)


def test_infinite_constants(check_against_onnx) -> None:
    """±inf constants as detectors use them: invalid anchors set to inf before a sigmoid (RT-DETR), an attention
    mask of -inf before a softmax, Clip without an upper bound, a Constant node and a Max against -inf."""
    x = rng.standard_normal((1, 6, 8)).astype(np.float32)
    anchors = rng.standard_normal((1, 6, 8)).astype(np.float32)
    anchors[0, ::2, 1::3] = np.inf
    mask = np.where(np.triu(np.ones((8, 8), bool), 1), -np.inf, 0).astype(np.float32)[None, :6, :]
    nodes = [helper.make_node("Add", ["x", "anchors"], ["a"]), helper.make_node("Sigmoid", ["a"], ["boxes"]),
             helper.make_node("Add", ["x", "mask"], ["m"]), helper.make_node("Softmax", ["m"], ["attn"], axis=-1),
             helper.make_node("Clip", ["x", "zero", "inf"], ["relu"]),
             helper.make_node("Constant", [], ["neg_inf"], value=helper.make_tensor("v", TensorProto.FLOAT, [],
                                                                                     [-np.inf])),
             helper.make_node("Max", ["x", "neg_inf"], ["same"])]
    inits = {"anchors": anchors, "mask": mask, "zero": np.array(0, np.float32), "inf": np.array(np.inf, np.float32)}
    check_against_onnx(nodes, {"x": x}, ["boxes", "attn", "relu", "same"], inits)


@pytest.mark.parametrize("mode,padding,align", [("bilinear", "zeros", 0), ("bilinear", "border", 1),
                                                ("nearest", "reflection", 0), ("bilinear", "reflection", 1)])
def test_grid_sample(check_against_onnx, mode: str, padding: str, align: int) -> None:
    """ONNX GridSample (opset 16) with a grid reaching past the borders, as RT-DETR's deformable attention
    samples; nearest's grid avoids exact half-pixel positions (whose rounding is a tie)."""
    x = rng.standard_normal((2, 3, 5, 7)).astype(np.float32)
    grid = rng.uniform(-1.3, 1.3, (2, 4, 6, 2)).astype(np.float32)
    node = helper.make_node("GridSample", ["x", "grid"], ["y"], mode=mode, padding_mode=padding, align_corners=align)
    check_against_onnx([node], {"x": x, "grid": grid}, ["y"], opset=16)


def rt_detr_head(queries: int, nc: int, k: int) -> tuple[list, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """RT-DETR's postprocess as ultralytics 8.4.190 exports it: sigmoid scores flattened, TopK, then torch's
    floor division of the indices (Div, and Less/Xor/Equal(Mod)/Not/And/Where/Sub fixing negative quotients:
    logical tensors) and the remainder as index - quotient * nc; boxes by GatherElements. Nodes, initializers
    (a boolean one among them) and inputs."""
    i64 = lambda v: np.asarray(v, np.int64)  # noqa: E731
    nodes = [
        helper.make_node("Sigmoid", ["logits"], ["sig"]),
        helper.make_node("Flatten", ["sig"], ["flat"], axis=1),
        helper.make_node("TopK", ["flat", "k"], ["score", "index"], axis=1, largest=1, sorted=1),
        helper.make_node("Div", ["index", "nc"], ["quot"]),
        helper.make_node("Less", ["index", "zero"], ["negative"]),
        helper.make_node("Mod", ["index", "nc"], ["rem"], fmod=0),
        helper.make_node("Xor", ["negative", "false"], ["sign_differs"]),
        helper.make_node("Equal", ["rem", "zero"], ["exact"]),
        helper.make_node("Sub", ["quot", "one"], ["quot_minus_1"]),
        helper.make_node("Not", ["exact"], ["inexact"]),
        helper.make_node("And", ["sign_differs", "inexact"], ["fix"]),
        helper.make_node("Where", ["fix", "quot_minus_1", "quot"], ["query"]),
        helper.make_node("Unsqueeze", ["query", "last"], ["query_u"]),
        helper.make_node("Mul", ["query", "nc"], ["base"]),
        helper.make_node("Expand", ["query_u", "shape_4"], ["query4"]),
        helper.make_node("Sub", ["index", "base"], ["cls"]),
        helper.make_node("Unsqueeze", ["cls", "two"], ["cls_u"]),
        helper.make_node("GatherElements", ["boxes", "query4"], ["box"], axis=1),
        helper.make_node("Cast", ["cls_u"], ["cls_f"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["score", "two"], ["score_u"]),
        helper.make_node("Concat", ["box", "score_u", "cls_f"], ["out"], axis=-1)]
    inits = {"k": i64([k]), "nc": i64(nc), "zero": i64(0), "one": i64(1), "false": np.array(False),
             "last": i64([-1]), "two": i64([2]), "shape_4": i64([1, 1, 4])}
    logits = (rng.permutation(queries * nc).astype(np.float32) / 400 - 5).reshape(1, queries, nc)
    boxes = rng.uniform(0, 1, (1, queries, 4)).astype(np.float32)
    return nodes, inits, {"logits": logits, "boxes": boxes}


def test_rt_detr_head_with_floor_division(check_against_onnx) -> None:
    nodes, inits, feeds = rt_detr_head(50, 80, 300)
    check_against_onnx(nodes, feeds, ["out"], inits)


def test_saved_graph_keeps_custom_fragments_and_types(tmp_path: Path) -> None:
    """Engine.save's writer declares the custom fragments it uses, writes generic types (mod<integer>) and
    integer/logical variables as such: the saved RT-DETR head loads (also in nnef's own reader) and runs the same."""
    import nnef

    from ocl_infer.engine import Engine
    from ocl_infer.engine.graph import load_graph, save_graph

    nodes, inits, feeds = rt_detr_head(20, 8, 40)
    model = make_model(nodes, {k: v.shape for k, v in feeds.items()}, ["out"], inits)
    original = convert(model, tmp_path / "m.nnef")
    saved = save_graph(load_graph(original), tmp_path / "saved.nnef")
    read = [t.data for t in nnef.load_graph(str(saved)).tensors.values() if isinstance(t.data, np.ndarray)]
    assert {a.dtype for a in read} >= {np.dtype(np.int32), np.dtype(np.bool_)}  # the variables' own types
    with Engine(original) as a, Engine(saved) as b:
        np.testing.assert_array_equal(a.run(feeds)["out"], b.run(feeds)["out"])


def test_logic_casts_and_converter_fixes(check_against_onnx) -> None:
    """Float comparisons, Cast to bool and back, Where on floats; and three graphs nnef-tools converts wrongly
    or not at all: Flatten at axis 2 (it kept the leading dims), Unsqueeze with unsorted axes (it inserted them
    in the order given), ReduceSum with its axes as an input (opset 13) and ReduceMax over axis -1."""
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    x[0, 0, :2] = 0  # Cast to bool of zeros
    nodes = [helper.make_node("Greater", ["x", "half"], ["gt"]),
             helper.make_node("LessOrEqual", ["x", "y"], ["le"]),
             helper.make_node("Or", ["gt", "le"], ["either"]),
             helper.make_node("Where", ["either", "x", "y"], ["picked"]),
             helper.make_node("Cast", ["x"], ["truthy"], to=TensorProto.BOOL),
             helper.make_node("Cast", ["truthy"], ["truthy_f"], to=TensorProto.FLOAT),
             helper.make_node("Flatten", ["x"], ["flat2"], axis=2),
             helper.make_node("Unsqueeze", ["x", "axes"], ["unsq"]),
             helper.make_node("ReduceSum", ["x", "sum_axes"], ["sum"], keepdims=0),
             helper.make_node("ReduceMax", ["x"], ["max"], axes=[-1], keepdims=0)]
    inits = {"half": np.array(0.5, np.float32), "axes": np.array([3, 1], np.int64),
             "sum_axes": np.array([-1], np.int64)}
    check_against_onnx(nodes, {"x": x, "y": rng.standard_normal((2, 3, 4)).astype(np.float32)},
                       ["picked", "truthy_f", "flat2", "unsq", "sum", "max"], inits)


def test_logical_tensor_file_reads_as_zeros_and_ones(tmp_path: Path) -> None:
    """A logical `.dat` (bits packed, as nnef-tools writes boolean initializers) reads as 0/1 floats."""
    import nnef

    from ocl_infer.engine.graph.dat import read_dat

    bits = rng.random((3, 5)) > 0.5
    with (tmp_path / "b.dat").open("wb") as f:
        nnef.write_tensor(f, bits)
    got = read_dat(tmp_path / "b.dat", (3, 5), "b")
    assert got.dtype == np.float32 and np.array_equal(got, bits.astype(np.float32))


def test_reductions_with_axes_as_input_opset_18(check_against_onnx) -> None:
    """From opset 18 every ONNX reduction takes its axes as an input (nnef-tools reads only the attribute)."""
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    nodes = [helper.make_node("ReduceMean", ["x", "last"], ["mean"], keepdims=1),
             helper.make_node("ReduceMax", ["x", "outer"], ["max"], keepdims=0),
             helper.make_node("ReduceMin", ["x", "last"], ["min"], keepdims=0)]
    inits = {"last": np.array([-1], np.int64), "outer": np.array([0, 2], np.int64)}
    check_against_onnx(nodes, {"x": x}, ["mean", "max", "min"], inits, opset=18)


def test_top_k_work_group_fits_the_device() -> None:
    """The select pass's work-group follows the family, within the device's limit (plan only, no device)."""
    from types import MappingProxyType

    from ocl_infer.engine.kernels.indexing import TopK
    from ocl_infer.engine.plan.model import DeviceFacts, Step

    step = Step("top_k", "", ("x",), ("v", "i"), MappingProxyType({"k": 3, "axis": 1}), "top_k")
    local = {(family, limit): TopK.device_rule(step, {"x": (1, 50)}, DeviceFacts(family=family,
                                                                                 max_work_group_size=limit)).attrs["local"]
             for family in ("cpu", "gpu") for limit in (64, 1024)}
    assert local == {("cpu", 64): 16, ("cpu", 1024): 16, ("gpu", 64): 64, ("gpu", 1024): 256}
