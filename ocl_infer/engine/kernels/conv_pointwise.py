"""Convolution, "pointwise" variant: 1x1 stride-1 unpadded ungrouped convs (the C2f/C3k2/SPPF 1x1s of
YOLOv5/v8/11, ResNet bottlenecks, MobileNet's projections) as a GEMM over the flattened map, vectorised over
pixels (see the .cl). CPU family only; covec keeps the 1x1s with a fused pool, strides or padding."""

from collections.abc import Mapping
from typing import Any

import numpy as np

from ocl_infer.engine.kernels.base import Launch, new_kernel
from ocl_infer.engine.kernels.conv_common import PixelVectorConv, all_ones, least_padded
from ocl_infer.engine.kernels.registry import register
from ocl_infer.engine.plan.model import DeviceFacts, Step

TAG = "#pw"
OB_MAX = 8  # output channels per work-item: OB x NPV float16 accumulators + NPV inputs within 32 registers


def pointwise_blocking(oc: int, pixels: int) -> tuple[int, int]:
    """(OB output channels, NPV 16-pixel vectors) per work-item: 8 x 3 (24 accumulators) where that pads the
    map's vectors by under 2 %, else the least padded of 3, 2, 1 vectors (`least_padded`): 26x26 = 43 vectors
    take 1 (3 would compute 45; the tuner measured 8x1 4-7 % faster there), 13x13 = 11 vectors 1."""
    ob = min(OB_MAX, oc)
    (npv,) = least_padded(((3,), (2,), (1,)), (-(-pixels // 16),))
    return ob, npv


# what the tuner tries besides the rule's choice
BLOCKINGS = ((8, 3), (8, 2), (6, 4), (4, 4), (8, 1), (12, 2), (4, 6), (16, 1))


@register
class ConvPointwise(PixelVectorConv):
    ops = ("conv",)
    variant = "pointwise"
    priority = 11  # above covec, which takes every 1x1 too
    cl_file = "conv_pointwise.cl"
    tag = TAG
    blockings = BLOCKINGS

    def __init__(self, step: Step, shapes: Mapping[str, tuple[int, ...]]) -> None:
        super().__init__(step, shapes)
        self.np_ = self.ih * self.iw  # pixels of one map: the GEMM's columns

    def rule_blocking(self) -> tuple[int, int]:
        return pointwise_blocking(self.oc, self.ih * self.iw)

    @classmethod
    def supports(cls, step: Step, shapes: Mapping[str, tuple[int, ...]], facts: DeviceFacts) -> bool:
        if facts.family != "cpu" or not super().supports(step, shapes, facts) or len(step.inputs) < 3:
            return False
        x, y = shapes[step.inputs[0]], shapes[step.outputs[0]]
        a = step.attrs
        pads = [tuple(p) for p in (a.get("padding") or ())]
        return (len(x) in (3, 4) and cls.filter_taps(step, shapes) in ((1,), (1, 1))
                and int(a.get("groups", 1)) == 1 and all_ones(a.get("stride")) and all(p == (0, 0) for p in pads)
                and not a.get("pool") and tuple(y[2:]) == tuple(x[2:]))

    def launches(self, program: Any, ins: list[Any], outs: list[Any]) -> list[Launch]:
        k = new_kernel(program, "conv2d_pointwise")
        k.set_args(ins[0], ins[1], ins[2], outs[0], np.float32(self.a0), np.float32(self.a1),
                   *(np.int32(v) for v in (self.ic, self.np_, self.oc)), *self.residual_args(ins))
        return [Launch(k, (self.nob, -(-self.np_ // (16 * self.npv)), self.n), (1, 1, 1))]
