"""Convolution, "depthwise" variant: groups = input channels (MobileNet-style), any depth multiplier, kernel
size, dilation and padding, stride 1 (stride-2 layers stay with ConvBlocked: see the .cl). A padding pass
writes the input with its zero border into a scratch buffer, then one XV-wide vector of output columns x RY
rows per work-item runs with no border tests. The general `ConvBlocked` spends a float8 per input channel
here; this is 1.3-2.6x faster on MobileNet shapes (bench/kernels_lab/README.md)."""

from collections.abc import Mapping
from typing import Any

import numpy as np

from ocl_infer.engine.kernels.base import Launch, ScratchLaunch, new_kernel
from ocl_infer.engine.kernels.conv_common import ConvBase
from ocl_infer.engine.kernels.registry import register
from ocl_infer.engine.plan.model import DeviceFacts, Step

RY = 2  # output rows per work-item: each weight is loaded once for RY rows
LY = 4  # work-items per work-group along rows (PoCL runs a group as one loop; fewer, fuller groups)
PAD_LOCAL = 4  # padded rows per work-group of the padding pass


@register
class ConvDepthwise(ConvBase):
    ops = ("conv",)
    variant = "depthwise"
    priority = 5  # above ConvBlocked; covec and Winograd never take grouped convs
    cl_file = "conv_depthwise.cl"

    def __init__(self, step: Step, shapes: Mapping[str, tuple[int, ...]]) -> None:
        super().__init__(step, shapes)
        self.xv = 16 if self.ow > 8 else 8  # narrow maps (7x7) would waste half of a 16-lane vector
        rows, cols = -(-self.oh // RY), -(-self.ow // self.xv)
        # every row / column a work-item reads, over-hanging ones included
        self.ph = rows * RY + (self.kh - 1) * self.dh
        self.pw = cols * self.xv + (self.kw - 1) * self.dw

    @classmethod
    def supports(cls, step: Step, shapes: Mapping[str, tuple[int, ...]], facts: DeviceFacts) -> bool:
        if not super().supports(step, shapes, facts) or len(step.inputs) < 3:
            return False
        x, f = shapes[step.inputs[0]], shapes[step.inputs[1]]
        groups = int(step.attrs.get("groups", 1))
        stride_1 = all(int(v) == 1 for v in step.attrs.get("stride") or ())
        return (len(x) == 4 and x[1] > 1 and groups in (0, x[1]) and f[1] == 1 and f[0] % x[1] == 0
                and stride_1)

    def build_options(self) -> str:
        fixed = {"KH": self.kh, "KW": self.kw, "DH": self.dh, "DW": self.dw, "RY": RY, "XV": self.xv,
                 "ACT": self.act}
        return " ".join(f"-D{k}={v}" for k, v in fixed.items()) + " -cl-fast-relaxed-math -cl-mad-enable"

    def relayout(self, consts: Mapping[str, np.ndarray]) -> dict[str, tuple[str, np.ndarray]]:
        if self.step.inputs[1] not in consts:
            raise self.fail("filter must be a constant")
        return self.bias(consts)  # the filter [OC, 1, KH, KW] already is the kernel's [OC][KH][KW]

    def scratch_sizes(self) -> tuple[int]:
        return (self.n * self.ic * self.ph * self.pw * 4,)  # the padded input

    def launches(self, program: Any, ins: list[Any], outs: list[Any]) -> list[Launch]:
        (xp,) = self.scratch_buffers(program.context)
        i32 = np.int32
        pad = new_kernel(program, "depthwise_pad")
        pad.set_args(ins[0], xp, *(i32(v) for v in (self.ih, self.iw, self.ph, self.pw, self.pt, self.pl)))
        conv = new_kernel(program, "depthwise_conv")
        conv.set_args(xp, ins[1], ins[2], outs[0], np.float32(self.a0), np.float32(self.a1),
                      *(i32(v) for v in (self.oc, self.oc // self.ic, self.ph, self.pw, self.oh, self.ow)))
        rows = -(-self.oh // RY)
        return [ScratchLaunch(pad, (-(-self.ph // PAD_LOCAL) * PAD_LOCAL, self.n * self.ic), (PAD_LOCAL, 1), (xp,)),
                ScratchLaunch(conv, (-(-self.ow // self.xv), -(-rows // LY) * LY, self.n * self.oc), (1, LY, 1),
                              (xp,))]
