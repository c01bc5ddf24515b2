"""SiLU (x * sigmoid(x), exported as Sigmoid + Mul after every conv of YOLOv5/v8/11) fused into the conv and
linear epilogues: one step instead of three, results against onnxruntime on every conv kernel that fuses it."""

import numpy as np
import pytest
from onnx import helper
from onnx_models import convert, make_model

from ocl_infer.engine.graph import load_graph
from ocl_infer.engine.plan import DeviceFacts, make_plan

rng = np.random.default_rng(11)


def silu_conv(ic: int, oc: int, k: int, groups: int = 1, stride: int = 1, pool: bool = False,
              mul_order: tuple[str, str] = ("c", "s")) -> tuple[list, dict[str, np.ndarray], str]:
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[k, k], pads=[k // 2] * 4,
                              strides=[stride, stride], group=groups),
             helper.make_node("Sigmoid", ["c"], ["s"]),
             helper.make_node("Mul", list(mul_order), ["y"])]
    last = "y"
    if pool:
        nodes.append(helper.make_node("MaxPool", ["y"], ["p"], kernel_shape=[2, 2], strides=[2, 2]))
        last = "p"
    inits = {"w": rng.standard_normal((oc, ic // groups, k, k)).astype(np.float32),
             "b": rng.standard_normal(oc).astype(np.float32)}
    return nodes, inits, last


CASES = {  # name: (input shape, out channels, kernel, groups, stride, pool)
    "general (few channels)": ((1, 3, 11, 10), 8, 3, 1, 1, False),
    "covec / gemm": ((1, 8, 12, 13), 24, 3, 1, 1, False),
    "winograd / gemm": ((1, 64, 10, 10), 32, 3, 1, 1, False),
    "strided": ((1, 8, 13, 12), 16, 3, 1, 2, False),
    "depthwise": ((1, 16, 9, 11), 16, 3, 16, 1, False),
    "1x1, then a pool that must not fuse": ((2, 16, 10, 10), 20, 1, 1, 1, True),
}


@pytest.mark.parametrize("name", list(CASES))
def test_silu_fused_matches_onnxruntime(check_against_onnx, name):
    shape, oc, k, groups, stride, pool = CASES[name]
    nodes, inits, last = silu_conv(shape[1], oc, k, groups, stride, pool,
                                   mul_order=("s", "c") if "covec" in name else ("c", "s"))
    check_against_onnx(nodes, {"x": rng.standard_normal(shape).astype(np.float32)}, [last], inits)


@pytest.mark.parametrize("act", ["Sigmoid", "SiLU"])
@pytest.mark.parametrize("name", [n for n in CASES if "pool" not in n])
def test_fused_sigmoid_is_finite_far_below_minus_88(check_against_onnx, name, act):
    # Conv outputs of real YOLOv8 frames reach -150; the fast-math builds once gave NaN below -88 (exp overflow)
    shape, oc, k, groups, stride, _ = CASES[name]
    nodes, inits, last = silu_conv(shape[1], oc, k, groups, stride)
    if act == "Sigmoid":
        nodes, last = nodes[:2], "s"
    scale = 100.0 / np.sqrt(shape[1] // groups * k * k)  # conv outputs with a standard deviation of about 100
    x = (scale * rng.standard_normal(shape)).astype(np.float32)
    check_against_onnx(nodes, {"x": x}, [last], inits)


def test_linear_silu_fused_matches_onnxruntime(check_against_onnx):
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["g"], transB=1), helper.make_node("Sigmoid", ["g"], ["s"]),
             helper.make_node("Mul", ["g", "s"], ["y"])]
    inits = {"w": rng.standard_normal((13, 37)).astype(np.float32), "b": rng.standard_normal(13).astype(np.float32)}
    check_against_onnx(nodes, {"x": rng.standard_normal((3, 37)).astype(np.float32)}, ["y"], inits)


@pytest.mark.parametrize("facts", [DeviceFacts(type="cpu"), DeviceFacts(type="gpu")], ids=["cpu", "gpu"])
def test_plan_fuses_silu_but_not_a_following_pool_or_a_shared_conv_output(tmp_path, facts):
    nodes, inits, last = silu_conv(8, 24, 3, pool=True)
    plan = make_plan(load_graph(convert(make_model(nodes, {"x": (1, 8, 12, 12)}, [last], inits, 13),
                                        tmp_path / "a.nnef")), facts)
    assert [s.kind for s in plan.steps] == ["conv", "max_pool"]  # silu is not monotonic: max first would be wrong
    assert plan.steps[0].attrs["activation"][0] == "silu" and not plan.steps[0].attrs.get("pool")
    # the conv output also read elsewhere: nothing fuses (the conv must write it)
    shared = [*silu_conv(8, 24, 3)[0], helper.make_node("Add", ["c", "y"], ["z"])]
    plan = make_plan(load_graph(convert(make_model(shared, {"x": (1, 8, 12, 12)}, ["z"], inits, 13),
                                        tmp_path / "b.nnef")), facts)
    assert [s.kind for s in plan.steps][:3] == ["conv", "sigmoid", "mul"]
