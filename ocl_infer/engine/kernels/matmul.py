"""Matrix family: linear (x W^T + b, fused activation) and matmul with transposes and broadcast batch dims."""

from collections.abc import Mapping
from typing import Any

import numpy as np

from ocl_infer.engine.kernels.base import Kernel, Launch, contiguous_strides, new_kernel, size_of
from ocl_infer.engine.kernels.conv_common import ACTIVATIONS
from ocl_infer.engine.kernels.registry import register
from ocl_infer.engine.plan.model import DeviceFacts, Step


@register
class Gemm(Kernel):
    ops = ("linear", "matmul")
    variant = "strided"
    cl_file = "matmul.cl"

    @classmethod
    def supports(cls, step: Step, shapes: Mapping[str, tuple[int, ...]], facts: DeviceFacts) -> bool:
        if step.kind not in cls.ops:
            return False
        a, b = shapes[step.inputs[0]], shapes[step.inputs[1]]
        if step.kind == "linear":
            return len(a) == 2 and len(b) == 2
        if len(a) < 2 or len(b) < 2:
            return False
        ba, bb = a[:-2], b[:-2]
        return ba == bb or size_of(ba) == 1 or size_of(bb) == 1

    def relayout(self, consts: Mapping[str, np.ndarray]) -> dict[str, tuple[str, np.ndarray]]:
        if self.step.kind != "linear" or len(self.step.inputs) < 3:
            return {}
        name = self.step.inputs[2]
        m = self.shape(self.step.inputs[1])[0]
        if name not in consts:
            raise self.fail("linear bias must be a constant")
        b = np.broadcast_to(consts[name].astype(np.float32).reshape(-1), (m,))
        return {name: (f"{name}#bias{m}", np.ascontiguousarray(b))}

    def launches(self, program: Any, ins: list[Any], outs: list[Any]) -> list[Launch]:
        a_shape, b_shape = self.shape(self.step.inputs[0]), self.shape(self.step.inputs[1])
        act = self.step.attrs.get("activation")
        code, a0, a1 = (ACTIVATIONS[act[0]], act[1], act[2]) if act else (0, 0.0, 0.0)
        if self.step.kind == "linear":  # [N,K] x [M,K]^T
            m, k = a_shape
            n = b_shape[0]
            batch, sab, sam, sak, sbb, sbk, sbn = 1, 0, k, 1, 0, 1, k
            bias, sbias = ins[2], 1
        else:
            ta, tb = bool(self.step.attrs.get("transposeA")), bool(self.step.attrs.get("transposeB"))
            a_st, b_st = contiguous_strides(a_shape), contiguous_strides(b_shape)
            m, k = (a_shape[-1], a_shape[-2]) if ta else (a_shape[-2], a_shape[-1])
            n = b_shape[-2] if tb else b_shape[-1]
            sam, sak = (a_st[-1], a_st[-2]) if ta else (a_st[-2], a_st[-1])
            sbk, sbn = (b_st[-1], b_st[-2]) if tb else (b_st[-2], b_st[-1])
            batch = max(size_of(a_shape[:-2]), size_of(b_shape[:-2]))
            sab = m * k if size_of(a_shape[:-2]) > 1 else 0
            sbb = k * n if size_of(b_shape[:-2]) > 1 else 0
            bias, sbias = ins[0], 0  # no bias (the kernel ignores the buffer when sbias is 0)
        kern = new_kernel(program, "gemm_strided")
        kern.set_args(ins[0], ins[1], bias, outs[0], *(np.int32(v) for v in (m, n, k, sab, sam, sak, sbb, sbk, sbn,
                                                                              sbias, code)),
                      np.float32(a0), np.float32(a1))
        return [Launch(kern, (-(-n // 4), m, batch))]
