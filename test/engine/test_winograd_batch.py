"""Winograd convs (F(2x2,3x3) `winograd`, F(4x4,3x3) `winograd4`) at batch N > 1: the batch's images are more
tiles of one GEMM. Against onnxruntime with NaN-poisoned buffers, both kernel families (the GPU family has no
Winograd: its `gemm` conv must take the batch as well), asserting the variant the planner chose; the fused
residual add and fp16 storage at batch N; the tuner's candidates at batch N. Also run on Oclgrind
(test_oclgrind.py: bounds and races of the batched transforms)."""

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from onnx import helper
from onnx_models import convert, make_model, normal_floats, rel_error, run_onnx

from ocl_infer.engine import Engine

rng = np.random.default_rng(16)


rand = normal_floats(rng)


def conv_model(shape: tuple[int, ...], oc: int, act: str | None, residual: str | None) -> tuple[Any, dict]:
    """3x3 conv (pad 1) + activation; `residual` "pre" adds x before the activation, "post" after it."""
    ic = shape[1]
    inits = {"w": rand(oc, ic, 3, 3) / np.float32(np.sqrt(ic * 9)), "b": rand(oc)}
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])]
    last = "c"
    if residual == "pre":
        nodes.append(helper.make_node("Add", ["c", "x"], ["s"]))
        last = "s"
    if act:
        nodes.append(helper.make_node(act, [last], ["a"], **({"alpha": 0.1} if act == "LeakyRelu" else {})))
        last = "a"
    if residual == "post":
        nodes.append(helper.make_node("Add", ["x", last], ["s2"]))
        last = "s2"
    nodes.append(helper.make_node("Identity", [last], ["y"]))
    return make_model(nodes, {"x": shape}, ["y"], inits), inits


# (batch shape, OC, activation, residual, the CPU family's variant); tiles per image, and the batch's tiles as
# NT x GEMM items or rounded up to TP (the padding columns are zero-filled by the last image only)
CASES = [
    pytest.param((2, 128, 13, 13), 104, "LeakyRelu", None, "winograd", id="f2-13x13"),  # 98 -> TP 100; odd map
    pytest.param((3, 112, 6, 3), 112, "Tanh", None, "winograd", id="f2-pad"),  # 6/image, 18 -> TP 20 (NT 5)
    pytest.param((3, 128, 13, 13), 128, "LeakyRelu", "post", "winograd", id="f2-post"),  # Darknet shortcut order
    pytest.param((2, 64, 26, 26), 64, "Relu", "pre", "winograd4", id="f4-26x26-pre"),  # ResNet order; last half out
    pytest.param((3, 64, 20, 19), 72, "LeakyRelu", None, "winograd4", id="f4-20x19"),  # 25/image, 75 -> TP 76
    pytest.param((3, 64, 8, 12), 64, "Relu", "pre", "winograd4", id="f4-pad-pre"),  # 6/image, 18 -> TP 20 (NT 4)
]
# the cases small enough for Oclgrind (test_oclgrind.py runs them, CPU family: bounds and races of the batch)
OCLGRIND_CASES = ("f2-pad-cpu", "f4-pad-pre-cpu")


@pytest.mark.parametrize("kernels", ["cpu", "gpu"])
@pytest.mark.parametrize("shape,oc,act,residual,variant", CASES)
def test_winograd_at_batch_n_matches_onnxruntime(tmp_path: Path, kernels: str, shape: tuple[int, ...], oc: int,
                                                 act: str | None, residual: str | None, variant: str) -> None:
    model, _ = conv_model(shape, oc, act, residual)
    x = rand(*shape)
    with Engine(convert(model, tmp_path / "model.nnef"), poison=True, kernels=kernels, disk_cache=False) as engine:
        got = engine.run({"x": x})["y"]
        convs = [s for s in engine.plan.steps if s.kind == "conv"]
    assert [s.variant for s in convs] == [variant if kernels == "cpu" else "gemm"]
    assert convs[0].attrs.get("residual") == residual  # the add really went into the conv's epilogue
    assert rel_error(got, run_onnx(model, {"x": x})["y"]) <= 1e-4


def two_layer_model(n: int) -> Any:
    """3x3 128->128 at 26x26 (F(4x4)) + leaky, 2x2 max pool, 3x3 128->112 at 13x13 (F(2x2)): both variants. The
    first conv's output is an output too, so the pool is not fused into it (which would take covec)."""
    inits = {"w1": rand(128, 128, 3, 3) / np.float32(34), "b1": rand(128),
             "w2": rand(112, 128, 3, 3) / np.float32(34), "b2": rand(112)}
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("LeakyRelu", ["c1"], ["a1"], alpha=0.1),
             helper.make_node("MaxPool", ["a1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Conv", ["p1", "w2", "b2"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])]
    return make_model(nodes, {"x": (n, 128, 26, 26)}, ["a1", "y"], inits)


def test_fp16_batch_equals_each_frame_alone(tmp_path: Path) -> None:
    """With fp16 storage each frame of a batch of 3 gives what it gives alone: a tile's transforms and GEMM sum do
    not depend on the other tiles, so anything beyond float noise would be images mixed up."""
    path = convert(two_layer_model(1), tmp_path / "model.nnef")
    x = rand(3, 128, 26, 26)
    with Engine(path, batch=3, precision="fp16", poison=True, disk_cache=False, kernels="cpu") as engine:
        assert [s.variant for s in engine.plan.steps if s.kind == "conv"] == ["winograd4", "winograd"]
        got = engine.run({"x": x})
    with Engine(path, precision="fp16", disk_cache=False, kernels="cpu") as single:
        for i in range(3):
            alone = single.run({"x": x[i : i + 1]})
            for name in ("a1", "y"):
                assert rel_error(got[name][i : i + 1], alone[name]) <= 1e-6, (i, name)


def test_tile_rule_and_tuner_candidates_at_batch_n(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The blocking rule counts the whole batch's tiles (27: NT 7 pads one) and the channels (96: NV 3), and every
    tuner candidate (other NT, so other padding; other transform work-group sizes) gives the rule's output at
    batch 3 (the tuner drops a candidate whose output differs)."""
    from ocl_infer.engine.devices.selection import select_devices
    from ocl_infer.engine.graph import load_graph
    from ocl_infer.engine.kernels.conv_winograd import ConvWinograd
    from ocl_infer.engine.plan import DeviceFacts, make_plan
    from ocl_infer.engine.tuning import TuningTable, tunable_steps, tune_graph

    monkeypatch.setenv("OCL_INFER_CACHE", str(tmp_path / "cache"))
    model, _ = conv_model((1, 160, 6, 5), 96, "Tanh", None)
    path = convert(model, tmp_path / "model.nnef")
    plan = make_plan(load_graph(path, batch=3), DeviceFacts(key="test"))
    (step, cls, signature), = tunable_steps(plan)
    assert cls is ConvWinograd and signature.startswith("n3 ")
    rule = cls(step, plan.shapes)
    assert (rule.tiles, rule.batch_tiles, rule.nt, rule.nv, rule.tp) == (9, 27, 7, 3, 28)  # 96 channels: NV 3
    real = ConvWinograd.candidates

    def some(cls: Any, step: Any, shapes: Any) -> list[dict[str, Any]]:
        """Every blocking with two of the transforms' work-group sizes (fewer programs to compile)."""
        return [c for c in real.__func__(cls, step, shapes) if c["in_local"] in ([16, 1], [8, 1])]

    monkeypatch.setattr(ConvWinograd, "candidates", classmethod(some))
    cands = ConvWinograd.candidates(step, plan.shapes)
    # NV 1, 2, 3 pad 96 channels by nothing (TP 28, 32, 30, 36, 39, 28)
    assert {tuple(c["blocking"]) for c in cands} == {(7, 3), (8, 2), (6, 3), (12, 2), (13, 2), (4, 3)}
    results = tune_graph(load_graph(path, batch=3), select_devices(None)[0], TuningTable("test"), rounds=1, reps=1,
                         kernels="cpu")
    assert [(r.variant, r.tried, r.dropped) for r in results] == [("winograd", len(cands), 0)]
