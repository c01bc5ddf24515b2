"""The pixels conv kernel (k x k convs with stride 1 or 2 and padding, vectorised over output pixels) against
onnxruntime: strides, pads, widths that are no multiple of 16, maps under 16 pixels, 3/16/64 input channels,
channel tails, SiLU on large negative inputs, residual adds before and after the activation, fp16 weights,
batch 2; both kernel families run each case (the GPU family keeps conv_gemm), and the CPU family's plan must
really pick the pixels kernel. The planner gives it only few-channel inputs (MAX_IC, the stem; SMALL_OC_* under
16 output channels), so the cases with more channels widen that limit: the kernel itself must be right for every
shape it accepts, 1 and 8 output channels included."""

import numpy as np
import pytest
from onnx import helper
from onnx_models import convert, make_model, normal_floats, rel_error, run_onnx

from ocl_infer.engine import Engine
from ocl_infer.engine.graph import load_graph
from ocl_infer.engine.kernels import conv_pixels
from ocl_infer.engine.kernels.conv_pixels import ConvPixels
from ocl_infer.engine.plan import DeviceFacts, make_plan

rng = np.random.default_rng(1819)
rand = normal_floats(rng)


def spatial(ic: int, oc: int, k: int, stride: int, pads: list[int], act: str | None, residual: str | None,
            ) -> tuple[list, dict[str, np.ndarray], str]:
    """conv k x k [+ SiLU / relu] [+ add of a tensor of the conv's output shape computed first: the same conv
    with other weights, so the add fuses into the epilogue of the conv under test]."""
    conv = dict(kernel_shape=[k, k], strides=[stride, stride], pads=pads)
    nodes = []
    if residual:
        nodes.append(helper.make_node("Conv", ["x", "w2", "b2"], ["r"], **conv))
    nodes.append(helper.make_node("Conv", ["x", "w", "b"], ["c"], **conv))
    last = "c"
    if act == "silu":
        nodes += [helper.make_node("Sigmoid", ["c"], ["s"]), helper.make_node("Mul", ["c", "s"], ["a"])]
        last = "a"
    elif act == "relu" and residual != "pre":
        nodes.append(helper.make_node("Relu", ["c"], ["a"]))
        last = "a"
    if residual == "pre":  # add, then relu (ResNet's order)
        nodes += [helper.make_node("Add", ["c", "r"], ["t"]), helper.make_node("Relu", ["t"], ["y"])]
    elif residual == "post":
        nodes.append(helper.make_node("Add", [last, "r"], ["y"]))
    else:
        nodes.append(helper.make_node("Identity", [last], ["y"]))
    fan = ic * k * k
    inits = {"w": rand(oc, ic, k, k) / np.float32(np.sqrt(fan)), "b": rand(oc)}
    if residual:
        inits.update(w2=rand(oc, ic, k, k) / np.float32(np.sqrt(fan)), b2=rand(oc))
    return nodes, inits, "y"


P1 = [1, 1, 1, 1]
CASES = {  # name: (input shape, out channels, k, stride, pads, activation, residual)
    "stem: 3 -> 16, stride 2, 3x3, SiLU": ((1, 3, 64, 64), 16, 3, 2, P1, "silu", None),
    "3 channels, stride 1, OC tail (20 of 2 x 16)": ((1, 3, 17, 35), 20, 3, 1, P1, "silu", None),
    "stride 2, odd input width (right edge clamped)": ((1, 16, 37, 45), 32, 3, 2, P1, "silu", None),
    "stride 2, 64 channels, OC tail (20)": ((1, 64, 20, 34), 20, 3, 2, P1, None, None),
    "stride 1, 3x3, width 50 (last vector moved back)": ((1, 16, 9, 50), 32, 3, 1, P1, "silu", None),
    "stride 1, 5x5, pads 2": ((1, 16, 12, 40), 24, 5, 1, [2, 2, 2, 2], "relu", None),
    "stride 2, 5x5, asymmetric pads": ((1, 8, 21, 39), 16, 5, 2, [2, 1, 1, 2], None, None),
    "unpadded 3x3": ((1, 16, 10, 36), 16, 3, 1, [0] * 4, "relu", None),
    "map under 16 pixels wide": ((1, 16, 6, 7), 16, 3, 1, P1, "silu", None),
    "tiny stride-2 map (3x3 out)": ((1, 32, 5, 5), 24, 3, 2, P1, "silu", None),
    "batch 2, SiLU then the residual (C2f's bottleneck order)": ((2, 16, 10, 33), 16, 3, 1, P1, "silu", "post"),
    "residual before a relu": ((1, 16, 9, 20), 40, 3, 1, P1, None, "pre"),
    "residual on a narrow map": ((1, 16, 5, 9), 16, 3, 1, P1, "silu", "post"),
    "8 output channels (one 8-channel block; YOLO11n's C3k2 bottleneck)": ((1, 16, 7, 52), 8, 3, 1, P1, "silu", None),
    "one output channel, stride 2": ((1, 12, 9, 100), 1, 3, 2, P1, "relu", None),
}


@pytest.mark.parametrize("name", list(CASES))
def test_pixels_matches_onnxruntime(check_against_onnx, tmp_path, monkeypatch, name):
    shape, oc, k, stride, pads, act, residual = CASES[name]
    monkeypatch.setattr(conv_pixels, "MAX_IC", 64)
    nodes, inits, last = spatial(shape[1], oc, k, stride, pads, act, residual)
    plan = make_plan(load_graph(convert(make_model(nodes, {"x": shape}, [last], inits, 13), tmp_path / "p.nnef")),
                     DeviceFacts(type="cpu"))
    convs = [s for s in plan.steps if s.kind == "conv"]
    assert convs[-1].variant == "pixels" and convs[-1].attrs.get("residual") == residual
    scale = 10.0 if act == "silu" else 1.0  # conv outputs well below -88 too (the fused sigmoid's exp)
    check_against_onnx(nodes, {"x": rand(*shape, scale=scale)}, [last], inits)


def test_every_tuning_blocking_matches(tmp_path, monkeypatch):
    """The tuner's blockings (OB x NPV), each forced in place of the rule, on a stride-2 layer with an OC tail
    and a row that is no multiple of the vectors."""
    monkeypatch.setattr(conv_pixels, "MAX_IC", 64)
    nodes, inits, last = spatial(16, 24, 3, 2, P1, "silu", None)
    model = make_model(nodes, {"x": (1, 16, 19, 83)}, [last], inits, 13)
    x = rand(1, 16, 19, 83, scale=4.0)
    want = run_onnx(model, {"x": x})[last]
    path = convert(model, tmp_path / "p.nnef")
    plan = make_plan(load_graph(path), DeviceFacts(type="cpu"))
    step = next(s for s in plan.steps if s.kind == "conv")
    blockings = [tuple(c["blocking"]) for c in ConvPixels.candidates(step, plan.shapes)]
    assert len(blockings) > 3
    for blocking in blockings:
        monkeypatch.setattr(conv_pixels, "pixels_blocking", lambda oc, ow, b=blocking: b)
        with Engine(path, kernels="cpu", poison=True) as engine:
            assert [s.variant for s in engine.plan.steps if s.kind == "conv"] == ["pixels"]
            assert rel_error(engine.run({"x": x})[last], want) <= 1e-4, blocking


def test_pixels_fp16_weights_match_within_their_rounding(tmp_path):
    nodes, inits, last = spatial(3, 16, 3, 2, P1, "silu", None)
    model = make_model(nodes, {"x": (1, 3, 30, 41)}, [last], inits, 13)
    x = rand(1, 3, 30, 41)
    with Engine(convert(model, tmp_path / "p.nnef"), precision="fp16", kernels="cpu", poison=True) as engine:
        got = engine.run({"x": x})[last]
        steps = [s for s in engine.plan.steps if s.kind == "conv"]
        dtypes = {str(engine.plan.constants[s.inputs[1]].dtype) for s in steps}
    assert [s.variant for s in steps] == ["pixels"] and dtypes == {"float16"}
    # half weights: about 2^-11 relative per weight; a float16 tensor read as float32 would be far off
    assert 1e-7 < rel_error(got, run_onnx(model, {"x": x})[last]) <= 2e-3


@pytest.mark.parametrize("ic,oc,stride,width,variant", [
    (3, 16, 2, 32, "pixels"),   # YOLOv8n/YOLO11n's stem: measured 1.5x faster than covec in the model
    (16, 32, 2, 32, "covec"),   # the next downsampler: covec as fast or faster
    (64, 64, 1, 32, "winograd4"),  # Winograd's 3x3s stay Winograd's, even where pixels would take the shape
    (16, 8, 1, 52, "pixels"),   # under 16 output channels (covec cannot): few inputs on a wide map
    (16, 8, 1, 32, "blocked"),  # ... not a narrow one
    (64, 8, 1, 52, "blocked"),  # ... nor many inputs
])
def test_planner_gives_pixels_the_stem_and_few_channel_maps(tmp_path, monkeypatch, ic, oc, stride, width, variant):
    if variant.startswith("winograd"):
        monkeypatch.setattr(conv_pixels, "MAX_IC", 64)
    nodes, inits, last = spatial(ic, oc, 3, stride, P1, "silu", None)
    model = make_model(nodes, {"x": (1, ic, 32, width)}, [last], inits, 13)
    plan = make_plan(load_graph(convert(model, tmp_path / "p.nnef")), DeviceFacts(type="cpu"))
    assert [s.variant for s in plan.steps if s.kind == "conv"] == [variant]
