"""ONNX -> NNEF conversions nnef-tools lacks, into the custom fragments of graph/custom_ops.py.

nnef-tools imports this module by name (`custom_converters` and `custom_fragments` in graph/convert.py):
`CUSTOM_TRANSFORMS` maps an ONNX op to an NNEF invocation, `CUSTOM_FRAGMENTS` are the declarations it writes
into graph.nnef. Imported only while converting (it needs nnef_tools). ONNX ops neither nnef-tools nor this
module converts fail conversion with the op named (graph/convert.py)."""

import copy
from typing import Any

import numpy as np
from nnef_tools.conversion.converter import Transform
from nnef_tools.conversion.onnx_to_nnef import _Transforms as _NNEF_TOOLS_TRANSFORMS
from nnef_tools.model import Operation, Tensor

from ocl_infer.engine.graph.custom_ops import CUSTOM_FRAGMENTS

__all__ = ["CUSTOM_FRAGMENTS", "CUSTOM_TRANSFORMS", "as_scalar"]

# nnef-tools evaluates these strings with its converter's helpers (as_const, ensure_positive, nnef_dtype, ...)
_INTEGER = 'nnef_dtype(O[0].dtype) == "integer"'


def as_scalar(converter: Any, tensor: Any) -> Any:
    """`tensor`, or for an integer one a `cast<scalar>` of it: NNEF's comparisons take scalar tensors only (the
    engine holds integers as floats, so the cast costs nothing). nnef-tools hands every public function of this
    module to its transforms, with the converter first."""
    if converter.nnef_dtype(tensor.dtype) != "integer":
        return tensor
    out = Tensor(tensor.graph, dtype=np.float32, shape=tensor.shape)
    Operation(tensor.graph, type="cast", inputs=tensor, outputs=out, attribs={"dtype": np.float32})
    return out


def _compare(onnx_op: str) -> Transform:
    """nnef-tools' comparison with integer operands cast to scalar first (torch's floor division of indices)."""
    t = copy.deepcopy(_NNEF_TOOLS_TRANSFORMS[onnx_op])
    t.inputs = ("!as_scalar(broadcast(I[0], O[0].rank))", "!as_scalar(broadcast(I[1], O[0].rank))")
    return t


def _reduce(onnx_op: str) -> Transform:
    """nnef-tools' reduce, also with the axes as a constant input (ReduceSum from opset 13, all from 18), and
    with positive squeezed axes (it writes `squeeze(axes = [-1])`, which NNEF's shape inference refuses)."""
    t = copy.deepcopy(_NNEF_TOOLS_TRANSFORMS[onnx_op])
    t.defaults = {**t.defaults, "axes": None}
    t.cond = {"!len(I) < 2 or is_const(I[1])": "axes must be a constant"}
    t.using = {"_axes": "!ensure_positive(as_const(I[1]) if len(I) > 1 else axes if axes is not None"
                        " else list(range(I[0].rank)), I[0].rank)"}
    t.inputs = "!I[0]"
    t.outputs = "!squeeze_output(O[0], _axes, keepdims)"
    t.attribs = {**t.attribs, "axes": "!_axes"}
    return t


def _arithmetic(nnef_op: str) -> Transform:
    """ONNX Add/Sub/Mul/Div: NNEF's op on float tensors, the int_ fragment on integer ones (index math)."""
    t = copy.deepcopy(_NNEF_TOOLS_TRANSFORMS[nnef_op.capitalize()])
    t.type = f'!"int_{nnef_op}" if {_INTEGER} else "{nnef_op}"'
    return t


CUSTOM_TRANSFORMS: dict[str, Transform] = {
    "TopK": Transform(
        type="top_k",
        defaults={"axis": -1, "largest": 1, "sorted": 1},
        cond={"!is_const(I[1])": "K must be a constant"},
        inputs="!I[0]",
        outputs=("!O[0]", "!O[1]"),
        attribs={
            "k": "!int(as_const(I[1])[0]) if isinstance(as_const(I[1]), list) else int(as_const(I[1]))",
            "axis": "!ensure_positive(axis, I[0].rank)",
            "largest": "!bool(largest)",
            "sorted": "!bool(sorted)",
        },
    ),
    "GatherElements": Transform(
        type="gather_elements",
        defaults={"axis": 0},
        inputs=("!I[0]", "!I[1]"),
        outputs="!O[0]",
        attribs={"axis": "!ensure_positive(axis, I[0].rank)", "dtype": "!I[0].dtype"},
    ),
    "Mod": Transform(
        type="mod",
        defaults={"fmod": 0},
        inputs=("!broadcast(I[0], O[0].rank)", "!broadcast(I[1], O[0].rank)"),
        outputs="!O[0]",
        attribs={"fmod": "!bool(fmod)", "dtype": "!I[0].dtype"},
    ),
    "LayerNormalization": Transform(
        type="layer_normalization",
        defaults={"axis": -1, "epsilon": 1e-5, "stash_type": 1},
        cond={"!stash_type == 1": "stash_type must be 1 (float32 statistics)",
              "!len(O) < 2 or is_unused(O[1])": "the Mean output must be unused",
              "!len(O) < 3 or is_unused(O[2])": "the InvStdDev output must be unused"},
        inputs=("!I[0]", "!broadcast(I[1], I[0].rank)",
                "!broadcast(I[2], I[0].rank) if len(I) > 2 else as_tensor(0.0, np.float32)"),
        outputs="!O[0]",
        attribs={"axes": "!list(range(ensure_positive(axis, I[0].rank), I[0].rank))", "epsilon": "!epsilon"},
    ),
    "GridSample": Transform(
        type="grid_sample",
        defaults={"mode": "bilinear", "padding_mode": "zeros", "align_corners": 0},
        cond={"!I[0].rank == 4": "only 2-D sampling (4-D input) is supported",
              '!mode in ("bilinear", "linear", "nearest")': "mode must be bilinear (linear) or nearest"},
        inputs=("!I[0]", "!I[1]"),
        outputs="!O[0]",
        attribs={"mode": '!"nearest" if mode == "nearest" else "linear"', "padding_mode": "!padding_mode",
                 "align_corners": "!bool(align_corners)"},
    ),
    # nnef-tools writes shape [0] * axis + [-1], which keeps the leading dims instead of merging them (wrong for
    # axis > 1: RT-DETR flattens [1, 3549, 256] at axis 2); [0, -1] keeps a batch dimension free
    "Flatten": Transform(
        type="reshape",
        defaults={"axis": 1},
        using={"_axis": "!ensure_positive(axis, I[0].rank)"},
        inputs="!I[0]",
        outputs="!O[0]",
        attribs={"shape": "![0, -1] if _axis == 1 else [int(np.prod(I[0].shape[:_axis])), -1]"},
    ),
    # ONNX's axes name output positions in any order; NNEF inserts them one by one, so they must be ascending
    "Unsqueeze": Transform(
        type="unsqueeze",
        defaults={"axes": "!as_const(I[1])"},
        inputs="!I[0]",
        outputs="!O[0]",
        attribs={"axes": "!sorted(ensure_positive(axes, O[0].rank))"},
    ),
    "Xor": Transform(
        type="xor",
        inputs=("!broadcast(I[0], O[0].rank)", "!broadcast(I[1], O[0].rank)"),
        outputs="!O[0]",
    ),
    **{op: _compare(op) for op in ("Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual")},
    **{op: _arithmetic(op.lower()) for op in ("Add", "Sub", "Mul", "Div")},
    **{op: _reduce(op) for op in ("ReduceMin", "ReduceMax", "ReduceMean", "ReduceSum")},
}
