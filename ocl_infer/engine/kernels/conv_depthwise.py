"""Convolution, "depthwise" variant: groups = input channels (MobileNet-style), any depth multiplier, kernel
size, dilation and padding, stride 1 (stride-2 layers stay with ConvBlocked: see the .cl). One launch: an
XV-wide vector of output columns x RY rows per work-item, the zero border applied as a mask on its vector
loads (no padding pass, no scratch). The general `ConvBlocked` spends a float8 per input channel here; this is
1.3-2.6x faster on MobileNet shapes (bench/kernels_lab/README.md)."""

from collections.abc import Mapping
from typing import Any

import numpy as np

from ocl_infer.engine.kernels.base import Launch, new_kernel
from ocl_infer.engine.kernels.conv_common import ConvBase
from ocl_infer.engine.kernels.registry import register
from ocl_infer.engine.plan.model import DeviceFacts, Step

# Output rows per work-item: it reads RY + KH - 1 input rows for RY output rows. Work-items per work-group
# along rows: PoCL runs a group as one loop; fewer, fuller groups. 4 x 8 against 2 x 4 on YOLO11n's seven 3x3
# layers (80x52x52 ... 80x13x13): 0.35-0.45 vs 0.49-0.55 ms in all, interleaved OpenCL event minima on 2 Zen 4
# cores (the old padding pass + conv: 0.50-0.58 ms in two launches per layer).
RY = 4
LY = 8


@register
class ConvDepthwise(ConvBase):
    ops = ("conv",)
    variant = "depthwise"
    priority = 5  # above ConvBlocked; covec and Winograd never take grouped convs
    cl_file = "conv_depthwise.cl"

    def __init__(self, step: Step, shapes: Mapping[str, tuple[int, ...]]) -> None:
        super().__init__(step, shapes)
        self.xv = 16 if self.ow > 8 else 8  # narrow maps (7x7) would waste half of a 16-lane vector

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

    def launches(self, program: Any, ins: list[Any], outs: list[Any]) -> list[Launch]:
        conv = new_kernel(program, "depthwise_conv")
        geometry = (self.oc, self.oc // self.ic, self.ih, self.iw, self.oh, self.ow, self.pt, self.pl,
                    self.n * self.ic)
        conv.set_args(ins[0], ins[1], ins[2], outs[0], np.float32(self.a0), np.float32(self.a1),
                      *(np.int32(v) for v in geometry))
        rows = -(-self.oh // RY)
        return [Launch(conv, (-(-self.ow // self.xv), -(-rows // LY) * LY, self.n * self.oc), (1, LY, 1))]
