"""The pointwise conv kernel (1x1 stride-1 convs as a GEMM over the flattened map, vectorised over pixels)
against onnxruntime: pixel and channel tails, maps under 16 pixels, batch, fused SiLU and residual adds, 1-D
convs, fp16 weights; both kernel families run each case (the GPU family keeps conv_gemm), and the CPU family's
plan must really pick the pointwise kernel."""

import numpy as np
import pytest
from onnx import helper
from onnx_models import convert, make_model, normal_floats

from ocl_infer.engine.graph import load_graph
from ocl_infer.engine.plan import DeviceFacts, make_plan

rng = np.random.default_rng(1818)
rand = normal_floats(rng)


def pointwise(ic: int, oc: int, act: str | None, residual: str | None, rank: int = 4,
              ) -> tuple[list, dict[str, np.ndarray], str]:
    """conv 1x1 [+ SiLU / relu] [+ add of the input projected by another 1x1 conv (computed first)]."""
    k = [1] * (rank - 2)
    nodes = []
    if residual:  # the other addend: computed before the conv under test, so the add fuses into its epilogue
        nodes.append(helper.make_node("Conv", ["x", "w2", "b2"], ["r"], kernel_shape=k))
    nodes.append(helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=k))
    last = "c"
    if act == "silu":
        nodes += [helper.make_node("Sigmoid", ["c"], ["s"]), helper.make_node("Mul", ["c", "s"], ["a"])]
        last = "a"
    if residual == "pre":  # add, then relu (ResNet's order)
        nodes += [helper.make_node("Add", ["c", "r"], ["t"]), helper.make_node("Relu", ["t"], ["y"])]
    elif residual == "post":
        nodes.append(helper.make_node("Add", [last, "r"], ["y"]))
    else:
        nodes.append(helper.make_node("Identity", [last], ["y"]))
    inits = {"w": rand(oc, ic, *k) / np.float32(np.sqrt(ic)), "b": rand(oc)}
    if residual:
        inits.update(w2=rand(oc, ic, *k), b2=rand(oc))
    return nodes, inits, "y"


CASES = {  # name: (input shape, out channels, activation, residual)
    "pixel tail (420 px) and channel tail (35)": ((1, 48, 20, 21), 35, "silu", None),
    "map under 16 pixels": ((1, 32, 3, 5), 16, "silu", None),
    "13x13: the last block's vectors moved back": ((1, 256, 13, 13), 64, None, None),
    "batch 2, SiLU then the residual (C2f's bottleneck order)": ((2, 16, 10, 12), 24, "silu", "post"),
    "residual before a relu": ((1, 24, 9, 9), 40, None, "pre"),
    "one output channel (the DFL's 16 -> 1)": ((1, 16, 4, 50), 1, None, None),
    "1-D conv": ((1, 16, 37), 20, "silu", None),
}


@pytest.mark.parametrize("name", list(CASES))
def test_pointwise_matches_onnxruntime(check_against_onnx, tmp_path, name):
    shape, oc, act, residual = CASES[name]
    nodes, inits, last = pointwise(shape[1], oc, act, residual, rank=len(shape))
    plan = make_plan(load_graph(convert(make_model(nodes, {"x": shape}, [last], inits, 13), tmp_path / "p.nnef")),
                     DeviceFacts(type="cpu"))
    convs = [s for s in plan.steps if s.kind == "conv"]
    assert convs[-1].variant == "pointwise" and convs[-1].attrs.get("residual") == residual
    scale = 10.0 if act == "silu" else 1.0  # conv outputs well below -88 too (the fused sigmoid's exp)
    check_against_onnx(nodes, {"x": rand(*shape, scale=scale)}, [last], inits)


@pytest.mark.parametrize("shape,pads,stride", [((1, 16, 8, 8), [1, 1, 1, 1], [1, 1]), ((1, 16, 8, 8), [0] * 4, [2, 2])])
def test_padded_or_strided_1x1_stays_with_covec(tmp_path, shape, pads, stride):
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[1, 1], pads=pads, strides=stride)]
    model = make_model(nodes, {"x": shape}, ["y"], {"w": rand(32, 16, 1, 1), "b": rand(32)}, 13)
    plan = make_plan(load_graph(convert(model, tmp_path / "p.nnef")), DeviceFacts(type="cpu"))
    assert [s.variant for s in plan.steps] == ["covec"]


@pytest.mark.parametrize("oc", [48, 6])  # 8 weights per item as one half vector; 6 (= OC) one by one
def test_pointwise_fp16_weights_match_within_their_rounding(tmp_path, oc):
    from onnx_models import rel_error, run_onnx

    from ocl_infer.engine import Engine

    nodes, inits, last = pointwise(64, oc, "silu", "post")
    model = make_model(nodes, {"x": (1, 64, 11, 13)}, [last], inits, 13)
    x = rand(1, 64, 11, 13)
    with Engine(convert(model, tmp_path / "p.nnef"), precision="fp16", kernels="cpu", poison=True) as engine:
        got = engine.run({"x": x})[last]
        steps = [s for s in engine.plan.steps if s.kind == "conv"]
        dtypes = {str(engine.plan.constants[s.inputs[1]].dtype) for s in steps}
    assert [s.variant for s in steps] == ["pointwise", "pointwise"] and dtypes == {"float16"}
    # half weights: about 2^-11 relative per weight; a float16 tensor read as float32 would be far off
    assert 1e-7 < rel_error(got, run_onnx(model, {"x": x})[last]) <= 2e-3
