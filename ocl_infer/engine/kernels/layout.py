"""Data movement family: one strided-copy kernel does transpose, slice, concat, split, copy and nearest
upsample (as a broadcast view); pad and multilinear upsample have their own kernels."""

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np

from ocl_infer.engine.kernels.base import (
    MAX_RANK,
    Kernel,
    Launch,
    collapse_dims,
    contiguous_strides,
    global_1d,
    int8,
    local_2d,
    new_kernel,
    size_of,
)
from ocl_infer.engine.kernels.registry import register
from ocl_infer.engine.plan.model import DeviceFacts, Step

_BORDERS = {"constant": 0, "replicate": 1, "reflect": 2, "reflect-even": 3}
_METHODS = {"symmetric": 0, "asymmetric": 1, "aligned": 2}


class _Layout(Kernel):
    cl_file = "layout.cl"
    headers = ("common.h.cl",)

    def copy_launch(self, program: Any, src: Any, dst: Any, dims: tuple[int, ...], ss: tuple[int, ...],
                    ds: tuple[int, ...], soff: int = 0, doff: int = 0) -> Launch:
        dims, ss, ds = collapse_dims(dims, ss, ds)
        if len(dims) > MAX_RANK:
            raise self.fail(f"rank {len(dims)} exceeds {MAX_RANK}")
        n = size_of(dims)
        if len(dims) == 1 and ss == (1,) and ds == (1,):  # one contiguous run: no index arithmetic
            k = new_kernel(program, "contiguous_copy")
            k.set_args(src, dst, np.int32(soff), np.int32(doff), np.int32(n))
            return Launch(k, global_1d(n))
        if len(dims) <= 3:  # innermost dim first on the grid: exact sizes, the driver picks the work-group
            d, s_, t = ((*dims[::-1], 1, 1)[:3], (*ss[::-1], 0, 0)[:3], (*ds[::-1], 0, 0)[:3])
            if self.step.attrs.get("vector") and s_[0] == t[0] == 1 and d[0] >= 16:  # CPU family: rows
                k = new_kernel(program, "rows_copy16")
                k.set_args(src, dst, *(np.int32(v) for v in (d[0], s_[1], s_[2], t[1], t[2], soff, doff, ROW_CHUNK)))
                return Launch(k, (-(-d[0] // ROW_CHUNK), d[1], d[2]), (1, 1, 1))
            k = new_kernel(program, "grid_copy")
            k.set_args(src, dst, *(np.int32(v) for v in (*s_, *t, soff, doff)))
            return Launch(k, tuple(int(v) for v in d), None)
        k = new_kernel(program, "strided_copy")
        k.set_args(src, dst, int8(dims, 1), int8(ss, 0), int8(ds, 0), np.int32(soff), np.int32(doff), np.int32(n))
        return Launch(k, global_1d(n))


ROW_CHUNK = 512  # floats per work-item of rows_copy16: few work-groups, each a run of whole vectors


@register
class StridedCopy(_Layout):
    ops = ("copy", "reshape", "squeeze", "unsqueeze", "transpose", "slice", "concat", "split", "nearest_upsample",
           "stack", "unstack", "tile")
    variant = "strided"

    @classmethod
    def device_rule(cls, step: Step, shapes: Mapping[str, tuple[int, ...]], facts: DeviceFacts) -> Step:
        """GPU family: 2-D work-groups for upsampling. CPU family: `vector` 16, explicit float16 row copies
        (rows_copy16, nearest_upsample2x_8) where the innermost axis allows."""
        if facts.family != "cpu":
            return local_2d(step, facts) if step.kind == "nearest_upsample" else step
        return Step(step.kind, step.variant, step.inputs, step.outputs,
                    MappingProxyType({**step.attrs, "vector": 16}), step.name)

    @classmethod
    def supports(cls, step: Step, shapes: Mapping[str, tuple[int, ...]], facts: DeviceFacts) -> bool:
        if step.kind in ("nearest_upsample", "tile"):
            return len(shapes[step.inputs[0]]) <= 4
        return step.kind in cls.ops

    def launches(self, program: Any, ins: list[Any], outs: list[Any]) -> list[Launch]:
        kind, a = self.step.kind, self.step.attrs
        x, y = self.shape(self.step.inputs[0]), self.shape(self.step.outputs[0])
        if kind in ("copy", "reshape", "squeeze", "unsqueeze"):
            n = size_of(y)
            return [self.copy_launch(program, ins[0], outs[0], (n,), (1,), (1,))]
        if kind == "transpose":
            perm = list(a["axes"]) + list(range(len(a["axes"]), len(x)))
            xs = contiguous_strides(x)
            return [self.copy_launch(program, ins[0], outs[0], y, tuple(xs[p] for p in perm), contiguous_strides(y))]
        if kind == "slice":
            xs = contiguous_strides(x)
            ss, off = list(xs), 0
            steps = a.get("stride") or (1,) * len(a["axes"])
            for axis, begin, end, step in zip(a["axes"], a["begin"], a["end"], steps, strict=True):
                axis = axis % len(x)
                b = _slice_begin(begin, end, step, x[axis])
                off += b * xs[axis]
                ss[axis] = xs[axis] * step
            return [self.copy_launch(program, ins[0], outs[0], y, tuple(ss), contiguous_strides(y), soff=off)]
        if kind == "concat":
            axis = a["axis"] % len(y)
            ys, off, res = contiguous_strides(y), 0, []
            for buf, name in zip(ins, self.step.inputs, strict=True):
                s = self.shape(name)
                if size_of(s):
                    res.append(self.copy_launch(program, buf, outs[0], s, contiguous_strides(s), ys, doff=off))
                off += s[axis] * ys[axis]
            return res
        if kind == "split":
            axis = a["axis"] % len(x)
            xs, off, res = contiguous_strides(x), 0, []
            for buf, name in zip(outs, self.step.outputs, strict=True):
                s = self.shape(name)
                if size_of(s):
                    res.append(self.copy_launch(program, ins[0], buf, s, xs, contiguous_strides(s), soff=off))
                off += s[axis] * xs[axis]
            return res
        if kind in ("stack", "unstack"):  # one strided copy per slice along the new / removed axis
            full = y if kind == "stack" else x
            axis = a["axis"] % len(full)
            fs, res = contiguous_strides(full), []
            parts = zip(ins, self.step.inputs, strict=True) if kind == "stack" else \
                zip(outs, self.step.outputs, strict=True)
            for i, (buf, name) in enumerate(parts):
                part = self.shape(name)
                strides = fs[:axis] + fs[axis + 1:]
                if kind == "stack":
                    res.append(self.copy_launch(program, buf, outs[0], part, contiguous_strides(part), strides,
                                                doff=i * fs[axis]))
                else:
                    res.append(self.copy_launch(program, ins[0], buf, part, strides, contiguous_strides(part),
                                                soff=i * fs[axis]))
            return res
        if kind == "tile":  # each output dim viewed as (repeat, size) reading the input with stride 0, s
            xs = contiguous_strides(x)
            dims, ss = [], []
            for d, s_, r in zip(x, xs, a["repeats"], strict=True):
                dims += [r, d]
                ss += [0, s_]
            if len(dims) > MAX_RANK:
                raise self.fail(f"tile of a rank-{len(x)} tensor exceeds rank {MAX_RANK} views")
            return [self.copy_launch(program, ins[0], outs[0], tuple(dims), tuple(ss),
                                     contiguous_strides(tuple(dims)))]
        if kind == "nearest_upsample":
            f = tuple(a["factor"])
            if len(x) == 4 and tuple(f) == (2, 2) and a.get("vector"):  # YOLO's FPN upsample on the CPU family
                k = new_kernel(program, "nearest_upsample2x_8")
                k.set_args(ins[0], outs[0], np.int32(x[2]), np.int32(x[3]))
                return [Launch(k, (-(-x[3] // 8), x[2], x[0] * x[1]), (1, 1, 1))]
            if len(x) == 4 and len(f) == 2:  # the common 2-D case: a dedicated kernel
                k = new_kernel(program, "nearest_upsample2d")
                k.set_args(ins[0], outs[0], *(np.int32(v) for v in (x[2], x[3], f[0], f[1])))
                lx, ly, _ = a.get("local") or (8, 1, 1)  # one local size for every map: one JIT specialisation
                return [Launch(k, (-(-x[3] // lx) * lx, -(-x[2] // ly) * ly, x[0] * x[1]), (lx, ly, 1))]
            # otherwise view the output as (..., H, fh, W, fw) reading the input with 0 strides
            lead = x[: len(x) - len(f)]
            dims, ss = list(lead), list(contiguous_strides(x)[: len(lead)])
            xs = contiguous_strides(x)
            for i, fi in enumerate(f):
                axis = len(lead) + i
                dims += [x[axis], fi]
                ss += [xs[axis], 0]
            return [self.copy_launch(program, ins[0], outs[0], tuple(dims), tuple(ss), contiguous_strides(tuple(dims)))]
        raise self.fail(f"strided copy cannot run {kind}")


def _slice_begin(begin: int, end: int, step: int, length: int) -> int:
    """The first index a slice reads: negative begins count from the end; clamped into the axis."""
    b = begin + length if begin < 0 else begin
    return min(max(b, 0), length - 1)


@register
class Pad(_Layout):
    ops = ("pad",)
    variant = "nd"

    @classmethod
    def supports(cls, step: Step, shapes: Mapping[str, tuple[int, ...]], facts: DeviceFacts) -> bool:
        return step.kind in cls.ops and step.attrs.get("border", "constant") in _BORDERS

    def launches(self, program: Any, ins: list[Any], outs: list[Any]) -> list[Launch]:
        x, y = self.shape(self.step.inputs[0]), self.shape(self.step.outputs[0])
        padding = list(self.step.attrs["padding"]) + [(0, 0)] * (len(x) - len(self.step.attrs["padding"]))
        n = size_of(y)
        k = new_kernel(program, "pad_nd")
        k.set_args(ins[0], outs[0], int8(y, 1), int8(x, 1), int8(contiguous_strides(x), 0),
                   int8(tuple(p[0] for p in padding), 0), np.int32(_BORDERS[self.step.attrs.get("border", "constant")]),
                   np.float32(self.step.attrs.get("value", 0.0)), np.int32(n))
        return [Launch(k, global_1d(n))]


@register
class LinearUpsample(_Layout):
    ops = ("multilinear_upsample",)
    variant = "2d"

    @classmethod
    def supports(cls, step: Step, shapes: Mapping[str, tuple[int, ...]], facts: DeviceFacts) -> bool:
        a = step.attrs
        return (step.kind in cls.ops and len(shapes[step.inputs[0]]) == 4 and len(a["factor"]) == 2
                and a.get("method", "symmetric") in _METHODS
                and a.get("border", "replicate") in ("constant", "replicate"))

    def launches(self, program: Any, ins: list[Any], outs: list[Any]) -> list[Launch]:
        x, y = self.shape(self.step.inputs[0]), self.shape(self.step.outputs[0])
        n = size_of(y)
        a = self.step.attrs
        k = new_kernel(program, "linear_upsample2d")
        k.set_args(ins[0], outs[0], np.int32(x[2]), np.int32(x[3]), np.int32(y[2]), np.int32(y[3]),
                   np.int32(_METHODS[a.get("method", "symmetric")]),
                   np.int32(1 if a.get("border", "replicate") == "replicate" else 0), np.int32(n))
        return [Launch(k, global_1d(n))]
