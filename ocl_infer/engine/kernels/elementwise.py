"""Elementwise family: unary ops, binary ops and clamp with NNEF broadcasting, batch norm as channel affine."""

from collections.abc import Mapping
from typing import Any

import numpy as np

from ocl_infer.engine.graph.ops import BINARY_OPS, LOGICAL_OPS, UNARY_OPS
from ocl_infer.engine.kernels.base import (
    Kernel,
    Launch,
    collapse_dims,
    contiguous_strides,
    global_1d,
    int8,
    new_kernel,
    nnef_broadcast_strides,
    size_of,
)
from ocl_infer.engine.kernels.registry import register
from ocl_infer.engine.plan.model import DeviceFacts, Step

UNARY_KERNELS = (*UNARY_OPS, "cast", "not")
# ops whose kernel has another name: integer tensors are float32 holding exact integers, so integer add, sub and
# mul are the float kernels. The planner leaves only casts that compute: to integer (truncation) and to logical.
KERNEL_NAMES = {"int_add": "add", "int_sub": "sub", "int_mul": "mul"}
CAST_KERNELS = {"integer": "trunc", "logical": "truthy"}
# NNEF attribute names and defaults of the unary ops that take parameters -> kernel arguments a0, a1
UNARY_PARAMS = {"leaky_relu": (("alpha", 0.0), None), "elu": (("alpha", 1.0), None),
                "selu": (("alpha", 1.67326319), ("lambda", 1.05070102)), "softabs": (("epsilon", 0.0), None)}


class _Elementwise(Kernel):
    cl_file = "elementwise.cl"
    headers = ("common.h.cl",)


@register
class Unary(_Elementwise):
    ops = UNARY_KERNELS
    variant = "flat"

    def launches(self, program: Any, ins: list[Any], outs: list[Any]) -> list[Launch]:
        n = size_of(self.shape(self.step.outputs[0]))
        kind = CAST_KERNELS[self.step.attrs["to"]] if self.step.kind == "cast" else self.step.kind
        k = new_kernel(program, f"u_{kind}")
        params = [float(self.step.attrs.get(p[0], p[1])) if p else 0.0
                  for p in UNARY_PARAMS.get(self.step.kind, (None, None))]
        k.set_args(ins[0], outs[0], np.float32(params[0]), np.float32(params[1]), np.int32(n))
        return [Launch(k, global_1d(n))]


@register
class Binary(_Elementwise):
    ops = (*BINARY_OPS, *LOGICAL_OPS, "add_n", "int_add", "int_sub", "int_mul", "int_div", "mod", "xor")
    variant = "broadcast"

    @classmethod
    def supports(cls, step: Step, shapes: Mapping[str, tuple[int, ...]], facts: DeviceFacts) -> bool:
        return step.kind in cls.ops and len(shapes[step.outputs[0]]) <= 8

    def launches(self, program: Any, ins: list[Any], outs: list[Any]) -> list[Launch]:
        out = self.shape(self.step.outputs[0])
        n = size_of(out)
        kind = self.step.kind
        if kind == "mod":
            kind = "fmod" if self.step.attrs.get("fmod") else "mod"
        name = "b_add" if kind == "add_n" else f"b_{KERNEL_NAMES.get(kind, kind)}"
        try:
            strides = [nnef_broadcast_strides(self.shape(t), out) for t in self.step.inputs]
        except ValueError as err:
            raise self.fail(str(err)) from err
        d = int8(out, 1)
        result = []
        if self.step.kind == "add_n":  # accumulate into the output: y = x0 + x1, then y += x2 ...
            if len(ins) < 2:
                raise self.fail("add_n needs at least two inputs")
            own = nnef_broadcast_strides(out, out)
            for i in range(1, len(ins)):
                k = new_kernel(program, name)
                a, sa = (ins[0], strides[0]) if i == 1 else (outs[0], own)
                k.set_args(a, ins[i], outs[0], d, int8(sa, 0), int8(strides[i], 0), np.int32(n))
                result.append(Launch(k, global_1d(n)))
            return result
        flat = contiguous_strides(out)
        if all(st == flat or n == 1 for st in strides):  # same shapes: the flat kernel, no index arithmetic
            k = new_kernel(program, "bf_" + name[2:])
            k.set_args(ins[0], ins[1], outs[0], np.int32(n))
            return [Launch(k, global_1d(n))]
        dims, sa, sb, sy = collapse_dims(out, strides[0], strides[1], flat)
        if len(dims) <= 3:  # grid coordinates, no index divisions
            d, sa, sb, sy = ((*v, 1, 1)[:3] for v in (dims[::-1], sa[::-1], sb[::-1], sy[::-1]))
            k = new_kernel(program, "bg_" + name[2:])
            k.set_args(ins[0], ins[1], outs[0], *(np.int32(v) for v in (d[0], *sa, *sb, sy[1], sy[2])))
            lx = 64 if d[0] >= 64 else 16
            return [Launch(k, (-(-d[0] // lx) * lx, d[1], d[2]), (lx, 1, 1))]
        k = new_kernel(program, name)
        k.set_args(ins[0], ins[1], outs[0], d, int8(strides[0], 0), int8(strides[1], 0), np.int32(n))
        return [Launch(k, global_1d(n))]


@register
class Clamp(_Elementwise):
    """clamp(x, lo, hi) and select(condition, x, y): three broadcast operands."""

    ops = ("clamp", "select")
    variant = "broadcast"

    def launches(self, program: Any, ins: list[Any], outs: list[Any]) -> list[Launch]:
        out = self.shape(self.step.outputs[0])
        n = size_of(out)
        try:
            s = [int8(nnef_broadcast_strides(self.shape(t), out), 0) for t in self.step.inputs]
        except ValueError as err:
            raise self.fail(str(err)) from err
        k = new_kernel(program, f"t_{self.step.kind}")
        k.set_args(ins[0], ins[1], ins[2], outs[0], int8(out, 1), *s, np.int32(n))
        return [Launch(k, global_1d(n))]


@register
class BatchNorm(_Elementwise):
    """batch_normalization not folded into a conv: scale and shift per channel computed once at plan time."""

    ops = ("batch_normalization",)
    variant = "affine"

    @classmethod
    def supports(cls, step: Step, shapes: Mapping[str, tuple[int, ...]], facts: DeviceFacts) -> bool:
        return step.kind in cls.ops and len(shapes[step.inputs[0]]) >= 2

    def relayout(self, consts: Mapping[str, np.ndarray]) -> dict[str, tuple[str, np.ndarray]]:
        names = self.step.inputs[1:5]
        if not all(n in consts for n in names):
            raise self.fail("batch_normalization needs constant mean, variance, offset and scale")
        c = self.shape(self.step.inputs[0])[1]
        mean, var, offset, scale = (np.broadcast_to(consts[n].astype(np.float64).reshape(-1), (c,)) for n in names)
        k = scale / np.sqrt(var + float(self.step.attrs["epsilon"]))
        out = self.step.outputs[0]
        return {names[0]: (f"{out}:bn_scale", k.astype(np.float32)),
                names[1]: (f"{out}:bn_shift", (offset - mean * k).astype(np.float32)),
                names[2]: (f"{out}:bn_unused", np.zeros(1, np.float32)),
                names[3]: (f"{out}:bn_unused", np.zeros(1, np.float32))}

    def launches(self, program: Any, ins: list[Any], outs: list[Any]) -> list[Launch]:
        shape = self.shape(self.step.inputs[0])
        n = size_of(shape)
        inner = size_of(shape[2:])
        k = new_kernel(program, "channel_affine")
        k.set_args(ins[0], ins[1], ins[2], outs[0], np.int32(shape[1]), np.int32(inner), np.int32(n))
        return [Launch(k, global_1d(n))]
