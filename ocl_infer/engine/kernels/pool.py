"""Pooling and reduction family: max/avg/box pooling (all border modes), mean/max/min/sum reduce, softmax."""

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np

from ocl_infer.engine.kernels.base import (
    Kernel,
    Launch,
    auto_padding,
    contiguous_strides,
    global_1d,
    int8,
    local_2d,
    new_kernel,
    size_of,
)
from ocl_infer.engine.kernels.registry import register
from ocl_infer.engine.plan.model import DeviceFacts, Step

_POOL_BORDERS = {"ignore": 0, "constant": 1, "replicate": 2, "reflect": 3, "reflect-even": 4}
_POOL_MODES = {"max_pool": 0, "avg_pool": 1, "box": 2}
_REDUCE_MODES = {"sum_reduce": 0, "mean_reduce": 1, "max_reduce": 2, "min_reduce": 3, "softmax": 0}


POOL_LOCAL_X = 8


class _Pool(Kernel):
    cl_file = "pool.cl"
    headers = ("common.h.cl",)


@register
class Pool2d(_Pool):
    ops = ("max_pool", "avg_pool", "box")
    variant = "2d"

    @classmethod
    def device_rule(cls, step: Step, shapes: Mapping[str, tuple[int, ...]], facts: DeviceFacts) -> Step:
        return local_2d(step, facts)

    @classmethod
    def supports(cls, step: Step, shapes: Mapping[str, tuple[int, ...]], facts: DeviceFacts) -> bool:
        if step.kind not in cls.ops or step.attrs.get("border", "constant") not in _POOL_BORDERS:
            return False
        rank = len(shapes[step.inputs[0]])
        size, stride = step.attrs["size"], step.attrs.get("stride") or (1,) * rank
        pads = step.attrs.get("padding") or ()
        lead = rank - 2
        return (rank >= 2 and all(s == 1 for s in size[:lead]) and all(s == 1 for s in stride[:lead])
                and all(tuple(p) == (0, 0) for p in pads[:lead]))

    def geometry(self) -> dict[str, int]:
        a = self.step.attrs
        x, y = self.shape(self.step.inputs[0]), self.shape(self.step.outputs[0])
        rank = len(x)
        kh, kw = a["size"][-2:]
        sh, sw = (a.get("stride") or (1,) * rank)[-2:]
        dh, dw = (a.get("dilation") or (1,) * rank)[-2:]
        pads = a.get("padding") or ()
        if pads:
            pt, pl = pads[-2][0], pads[-1][0]
        else:
            pt = auto_padding(x[-2], y[-2], kh, sh, dh)[0]
            pl = auto_padding(x[-1], y[-1], kw, sw, dw)[0]
        return dict(IH=x[-2], IW=x[-1], OH=y[-2], OW=y[-1], KH=kh, KW=kw, SH=sh, SW=sw, DH=dh, DW=dw, PT=pt, PL=pl,
                    BORDER=_POOL_BORDERS[a.get("border", "constant")], MODE=self.mode())

    def mode(self) -> int:
        if self.step.kind == "box" and self.step.attrs.get("normalize", False):
            return _POOL_MODES["avg_pool"]  # a normalized box filter is an average pool
        return _POOL_MODES[self.step.kind]

    def build_options(self) -> str:
        sizes = ("IH", "IW", "OH", "OW")  # passed at launch
        return " ".join(f"-DP_{k}={v}" for k, v in self.geometry().items() if k not in sizes)

    def launches(self, program: Any, ins: list[Any], outs: list[Any]) -> list[Launch]:
        y = self.shape(self.step.outputs[0])
        planes = size_of(y[:-2])
        k = new_kernel(program, "pool2d")
        g = self.geometry()
        k.set_args(ins[0], outs[0], *(np.int32(g[d]) for d in ("IH", "IW", "OH", "OW")))
        # one local size for every map: one JIT specialisation per program (PoCL compiles per local size)
        lx, ly, _ = self.step.attrs.get("local") or (POOL_LOCAL_X, 1, 1)
        return [Launch(k, (-(-g["OW"] // lx) * lx, -(-g["OH"] // ly) * ly, planes), (lx, ly, 1))]


@register
class MaxPoolColumns(Pool2d):
    """CPU family: max pools with a window of 9+ taps (SPPF's 5x5) walk each plane's rows once per output column,
    each row's horizontal max computed once (pool.cl `max_pool_columns`); small windows (2x2) stay `2d`."""

    ops = ("max_pool",)
    variant = "columns"
    priority = 1
    MAX_ROWS = 16  # the window's rows live in registers

    @classmethod
    def device_rule(cls, step: Step, shapes: Mapping[str, tuple[int, ...]], facts: DeviceFacts) -> Step:
        return step

    @classmethod
    def supports(cls, step: Step, shapes: Mapping[str, tuple[int, ...]], facts: DeviceFacts) -> bool:
        if facts.family != "cpu" or not super().supports(step, shapes, facts):
            return False
        rank = len(shapes[step.inputs[0]])
        kh, kw = step.attrs["size"][-2:]
        dh = (step.attrs.get("dilation") or (1,) * rank)[-2]
        return (step.attrs.get("border", "constant") in ("ignore", "constant") and dh == 1
                and kh * kw >= 9 and kh <= cls.MAX_ROWS)

    def launches(self, program: Any, ins: list[Any], outs: list[Any]) -> list[Launch]:
        y = self.shape(self.step.outputs[0])
        g = self.geometry()
        n = size_of(y[:-2]) * g["OW"]
        k = new_kernel(program, "max_pool_columns")
        k.set_args(ins[0], outs[0], *(np.int32(g[d]) for d in ("IH", "IW", "OH", "OW")), np.int32(n))
        return [Launch(k, global_1d(n))]


@register
class ReduceAxes(_Pool):
    ops = ("sum_reduce", "mean_reduce", "max_reduce", "min_reduce", "softmax")
    variant = "axes"

    @classmethod
    def device_rule(cls, step: Step, shapes: Mapping[str, tuple[int, ...]], facts: DeviceFacts) -> Step:
        """CPU family: softmax over a contiguous block of axes on 16 rows per work-item (explicit float16, see
        softmax_rows16), or along the last axis a row per work-item as float16 vectors (softmax_last16); GPU
        family: a work-item per row (neighbouring work-items read neighbouring words)."""
        if facts.family != "cpu" or step.kind != "softmax":
            return step
        return Step(step.kind, step.variant, step.inputs, step.outputs,
                    MappingProxyType({**step.attrs, "vector": 16}), step.name)

    def launches(self, program: Any, ins: list[Any], outs: list[Any]) -> list[Launch]:
        x = self.shape(self.step.inputs[0])
        axes = sorted({ax % len(x) for ax in self.step.attrs.get("axes", (1,))})
        xs = contiguous_strides(x)
        keep = [d for d in range(len(x)) if d not in axes]
        od, os = tuple(x[d] for d in keep), tuple(xs[d] for d in keep)
        rd, rs = tuple(x[d] for d in axes), tuple(xs[d] for d in axes)
        n, nred = size_of(od), size_of(rd)
        softmax = self.step.kind == "softmax"
        if axes == list(range(axes[0], axes[-1] + 1)):  # one contiguous block: the [outer][r][inner] view
            inner = size_of(tuple(x[axes[-1] + 1:]))
            if softmax and self.step.attrs.get("vector") and inner >= 16:
                k = new_kernel(program, "softmax_rows16")
                k.set_args(ins[0], outs[0], np.int32(nred), np.int32(inner))
                return [Launch(k, (-(-inner // 16), size_of(tuple(x[: axes[0]]))), (1, 1))]
            if softmax and self.step.attrs.get("vector") and inner == 1 and nred >= 16:  # contiguous rows
                k = new_kernel(program, "softmax_last16")
                k.set_args(ins[0], outs[0], np.int32(nred))
                return [Launch(k, (n,), (1,))]
            k = new_kernel(program, "softmax_rows" if softmax else "reduce_rows")
            mode = () if softmax else (np.int32(_REDUCE_MODES[self.step.kind]),)
            k.set_args(ins[0], outs[0], np.int32(nred), np.int32(inner), *mode, np.int32(n))
            return [Launch(k, global_1d(n))]
        k = new_kernel(program, "softmax_axes") if softmax else new_kernel(program, "reduce_axes")
        k.set_args(ins[0], outs[0], int8(od, 1), int8(os, 0), int8(rd, 1), int8(rs, 0), np.int32(nred),
                   np.int32(_REDUCE_MODES[self.step.kind]), np.int32(n))
        return [Launch(k, global_1d(n))]
