"""Normalization family: layer normalization (transformer detectors: RT-DETR's encoder and decoder), one
work-item per row on both kernel families (rows are many: one per token)."""

from collections.abc import Mapping
from typing import Any

import numpy as np

from ocl_infer.engine.kernels.base import Kernel, Launch, global_1d, new_kernel, size_of
from ocl_infer.engine.kernels.registry import register
from ocl_infer.engine.plan.model import DeviceFacts, Step


@register
class LayerNorm(Kernel):
    ops = ("layer_normalization",)
    variant = "rows"
    cl_file = "normalization.cl"

    @staticmethod
    def row_length(step: Step, shapes: Mapping[str, tuple[int, ...]]) -> int | None:
        """Elements per row when `axes` are the trailing axes (as ONNX defines them), else None."""
        x = shapes[step.inputs[0]]
        axes = sorted(int(a) for a in step.attrs["axes"])
        if not axes or axes != list(range(axes[0], len(x))):
            return None
        return size_of(x[axes[0]:])

    @classmethod
    def supports(cls, step: Step, shapes: Mapping[str, tuple[int, ...]], facts: DeviceFacts) -> bool:
        r = cls.row_length(step, shapes) if step.kind in cls.ops else None
        # scale and offset: one value per row element, or one value for all
        return r is not None and all(size_of(shapes[n]) in (1, r) for n in step.inputs[1:3])

    def launches(self, program: Any, ins: list[Any], outs: list[Any]) -> list[Launch]:
        r = self.row_length(self.step, self.shapes)
        if r is None:
            raise self.fail("layer normalization over axes that are not the trailing ones")
        rows = size_of(self.shape(self.step.inputs[0])) // max(r, 1)
        strides = [np.int32(0 if size_of(self.shape(n)) == 1 else 1) for n in self.step.inputs[1:3]]
        k = new_kernel(program, "layer_norm_rows")
        k.set_args(ins[0], ins[1], ins[2], outs[0], np.int32(rows), np.int32(r), *strides,
                   np.float32(self.step.attrs.get("epsilon", 1e-5)))
        return [Launch(k, global_1d(rows))]
