"""Indexing family: top_k, gather_elements and gather (the end-to-end detection heads of YOLOv10/YOLO26), and
grid_sample (transformer detectors).

Integer tensors (indices) are float32 holding exact integers, so every axis an index addresses must stay
within 2^24 (float32's exact integers): longer ones are refused at plan time. Both kernel families share these
kernels; the GPU family gives top_k's select pass a wider work-group."""

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np

from ocl_infer.engine.kernels.base import (
    Kernel,
    Launch,
    ScratchLaunch,
    contiguous_strides,
    global_1d,
    int8,
    new_kernel,
    size_of,
)
from ocl_infer.engine.kernels.registry import register
from ocl_infer.engine.plan.model import DeviceFacts, Step

EXACT_INDEX = 2**24  # float32 holds every integer up to here exactly
# top_k's select pass: one work-group per row. PoCL runs a work-group as one thread, so the CPU family keeps it
# small (fewer barrier loops); the GPU family fills a few warps with it.
TOPK_LOCAL = {"cpu": 16, "gpu": 256}


class _Indexing(Kernel):
    cl_file = "indexing.cl"
    headers = ("common.h.cl",)

    def check_axis(self, length: int) -> None:
        if length > EXACT_INDEX:
            raise self.fail(f"an axis of {length} elements is indexed; indices are exact up to {EXACT_INDEX}")


@register
class TopK(_Indexing):
    """Radix select of the k best per row into scratch, then one work-item per kept element writes it at its rank.
    The output is always sorted (best first, lower index first on ties), which `sorted = false` also allows."""

    ops = ("top_k",)
    variant = "radix"

    @classmethod
    def device_rule(cls, step: Step, shapes: Mapping[str, tuple[int, ...]], facts: DeviceFacts) -> Step:
        local = max(1, min(TOPK_LOCAL[facts.family], facts.max_work_group_size))  # small-group devices too
        return Step(step.kind, step.variant, step.inputs, step.outputs,
                    MappingProxyType({**step.attrs, "local": local}), step.name)

    def geometry(self) -> tuple[int, int, int, int]:
        """(rows, n, inner, k) of the input viewed as [outer][n][inner]."""
        x = self.shape(self.step.inputs[0])
        axis, k = int(self.step.attrs["axis"]), int(self.step.attrs["k"])
        inner = size_of(x[axis + 1:])
        self.check_axis(x[axis])
        return size_of(x[:axis]) * inner, x[axis], inner, k

    def local(self) -> int:
        return int(self.step.attrs.get("local") or TOPK_LOCAL["cpu"])

    def build_options(self) -> str:
        return f"-DTOPK_LOCAL={self.local()}"

    def scratch_sizes(self) -> tuple[int]:
        rows, _, _, k = self.geometry()
        return (max(4, rows * k * 2 * 4),)

    def launches(self, program: Any, ins: list[Any], outs: list[Any]) -> list[Launch]:
        rows, n, inner, k = self.geometry()
        largest = np.int32(1 if self.step.attrs.get("largest", True) else 0)
        (scratch,) = self.scratch_buffers()
        select = new_kernel(program, "topk_select")
        select.set_args(ins[0], scratch, np.int32(n), np.int32(inner), np.int32(k), largest)
        rank = new_kernel(program, "topk_rank")
        rank.set_args(scratch, outs[0], outs[1], np.int32(inner), np.int32(k), largest)
        lx = 64
        return [ScratchLaunch(select, (rows * self.local(),), (self.local(),), (scratch,)),
                ScratchLaunch(rank, (-(-k // lx) * lx, rows), (lx, 1), (scratch,))]


@register
class GatherElements(_Indexing):
    ops = ("gather_elements",)
    variant = "nd"

    @classmethod
    def supports(cls, step: Step, shapes: Mapping[str, tuple[int, ...]], facts: DeviceFacts) -> bool:
        return step.kind in cls.ops and len(shapes[step.inputs[1]]) <= 8

    def launches(self, program: Any, ins: list[Any], outs: list[Any]) -> list[Launch]:
        x, idx = self.shape(self.step.inputs[0]), self.shape(self.step.inputs[1])
        axis = int(self.step.attrs["axis"])
        self.check_axis(x[axis])
        n = size_of(idx)
        if x[:axis] == idx[:axis] and x[axis + 1:] == idx[axis + 1:]:
            k = new_kernel(program, "gather_elements_rows")
            k.set_args(ins[0], ins[1], outs[0], np.int32(x[axis]), np.int32(idx[axis]),
                       np.int32(size_of(x[axis + 1:])), np.int32(n))
            return [Launch(k, global_1d(n))]
        xs = list(contiguous_strides(x))
        s_axis, xs[axis] = xs[axis], 0  # the axis coordinate comes from the index, not from the position
        k = new_kernel(program, "gather_elements")
        k.set_args(ins[0], ins[1], outs[0], int8(idx, 1), int8(tuple(xs), 0), np.int32(x[axis]), np.int32(s_axis),
                   np.int32(n))
        return [Launch(k, global_1d(n))]


@register
class Gather(_Indexing):
    ops = ("gather",)
    variant = "axis"

    def launches(self, program: Any, ins: list[Any], outs: list[Any]) -> list[Launch]:
        x = self.shape(self.step.inputs[0])
        axis = int(self.step.attrs.get("axis", 0))
        self.check_axis(x[axis])
        m, total = size_of(self.shape(self.step.inputs[1])), size_of(self.shape(self.step.outputs[0]))
        k = new_kernel(program, "gather")
        k.set_args(ins[0], ins[1], outs[0], np.int32(x[axis]), np.int32(m), np.int32(size_of(x[axis + 1:])),
                   np.int32(total))
        return [Launch(k, global_1d(total))]


_GRID_PADDING = {"zeros": 0, "border": 1, "reflection": 2}


@register
class GridSample(_Indexing):
    """ONNX GridSample on 4-D tensors (RT-DETR's deformable attention): bilinear or nearest, every padding mode,
    both corner conventions; one work-item per sampling point, looping over the channels."""

    ops = ("grid_sample",)
    variant = "2d"

    @classmethod
    def supports(cls, step: Step, shapes: Mapping[str, tuple[int, ...]], facts: DeviceFacts) -> bool:
        a = step.attrs
        return (step.kind in cls.ops and len(shapes[step.inputs[0]]) == 4 and a.get("mode", "linear") in
                ("linear", "nearest") and a.get("padding_mode", "zeros") in _GRID_PADDING)

    def launches(self, program: Any, ins: list[Any], outs: list[Any]) -> list[Launch]:
        n, c, h, w = self.shape(self.step.inputs[0])
        _, ho, wo, _ = self.shape(self.step.inputs[1])
        a = self.step.attrs
        total = n * ho * wo
        k = new_kernel(program, "grid_sample")
        k.set_args(ins[0], ins[1], outs[0], *(np.int32(v) for v in (
            c, h, w, ho, wo, a.get("mode", "linear") == "linear", _GRID_PADDING[a.get("padding_mode", "zeros")],
            bool(a.get("align_corners", False)), total)))
        return [Launch(k, global_1d(total))]
