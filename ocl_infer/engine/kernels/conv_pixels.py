"""Convolution, "pixels" variant: KH x KW ungrouped convs with stride 1 or 2 along x and zero padding,
vectorised over output pixels (see the .cl): pointwise's layout for spatial taps. CPU family only; it takes
the shapes where it measured faster than covec (`MAX_IC`) or, under 16 output channels, than ConvBlocked
(`SMALL_OC_*`); Winograd keeps its 3x3s (higher priority)."""

from collections.abc import Mapping
from typing import Any

import numpy as np

from ocl_infer.engine.kernels.base import Launch, new_kernel
from ocl_infer.engine.kernels.conv_common import PixelVectorConv, all_ones
from ocl_infer.engine.kernels.registry import register
from ocl_infer.engine.plan.model import DeviceFacts, Step

TAG = "#px"
# Input channels up to which the planner takes it (bench/kernels_lab/conv_pixels_ab.py, interleaved A/B on 2
# Zen 4 cores): the stem (3 -> 16, stride 2, 416 input) ran 1.25-2.4x faster than covec alone and 1.45-1.5x in
# YOLOv8n/YOLO11n; from 16 input channels on covec was as fast or faster (0.4-0.95x at load 0.4: the edge
# vectors' zero-padded copies, two loads per stride-2 tap, 13- and 26-wide rows filling 16-pixel vectors badly).
MAX_IC = 4
# Below 16 output channels covec cannot run and the general ConvBlocked would: there pixels takes maps at least
# SMALL_OC_MIN_W wide with up to SMALL_OC_MAX_IC inputs (3x3 + SiLU, interleaved OpenCL event minima on 2 Zen 4
# cores, blocked -> pixels ms: 16->8 at 104x104 0.267 -> 0.209 (YOLO11n's C3k2 bottleneck), 8->8 at 208 1.31 ->
# 0.88, 32->12 at 52 0.50 -> 0.31, 32->8 at 104 stride 2 0.35 -> 0.26, 32->8 at 52 0.26 -> 0.25; slower at
# 32->4 on 26x26 0.05 -> 0.08, 48->8 at 52 0.21 -> 0.36, 64->4 at 52, 128->8 at 26).
SMALL_OC_MAX_IC = 32
SMALL_OC_MIN_W = 48
OB_MAX = 16  # output channels per work-item: 16 float16 accumulators + the input vector within 32 registers


def pixels_blocking(oc: int, ow: int) -> tuple[int, int]:
    """(OB output channels, NPV 16-pixel vectors of one row) per work-item: 16 x 1 measured best (or within the
    noise of the best) on YOLOv8n's k x k shapes; blockings with more accumulators ran slower."""
    return min(OB_MAX, oc), 1


# what the tuner tries besides the rule's choice
BLOCKINGS = ((8, 2), (8, 3), (16, 1), (4, 4), (8, 1), (12, 2), (6, 3), (4, 2))


@register
class ConvPixels(PixelVectorConv):
    ops = ("conv",)
    variant = "pixels"
    priority = 12  # above covec (10) and pointwise (11, disjoint: 1x1 unpadded stride 1), below Winograd (20)
    cl_file = "conv_pixels.cl"
    tag = TAG
    blockings = BLOCKINGS

    def rule_blocking(self) -> tuple[int, int]:
        return pixels_blocking(self.oc, self.ow)

    @classmethod
    def supports(cls, step: Step, shapes: Mapping[str, tuple[int, ...]], facts: DeviceFacts) -> bool:
        if facts.family != "cpu" or not super().supports(step, shapes, facts) or len(step.inputs) < 3:
            return False
        x = shapes[step.inputs[0]]
        a = step.attrs
        stride = tuple(int(v) for v in a.get("stride") or (1, 1))
        taps = cls.filter_taps(step, shapes)
        return (len(x) == 4 and len(taps) == 2 and taps != (1, 1) and max(taps) <= 7
                and int(a.get("groups", 1)) == 1 and all_ones(a.get("dilation")) and not a.get("pool")
                and len(stride) == 2 and stride[1] in (1, 2) and stride[0] in (1, 2)
                and cls._measured_faster(x[1], shapes[step.outputs[0]]))

    @staticmethod
    def _measured_faster(ic: int, y: tuple[int, ...]) -> bool:
        """Covec's shapes (16+ output channels): the few-input stem; below 16 (ConvBlocked's): see SMALL_OC_*."""
        if y[1] >= 16:
            return ic <= MAX_IC
        return ic <= SMALL_OC_MAX_IC and y[3] >= SMALL_OC_MIN_W

    def defines(self) -> dict[str, int]:
        return {"KH": self.kh, "KW": self.kw, "SW": self.sw, **super().defines()}

    def launches(self, program: Any, ins: list[Any], outs: list[Any]) -> list[Launch]:
        k = new_kernel(program, "conv2d_pixels")
        geometry = (self.ic, self.ih, self.iw, self.oc, self.oh, self.ow, self.sh, self.pt, self.pl)
        k.set_args(ins[0], ins[1], ins[2], outs[0], np.float32(self.a0), np.float32(self.a1),
                   *(np.int32(v) for v in geometry), *self.residual_args(ins))
        return [Launch(k, (self.nob, self.oh * -(-self.ow // (16 * self.npv)), self.n), (1, 1, 1))]
