"""Convolution family: register-blocked direct conv (any stride, dilation, padding, groups incl. depthwise;
1x1 runs the same kernel as a GEMM-shaped loop) and transposed conv. Fused bias + activation."""

from collections.abc import Mapping
from typing import Any

import numpy as np

from ocl_infer.engine.kernels.base import Launch, new_kernel
from ocl_infer.engine.kernels.conv_common import ConvBase
from ocl_infer.engine.kernels.registry import register
from ocl_infer.engine.plan.model import Step

XB = 8


@register
class ConvBlocked(ConvBase):
    ops = ("conv",)
    variant = "blocked"
    fuses_residual = True

    def __init__(self, step: Step, shapes: Mapping[str, tuple[int, ...]]) -> None:
        super().__init__(step, shapes)
        self.ocb = 8 if self.ocg >= 8 else 4 if self.ocg >= 4 else 2 if self.ocg >= 2 else 1
        self.nocb = -(-self.ocg // self.ocb)
        self.yb = 1  # rows per work-item; 2 and 4 measured no faster on PoCL here

    def defines(self) -> dict[str, int]:
        return {**super().defines(), "OCB": self.ocb, "NOCB": self.nocb, "YB": self.yb}

    def relayout(self, consts: Mapping[str, np.ndarray]) -> dict[str, tuple[str, np.ndarray]]:
        fname = self.step.inputs[1]
        if fname not in consts:
            raise self.fail("filter must be a constant")
        f = consts[fname].reshape(self.g, self.ocg, self.icg, self.kh, self.kw)
        padded = np.zeros((self.g, self.nocb * self.ocb, self.icg, self.kh, self.kw), np.float32)
        padded[:, : self.ocg] = f
        w = padded.reshape(self.g, self.nocb, self.ocb, self.icg, self.kh, self.kw).transpose(0, 1, 3, 4, 5, 2)
        return {fname: (f"{fname}#blocked{self.ocb}", np.ascontiguousarray(w)), **self.bias(consts)}

    def launches(self, program: Any, ins: list[Any], outs: list[Any]) -> list[Launch]:
        k = new_kernel(program, "conv2d_blocked")
        bias = ins[2] if len(ins) > 2 else ins[1]  # no bias: NNEF writes 0.0, which arrives as a constant
        k.set_args(ins[0], ins[1], bias, outs[0], np.float32(self.a0), np.float32(self.a1), *self.residual_args(ins))
        gx, gz = -(-self.ow // XB), self.n * self.g * self.nocb
        lx, lz = self.local_size(gx, gz)
        # explicit small work-groups: PoCL's automatic choice can be huge and its per-work-group
        # context of float8 accumulators then overflows the worker stack
        gy = -(-self.oh // self.yb)
        return [Launch(k, (-(-gx // lx) * lx, gy, -(-gz // lz) * lz), (lx, 1, lz))]

    @staticmethod
    def local_size(gx: int, gz: int) -> tuple[int, int]:
        return min(gx, 4), min(gz, 2)


@register
class Deconv(ConvBase):
    ops = ("deconv",)
    variant = "gather"
    transposed = True

    def __init__(self, step: Step, shapes: Mapping[str, tuple[int, ...]]) -> None:
        super().__init__(step, shapes)
        f = shapes[step.inputs[1]]  # deconv filter is [IC, OC/groups, KH, KW]
        self.ocg = f[1]
        self.icg = self.ic // self.g

    def defines(self) -> dict[str, int]:
        return {**super().defines(), "OCB": 1, "NOCB": 1, "YB": 1}

    def relayout(self, consts: Mapping[str, np.ndarray]) -> dict[str, tuple[str, np.ndarray]]:
        return self.bias(consts)

    def launches(self, program: Any, ins: list[Any], outs: list[Any]) -> list[Launch]:
        k = new_kernel(program, "deconv2d")
        k.set_args(ins[0], ins[1], ins[2], outs[0], np.float32(self.a0), np.float32(self.a1))
        return [Launch(k, (self.ow, self.oh, self.n * self.oc))]
