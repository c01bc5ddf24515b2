"""The planner without any device: fusion, batch-norm folding, aliases, buffer reuse and peak bytes, kernel
choice through the registry (including a replacement kernel with a higher priority)."""

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from ocl_infer.engine.graph import load_graph
from ocl_infer.engine.graph.dat import write_dat
from ocl_infer.engine.kernels import KERNELS, choose_kernel, register
from ocl_infer.engine.kernels.conv import ConvBlocked
from ocl_infer.engine.plan import DeviceFacts, Step, make_plan, plan_buffers

NET = """version 1.0;

graph net( input ) -> ( output )
{
    input = external<scalar>(shape = [1, 3, 16, 16]);
    f1 = variable<scalar>(shape = [8, 3, 3, 3], label = 'f1');
    b1 = variable<scalar>(shape = [1, 8], label = 'b1');
    mean = variable<scalar>(shape = [1, 8], label = 'mean');
    var = variable<scalar>(shape = [1, 8], label = 'var');
    off = variable<scalar>(shape = [1, 8], label = 'off');
    sc = variable<scalar>(shape = [1, 8], label = 'sc');
    f2 = variable<scalar>(shape = [4, 8, 1, 1], label = 'f2');
    c1 = conv(input, f1, b1, padding = [(1, 1), (1, 1)]);
    n1 = batch_normalization(c1, mean, var, off, sc, epsilon = 0.001);
    a1 = leaky_relu(n1, alpha = 0.1);
    p1 = max_pool(a1, size = [1, 1, 2, 2], stride = [1, 1, 2, 2], border = 'ignore');
    c2 = conv(p1, f2, 0.0);
    a2 = clamp(c2, 0.0, 6.0);
    r = reshape(a2, shape = [1, 256]);
    output = sigmoid(r);
}
"""


@pytest.fixture
def net(tmp_path: Path) -> Path:
    folder = tmp_path / "net"
    folder.mkdir()
    (folder / "graph.nnef").write_text(NET)
    rng = np.random.default_rng(3)
    for name, shape in [("f1", (8, 3, 3, 3)), ("b1", (1, 8)), ("mean", (1, 8)), ("off", (1, 8)), ("sc", (1, 8)),
                        ("f2", (4, 8, 1, 1))]:
        write_dat(folder / f"{name}.dat", rng.standard_normal(shape).astype(np.float32))
    write_dat(folder / "var.dat", rng.random((1, 8)).astype(np.float32) + 0.5)
    return folder


def test_fusion_folds_batchnorm_and_activations(net):
    plan = make_plan(load_graph(net))
    kinds = [(s.kind, s.variant) for s in plan.steps]
    # 8 output channels: too few for the covec kernel, so the pool is not fused into the conv; the 1x1 is pointwise
    assert kinds == [("conv", "blocked"), ("max_pool", "2d"), ("conv", "pointwise"), ("reshape", "alias"),
                     ("sigmoid", "flat")]
    assert plan.steps[0].attrs["activation"] == ("leaky_relu", pytest.approx(0.1), 0.0)
    assert plan.steps[2].attrs["activation"] == ("clamp", 0.0, 6.0)
    assert "batch_normalization" in plan.steps[0].name


def test_batchnorm_folding_is_exact_in_float64(net):
    g = load_graph(net)
    plan = make_plan(g, fuse=True)
    t = {n: g.tensors[n].data.astype(np.float64).reshape(-1) for n in ("b1", "mean", "var", "off", "sc")}
    k = t["sc"] / np.sqrt(t["var"] + 0.001)
    bias_key = plan.steps[0].inputs[2]
    np.testing.assert_allclose(plan.constants[bias_key], (t["b1"] - t["mean"]) * k + t["off"], rtol=1e-6)


def test_no_fusion_keeps_every_op(net):
    plan = make_plan(load_graph(net), fuse=False)
    assert [s.kind for s in plan.steps] == ["conv", "batch_normalization", "leaky_relu", "max_pool", "conv",
                                            "clamp", "reshape", "sigmoid"]


def test_buffer_plan_reuses_and_knows_peak(net):
    plan = make_plan(load_graph(net), fuse=False)
    b = plan.buffers
    sizes = {n: int(np.prod(plan.shapes[n])) * 4 for n in b.storage_of}
    naive = sum(sizes.values())
    assert b.activation_bytes < naive
    # reshape aliases its input: same storage, no launch
    assert b.storage_of["r"] == "a2"
    # the graph output's whole alias group is pinned (host reads it), so it is not in a shared slot
    assert b.storage_of["output"] == "output" and "output" in b.pinned_bytes and "input" in b.pinned_bytes
    # no step writes into a slot one of its inputs lives in
    for s in plan.steps:
        if s.variant == "alias":
            continue
        in_slots = {b.slot_of.get(b.storage_of.get(t, t)) for t in s.inputs} - {None}
        out_slots = {b.slot_of.get(b.storage_of[t]) for t in s.outputs} - {None}
        assert not in_slots & out_slots, s.name
    assert plan.peak_bytes == plan.weights_bytes + b.activation_bytes


def _step(name: str, inputs: tuple[str, ...], variant: str = "flat") -> Step:
    return Step("relu", variant, inputs, (name,), {}, name)


def test_plan_buffers_chain_uses_two_slots():
    steps = [_step("a", ("x",)), _step("b", ("a",)), _step("c", ("b",)), _step("d", ("c",)), _step("y", ("d",))]
    shapes = {n: (10,) for n in "xabcdy"}
    b = plan_buffers(steps, shapes, ["x"], ["y"])
    assert len(b.slot_bytes) == 2 and b.slot_of["a"] == b.slot_of["c"] and b.slot_of["b"] == b.slot_of["d"]
    assert b.activation_bytes == 2 * 40 + 2 * 40


def test_plan_buffers_grows_slot_for_bigger_tensor():
    steps = [_step("a", ("x",)), _step("b", ("a",)), _step("c", ("b",)), _step("y", ("c",))]
    shapes = {"x": (4,), "a": (4,), "b": (4,), "c": (100,), "y": (4,)}
    b = plan_buffers(steps, shapes, ["x"], ["y"])
    assert sorted(b.slot_bytes) == [16, 400]


def test_registry_picks_highest_priority_supporting_kernel(net):
    class FastConv(ConvBlocked):
        variant = "test_fast"
        priority = 100  # above every built-in conv

        @classmethod
        def supports(cls, step: Step, shapes: Mapping[str, tuple[int, ...]], facts: DeviceFacts) -> bool:
            return super().supports(step, shapes, facts) and facts.type == "gpu"

    register(FastConv)
    try:
        g = load_graph(net)
        cpu = make_plan(g, DeviceFacts(type="cpu"))
        gpu = make_plan(g, DeviceFacts(type="gpu"), fuse=False)  # fused with its pool, the conv would be gemm's
        assert cpu.steps[0].variant == "blocked"
        assert gpu.steps[0].variant == "test_fast"
        assert choose_kernel(gpu.steps[0], gpu.shapes, DeviceFacts(type="gpu")) is FastConv
    finally:
        KERNELS.pop(("conv", "test_fast"))


def test_conv_weights_relaid_out_blocked(net):
    g = load_graph(net)
    plan = make_plan(g, fuse=False)
    key = plan.steps[0].inputs[1]
    w = plan.constants[key]  # [G][NOCB][ICG][KH][KW][OCB]
    f1 = g.tensors["f1"].data
    assert w.size == 8 * 3 * 3 * 3
    assert w.reshape(1, 1, 3, 3, 3, 8)[0, 0, 2, 1, 0, 5] == f1[5, 2, 1, 0]


def test_conv_variant_chosen_by_shape_and_device():
    from ocl_infer.engine.plan.model import Step

    def conv_step(oc: int, stride: int) -> tuple[Step, dict]:
        shapes = {"x": (1, 8, 20, 20), "f": (oc, 8, 3, 3), "b": (1, oc), "y": (1, oc, 20 // stride, 20 // stride)}
        attrs = {"stride": (stride, stride), "padding": ((1, 1), (1, 1)), "groups": 1, "border": "constant"}
        return Step("conv", "", ("x", "f", "b"), ("y",), attrs, "conv -> y"), shapes

    cpu, gpu = DeviceFacts(type="cpu"), DeviceFacts(type="gpu")
    assert choose_kernel(*conv_step(33, 1), cpu).variant == "covec"  # channel-vectorised, >= 16 channels
    assert choose_kernel(*conv_step(33, 2), cpu).variant == "covec"  # strided too (stride as a build option)
    assert choose_kernel(*conv_step(8, 1), cpu).variant == "blocked"  # too few channels for 16-wide vectors
    for oc, stride in ((33, 1), (33, 2), (8, 1)):  # the GPU family's implicit GEMM takes every ungrouped conv
        assert choose_kernel(*conv_step(oc, stride), gpu).variant == "gemm"
    forced = DeviceFacts(type="cpu", family="gpu")  # Engine(kernels="gpu"): the GPU family on any device
    assert choose_kernel(*conv_step(33, 1), forced).variant == "gemm"
    assert DeviceFacts(type="accelerator").family == "gpu"


def test_conv_maxpool_fusion_only_where_a_kernel_can(net, tmp_path):
    text = (net / "graph.nnef").read_text().replace("[8, 3, 3, 3]", "[16, 3, 3, 3]").replace("[1, 8]", "[1, 16]")
    text = text.replace("[4, 8, 1, 1]", "[4, 16, 1, 1]")
    wide = tmp_path / "wide"
    wide.mkdir()
    (wide / "graph.nnef").write_text(text)
    rng = np.random.default_rng(1)
    for name, shape in [("f1", (16, 3, 3, 3)), ("b1", (1, 16)), ("mean", (1, 16)), ("off", (1, 16)),
                        ("sc", (1, 16)), ("var", (1, 16)), ("f2", (4, 16, 1, 1))]:
        write_dat(wide / f"{name}.dat", (rng.random(shape) + 0.5).astype(np.float32))
    g = load_graph(wide)
    cpu = make_plan(g, DeviceFacts(type="cpu"))
    assert [(s.kind, s.variant) for s in cpu.steps][:2] == [("conv", "covec"), ("conv", "pointwise")]
    assert cpu.steps[0].outputs == ("p1",) and cpu.steps[0].attrs["pool"] == 2
    assert "c1" not in cpu.buffers.storage_of and "a1" not in cpu.buffers.storage_of  # never written
    gpu = make_plan(g, DeviceFacts(type="gpu"))  # the implicit GEMM fuses it too
    assert [(s.kind, s.variant) for s in gpu.steps][:1] == [("conv", "gemm")] and gpu.steps[0].attrs["pool"] == 2
    tiny = make_plan(g, DeviceFacts(type="gpu", local_mem_bytes=1024))  # no GEMM tile fits: no kernel fuses
    assert [(s.kind, s.variant) for s in tiny.steps][:2] == [("conv", "blocked"), ("max_pool", "2d")]


def test_plan_that_does_not_fit_the_device_is_refused_before_allocation(net):
    from dataclasses import replace

    from ocl_infer.engine.devices import DeviceInfo
    from ocl_infer.engine.engine import check_fits
    from ocl_infer.errors import ModelError

    plan = make_plan(load_graph(net))
    dev = DeviceInfo(index=0, platform_index=0, device_index=0, platform="P", name="tiny", vendor="V", type="cpu",
                     version="3.0", driver="1", compute_units=1, max_clock_mhz=1, global_mem_bytes=2**30,
                     local_mem_bytes=2**15, max_alloc_bytes=2**28, max_work_group_size=64, fp16=False, fp64=False)
    check_fits(plan, dev, net)
    with pytest.raises(ModelError, match=r"net: needs .* MiB of device memory, cl:0 \(tiny\) has"):
        check_fits(plan, replace(dev, global_mem_bytes=plan.peak_bytes - 1), net)
    biggest = max(plan.buffers.slot_bytes)
    with pytest.raises(ModelError, match="allocation limit"):
        check_fits(plan, replace(dev, max_alloc_bytes=biggest - 1), net)


@pytest.mark.parametrize("stages", [1, 2, 3, 5, 50])
def test_split_graph_into_pipeline_stages(net, stages):
    from ocl_infer.engine.plan.split import split_graph

    g = load_graph(net)
    parts = split_graph(g, stages)
    assert 1 <= len(parts) <= min(stages, len(g.ops))
    assert [op for p in parts for op in p.ops] == list(g.ops)  # every op once, in order
    available = set(g.inputs)
    for p in parts:
        assert set(p.inputs) <= available  # a stage reads only what earlier stages (or the caller) give it
        make_plan(p)  # each stage is a plannable graph on its own
        available |= set(p.outputs)
    assert set(g.outputs) <= available
    for p in parts[:-1] if stages <= 3 else []:  # with cuts to spare, a conv keeps the ops fused into it
        assert not (p.ops[-1].kind == "conv" and parts[parts.index(p) + 1].ops[0].kind
                    in ("batch_normalization", "leaky_relu", "clamp"))


def test_max_pools_of_nine_taps_or_more_take_the_columns_kernel_on_the_cpu_family(tmp_path):
    """SPPF's 5x5 pool: `columns` on the CPU family (each row's max once per output column), `2d` on the GPU
    family and for 2x2 windows; results of both are checked against onnxruntime in test_ops.py::test_pool."""
    text = """version 1.0;
graph G( x ) -> ( a, b )
{
    x = external<scalar>(shape = [1, 8, 13, 13]);
    a = max_pool(x, size = [1, 1, 5, 5], stride = [1, 1, 1, 1], border = 'ignore',
                 padding = [(0, 0), (0, 0), (2, 2), (2, 2)]);
    b = max_pool(x, size = [1, 1, 2, 2], stride = [1, 1, 2, 2], border = 'ignore');
}
"""
    (tmp_path / "graph.nnef").write_text(text)
    graph = load_graph(tmp_path)
    cpu = [s.variant for s in make_plan(graph, DeviceFacts(type="cpu")).steps]
    gpu = [s.variant for s in make_plan(graph, DeviceFacts(type="gpu")).steps]
    assert cpu == ["columns", "2d"] and gpu == ["2d", "2d"]
