"""The GPU family's implicit-GEMM conv with every blocking its tuner may pick (tiles, split K) against
onnxruntime: a wrong tile mapping or split would otherwise only show on a device whose rule picks it."""

from types import MappingProxyType
from typing import Any

import numpy as np
import pytest
from onnx import helper
from onnx_models import convert, make_model, rel_error, run_onnx

from ocl_infer.engine.devices import list_devices
from ocl_infer.engine.devices.selection import cl_device
from ocl_infer.engine.graph import load_graph
from ocl_infer.engine.kernels.conv_gemm import ConvGemm
from ocl_infer.engine.plan import DeviceFacts, Step, make_plan
from ocl_infer.engine.runtime import DeviceRuntime

rng = np.random.default_rng(7)


class Forced:
    """A stand-in tuning table that gives every gemm conv step one blocking."""

    def __init__(self, blocking: list[int]) -> None:
        self.blocking = blocking

    def apply(self, cls: Any, step: Step, shapes: Any) -> Step:
        if cls is not ConvGemm:
            return step
        return Step(step.kind, step.variant, step.inputs, step.outputs,
                    MappingProxyType({**step.attrs, "blocking": self.blocking}), step.name)


CASES = {
    # name: (input shape, out channels, kernel, stride, pads, activation, residual, pool)
    "3x3 deep K, batch 2": ((2, 40, 7, 6), 24, 3, 1, 1, "LeakyRelu", False, False),
    "1x1 residual": ((1, 72, 5, 5), 20, 1, 1, 0, None, True, False),
    "3x3 stride 2": ((1, 9, 11, 13), 17, 3, 2, 1, "Relu", False, False),
    "3x3 + 2x2 pool": ((1, 6, 10, 11), 19, 3, 1, 1, "LeakyRelu", False, True),
}


@pytest.mark.parametrize("name", list(CASES))
def test_every_candidate_blocking_matches_onnxruntime(tmp_path, name):
    shape, oc, k, s, p, act, residual, pool = CASES[name]
    ic = shape[1]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[k, k], strides=[s, s], pads=[p] * 4)]
    last = "c"
    if act:
        nodes.append(helper.make_node(act, [last], ["a"], **({"alpha": 0.1} if act == "LeakyRelu" else {})))
        last = "a"
    if residual:
        nodes.append(helper.make_node("Add", [last, "r"], ["s"]))
        last = "s"
    if pool:
        nodes.append(helper.make_node("MaxPool", [last], ["m"], kernel_shape=[2, 2], strides=[2, 2]))
        last = "m"
    oh = (shape[2] + 2 * p - k) // s + 1
    ow = (shape[3] + 2 * p - k) // s + 1
    feeds = {"x": rng.standard_normal(shape).astype(np.float32)}
    if residual:
        feeds["r"] = rng.standard_normal((shape[0], oc, oh, ow)).astype(np.float32)
    inits = {"w": rng.standard_normal((oc, ic, k, k)).astype(np.float32),
             "b": rng.standard_normal(oc).astype(np.float32)}
    model = make_model(nodes, {n: a.shape for n, a in feeds.items()}, [last], inits, 13)
    want = run_onnx(model, feeds)[last]
    graph = load_graph(convert(model, tmp_path / "m.nnef"))

    info = list_devices()[0]
    facts = DeviceFacts(type="gpu", compute_units=info.compute_units, local_mem_bytes=info.local_mem_bytes,
                        max_work_group_size=info.max_work_group_size)
    rule = make_plan(graph, facts)
    step = next(st for st in rule.steps if st.variant == "gemm")
    assert bool(step.attrs.get("pool")) == pool and bool(step.attrs.get("residual")) == residual
    candidates = ConvGemm.candidates(step, rule.shapes)
    assert any(c["blocking"][5] > 1 for c in candidates) or pool  # split K is among them
    errors = {}
    for cand in candidates:
        plan = make_plan(graph, facts, tuning=Forced(cand["blocking"]))  # type: ignore[arg-type]
        rt = DeviceRuntime(plan, cl_device(info), info.label, poison=True, disk_cache=False)
        try:
            got = rt.run(feeds)[last]
        finally:
            rt.close()
        errors[tuple(cand["blocking"])] = rel_error(got, want)
    bad = {b: e for b, e in errors.items() if not e <= 1e-4}
    assert not bad, f"blockings off against onnxruntime: {bad}"
