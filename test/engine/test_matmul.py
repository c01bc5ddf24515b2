"""MatMul / Gemm on the blocked kernels against onnxruntime, both families (CPU "block", GPU "tiled"; the
`check_against_onnx` fixture runs each case once per family): transposes, constant and activation operands,
batch broadcast both ways, sizes that are not multiples of any tile or column block, every fused activation.
Also run on Oclgrind (test_oclgrind.py) with its bounds and data-race checks."""

import numpy as np
import pytest
from onnx import helper
from onnx_models import convert, make_model, normal_floats

from ocl_infer.engine.graph import load_graph
from ocl_infer.engine.kernels import matmul
from ocl_infer.engine.plan import DeviceFacts, make_plan

rng = np.random.default_rng(18)
rand = normal_floats(rng)


@pytest.mark.parametrize("m,k,n,trans_a,trans_b,const_b", [
    (37, 19, 13, 0, 1, True),  # linear, 1 column vector per work-item
    (37, 19, 250, 0, 1, True),  # linear, 4 vectors, packed padding
    (5, 40, 29, 1, 0, True),  # transposed A (strided rows), 2 vectors
    (23, 17, 67, 0, 1, False),  # transposed activation B: packed by a launch on the CPU family
    (9, 33, 250, 1, 0, False),  # activation B with a partial last column block
])
def test_gemm(check_against_onnx, m, k, n, trans_a, trans_b, const_b):
    a = rand(k, m) if trans_a else rand(m, k)
    b = rand(n, k) if trans_b else rand(k, n)
    node = helper.make_node("Gemm", ["a", "b", "c"], ["y"], transA=trans_a, transB=trans_b)
    inputs, inits = {"a": a}, {"c": rand(n)}
    (inits if const_b else inputs)["b"] = b
    check_against_onnx([node], inputs, ["y"], inits)


@pytest.mark.parametrize("act", ["Relu", "LeakyRelu", "Clip", "Sigmoid", "Tanh", "Elu", "SiLU"])
def test_linear_fused_activation(check_against_onnx, act):
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["g"], transB=1)]
    if act == "SiLU":  # as PyTorch exports it: g * sigmoid(g), fused into the linear (code 7)
        nodes += [helper.make_node("Sigmoid", ["g"], ["s"]), helper.make_node("Mul", ["g", "s"], ["y"])]
    else:
        extra = {"alpha": 0.1} if act == "LeakyRelu" else {}  # Elu: nnef-tools drops alpha (1 only)
        nodes.append(helper.make_node(act, ["g", "lo", "hi"] if act == "Clip" else ["g"], ["y"], **extra))
    inits = {"w": rand(21, 30), "b": rand(21), "lo": np.array(-0.3, np.float32), "hi": np.array(0.5, np.float32)}
    check_against_onnx(nodes, {"x": rand(11, 30) * 2}, ["y"], inits)


@pytest.mark.parametrize("a,b,const_b", [
    ((3, 1, 24), (24, 40), True),  # B shared by every batch: one GEMM of 3 rows
    ((2, 13, 24), (24, 18), False),
    ((13, 24), (3, 24, 18), False),  # A broadcast over B's batch
    ((4, 9, 8), (4, 8, 37), False),  # attention-like: heads as batch
    ((2, 3, 7, 5), (2, 3, 5, 6), False),  # two batch dims
])
def test_matmul_batched(check_against_onnx, a, b, const_b):
    inputs = {"a": rand(*a)}
    inits = {"b": rand(*b)} if const_b else {}
    if not const_b:
        inputs["b"] = rand(*b)
    check_against_onnx([helper.make_node("MatMul", ["a", "b"], ["y"])], inputs, ["y"], inits)


@pytest.mark.parametrize("tile", matmul.TILES)
def test_every_gpu_tile(check_against_onnx, monkeypatch, tile):
    """Each tile the GPU rule may pick, on a batched product with a transposed A (gathers along M) and
    sizes that leave partial tiles in M, N and K (the CPU-family run checks the same case once more)."""
    monkeypatch.setattr(matmul, "tile_rule", lambda *args: tile)
    nodes = [helper.make_node("Transpose", ["a"], ["at"], perm=[0, 2, 1]),
             helper.make_node("MatMul", ["at", "b"], ["y"])]
    check_against_onnx(nodes, {"a": rand(2, 21, 35), "b": rand(2, 21, 70)}, ["y"])


def test_kernel_choice_by_family(tmp_path):
    """The blocked kernels take matmul and linear on their family; a matrix-vector product stays general."""
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["g"], transB=1),
             helper.make_node("MatMul", ["g", "v"], ["y"])]
    model = make_model(nodes, {"x": (5, 16)}, ["y"], {"w": rand(24, 16), "b": rand(24), "v": rand(24, 1)})
    graph = load_graph(convert(model, tmp_path / "m.nnef"))
    for family, want in (("cpu", {"linear": "block", "matmul": "strided"}),
                         ("gpu", {"linear": "tiled", "matmul": "tiled"})):
        plan = make_plan(graph, DeviceFacts(family=family, compute_units=4, max_work_group_size=256))
        assert {s.kind: s.variant for s in plan.steps if s.kind in ("linear", "matmul")} == want, family
