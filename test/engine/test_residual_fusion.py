"""conv (+ activation) -> add(residual) fused into one conv step whose epilogue adds the residual, against
onnxruntime (output buffers NaN-poisoned), for each conv kernel that does it and both orders."""

import numpy as np
import pytest
from onnx import helper
from onnx_models import convert, make_model, normal_floats, rel_error, run_onnx

from ocl_infer.engine import Engine

rng = np.random.default_rng(77)


rand = normal_floats(rng)


def conv(name: str, x: str, y: str, ic: int, oc: int, k: int, inits: dict, stride: int = 1) -> helper.NodeProto:
    inits[f"{name}_w"] = rand(oc, ic, k, k) / np.float32(np.sqrt(ic * k * k))
    inits[f"{name}_b"] = rand(oc)
    return helper.make_node("Conv", [x, f"{name}_w", f"{name}_b"], [y], kernel_shape=[k, k],
                            pads=[k // 2] * 4, strides=[stride, stride])


def run(tmp_path, nodes, inits, shape):
    x = rand(*shape)
    model = make_model(nodes, {"x": shape}, ["y"], inits)
    with Engine(convert(model, tmp_path / "model.nnef"), poison=True) as engine:
        got = engine.run({"x": x})["y"]
        steps = [s for s in engine.plan.steps if s.variant != "alias"]
    return rel_error(got, run_onnx(model, {"x": x})["y"]), steps


@pytest.mark.parametrize("size,ch,variant", [(13, 128, "winograd"), (26, 64, "winograd4")])
def test_resnet_block_adds_before_the_relu(tmp_path, size, ch, variant):
    """conv -> relu -> conv -> add(x) -> relu: the second conv (Winograd) adds x, then the relu."""
    inits: dict = {}
    nodes = [conv("c1", "x", "a", ch, ch, 3, inits), helper.make_node("Relu", ["a"], ["ar"]),
             conv("c2", "ar", "b", ch, ch, 3, inits), helper.make_node("Add", ["b", "x"], ["s"]),
             helper.make_node("Relu", ["s"], ["y"])]
    err, steps = run(tmp_path, nodes, inits, (1, ch, size, size))
    assert err <= 1e-4
    assert [s.kind for s in steps] == ["conv", "conv"]
    assert steps[1].attrs["residual"] == "pre" and steps[1].attrs["activation"][0] == "relu"
    assert steps[1].variant == variant


def test_darknet_shortcut_adds_after_the_activation(tmp_path):
    """conv 1x1 -> leaky -> conv 3x3 -> leaky -> add(x): Darknet's shortcut, on the covec kernel."""
    inits: dict = {}
    nodes = [conv("c1", "x", "a", 16, 8, 1, inits), helper.make_node("LeakyRelu", ["a"], ["ar"], alpha=0.1),
             conv("c2", "ar", "b", 8, 16, 3, inits), helper.make_node("LeakyRelu", ["b"], ["br"], alpha=0.1),
             helper.make_node("Add", ["x", "br"], ["y"])]
    err, steps = run(tmp_path, nodes, inits, (1, 16, 20, 21))
    assert err <= 1e-4
    assert [s.kind for s in steps] == ["conv", "conv"]
    assert steps[1].attrs["residual"] == "post" and steps[1].variant == "covec"


def test_strided_conv_adds_a_pooled_shortcut_on_the_general_kernel(tmp_path):
    inits: dict = {}
    nodes = [helper.make_node("MaxPool", ["x"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             conv("c1", "x", "a", 8, 8, 3, inits, stride=2), helper.make_node("Add", ["a", "p"], ["y"])]
    err, steps = run(tmp_path, nodes, inits, (1, 8, 20, 20))
    assert err <= 1e-4
    assert [s.kind for s in steps] == ["max_pool", "conv"]
    assert steps[1].attrs["residual"] == "pre" and steps[1].variant == "blocked"


@pytest.mark.parametrize("later", [True, False])
def test_residual_not_fused_when_it_is_computed_after_the_conv(tmp_path, later):
    """add(conv(x), relu(x)) with the relu after the conv in graph order stays a separate add (the conv cannot
    read a tensor computed after it); with the relu first it is fused. Both are right."""
    inits: dict = {}
    relu = helper.make_node("Relu", ["x"], ["r"])
    c = conv("c1", "x", "a", 16, 16, 3, inits)
    nodes = [c, relu] if later else [relu, c]
    nodes.append(helper.make_node("Add", ["a", "r"], ["y"]))
    err, steps = run(tmp_path, nodes, inits, (1, 16, 12, 12))
    assert err <= 1e-4
    assert ("add" in [s.kind for s in steps]) == later
