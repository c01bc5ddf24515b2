"""Concat as a layout decision: the planner lets each input's producer write straight into its slice of the
concat's storage (a sub-buffer) and drops the copy, where the slices are contiguous (all dims before the axis
are 1) and aligned; against onnxruntime with poisoned buffers (a slice nobody wrote would be NaN), both kernel
families, and the cases that must stay a copy."""

import numpy as np
import pytest
from onnx import helper
from onnx_models import convert, make_model, normal_floats

from ocl_infer.engine.graph import load_graph
from ocl_infer.engine.plan import make_plan

rng = np.random.default_rng(77)
rand = normal_floats(rng)


def conv(name: str, x: str, y: str, ic: int, oc: int, k: int, inits: dict) -> helper.NodeProto:
    inits[f"{name}_w"] = rand(oc, ic, k, k) / np.float32(np.sqrt(ic * k * k))
    inits[f"{name}_b"] = rand(oc)
    return helper.make_node("Conv", [x, f"{name}_w", f"{name}_b"], [y], kernel_shape=[k, k], pads=[k // 2] * 4)


def c2f(c: int) -> tuple[list, dict]:
    """YOLOv8's C2f: cv1 -> split in halves -> bottleneck on the second -> concat(a, b, m) -> cv2 1x1."""
    inits: dict = {"parts": np.array([c, c])}
    nodes = [conv("cv1", "x", "t", 16, 2 * c, 1, inits),
             helper.make_node("Split", ["t", "parts"], ["a", "b"], axis=1),
             conv("m", "b", "m", c, c, 3, inits),
             helper.make_node("Concat", ["a", "b", "m"], ["cat"], axis=1),
             conv("cv2", "cat", "y", 3 * c, 16, 1, inits)]
    return nodes, inits


def sppf() -> tuple[list, dict]:
    """SPPF: x and three chained 5x5 max pools of it, concatenated (x is read by the first pool too)."""
    inits: dict = {}
    pool = {"kernel_shape": [5, 5], "pads": [2, 2, 2, 2], "strides": [1, 1]}
    nodes = [conv("cv1", "x", "t", 16, 32, 1, inits),
             helper.make_node("MaxPool", ["t"], ["p1"], **pool),
             helper.make_node("MaxPool", ["p1"], ["p2"], **pool),
             helper.make_node("MaxPool", ["p2"], ["p3"], **pool),
             helper.make_node("Concat", ["t", "p1", "p2", "p3"], ["cat"], axis=1),
             conv("cv2", "cat", "y", 128, 16, 1, inits)]
    return nodes, inits


def plan_of(tmp_path, nodes, inits, shape):
    return make_plan(load_graph(convert(make_model(nodes, {"x": shape}, ["y"], inits), tmp_path / "p.nnef")))


@pytest.mark.parametrize("pattern", ["c2f", "sppf"])
def test_placed_concat_matches_onnxruntime(check_against_onnx, tmp_path, pattern):
    nodes, inits = c2f(16) if pattern == "c2f" else sppf()
    shape = (1, 16, 16, 24)  # 384 pixels: every 16-channel slice starts on a 512-byte boundary
    plan = plan_of(tmp_path, nodes, inits, shape)
    cat = next(s for s in plan.steps if s.kind == "concat")
    assert cat.variant == "alias" and cat.attrs["placed"]
    b = plan.buffers
    # every input lives in the concat's storage at its slice: 16 channels x 384 pixels x 4 bytes apart
    root = b.storage_of[cat.outputs[0]]
    assert {b.storage_of[t] for t in cat.inputs} == {root}
    step = 16 * 384 * 4 if pattern == "c2f" else 32 * 384 * 4
    assert [b.offset_of.get(t, 0) for t in cat.inputs] == [i * step for i in range(len(cat.inputs))]
    if pattern == "c2f":  # the split is a pair of views of cv1's output, which is itself placed at offset 0
        split = next(s for s in plan.steps if s.kind == "split")
        assert split.variant == "alias" and b.storage_of[split.inputs[0]] == root
        assert b.offset_of.get(split.inputs[0], 0) == 0
    check_against_onnx(nodes, {"x": rand(*shape)}, ["y"], inits)


def test_split_views_without_a_concat_match_onnxruntime(check_against_onnx, tmp_path):
    inits: dict = {"parts": np.array([16, 16])}
    nodes = [conv("cv1", "x", "t", 16, 32, 1, inits), helper.make_node("Split", ["t", "parts"], ["a", "b"], axis=1),
             conv("m", "b", "m", 16, 16, 3, inits), helper.make_node("Add", ["a", "m"], ["y"])]
    plan = plan_of(tmp_path, nodes, inits, (1, 16, 16, 24))
    split = next(s for s in plan.steps if s.kind == "split")
    assert split.variant == "alias" and plan.buffers.offset_of[split.outputs[1]] == 16 * 384 * 4
    check_against_onnx(nodes, {"x": rand(1, 16, 16, 24)}, ["y"], inits)


@pytest.mark.parametrize("case", ["batch 2", "unaligned slices", "input read by two concats"])
def test_concat_stays_a_copy_where_slices_cannot_be_placed(check_against_onnx, tmp_path, case):
    nodes, inits = c2f(16 if case != "unaligned slices" else 3)
    shape = (2 if case == "batch 2" else 1, 16, 13, 13)
    if case == "input read by two concats":
        nodes.append(helper.make_node("Concat", ["m", "a"], ["cat2"], axis=1))
        nodes.append(conv("cv3", "cat2", "z", 32, 8, 1, inits))
    plan = plan_of(tmp_path, nodes, inits, shape)
    cats = [s for s in plan.steps if s.kind == "concat"]
    assert cats and all(s.variant != "alias" for s in cats)
    check_against_onnx(nodes, {"x": rand(*shape)}, ["y"], inits)


def test_placed_concat_output_as_graph_output_stays_a_copy(tmp_path):
    nodes, inits = c2f(16)
    nodes = nodes[:4]  # the concat is the graph's output: its own pinned buffer, written by the copy
    nodes[3] = helper.make_node("Concat", ["a", "b", "m"], ["y"], axis=1)
    plan = plan_of(tmp_path, nodes, inits, (1, 16, 16, 24))
    assert [s.variant for s in plan.steps if s.kind == "concat"] != ["alias"]


def test_slices_aligned_for_the_device_are_placed_there(check_against_onnx, tmp_path):
    """SPPF at YOLO's 13x13: 32-channel slices 21632 bytes apart, a multiple of 128 (PoCL's base address
    alignment) but not of 512 (the GPUs'). The plan follows the device it is made for: placed where sub-buffers
    may start there, a copy where they may not; on the device the tests see, the engine's own plan decides and
    the result matches onnxruntime either way (poisoned buffers: an unwritten slice would be NaN)."""
    from ocl_infer.engine.devices import list_devices
    from ocl_infer.engine.devices.facts import facts_of
    from ocl_infer.engine.plan.model import DeviceFacts

    nodes, inits = sppf()
    shape = (1, 16, 13, 13)
    graph = load_graph(convert(make_model(nodes, {"x": shape}, ["y"], inits), tmp_path / "p.nnef"))

    def concat_variant(align: int) -> str:
        return next(s.variant for s in make_plan(graph, DeviceFacts(base_align_bytes=align)).steps
                    if s.kind == "concat")

    assert concat_variant(128) == "alias" and concat_variant(512) != "alias"
    device = list_devices()[0]
    assert facts_of(device).base_align_bytes == device.base_align_bytes > 0
    check_against_onnx(nodes, {"x": rand(*shape)}, ["y"], inits)
