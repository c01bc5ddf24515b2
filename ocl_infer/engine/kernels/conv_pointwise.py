"""Convolution, "pointwise" variant: 1x1 stride-1 unpadded ungrouped convs (the C2f/C3k2/SPPF 1x1s of
YOLOv5/v8/11, ResNet bottlenecks, MobileNet's projections) as a GEMM over the flattened map, vectorised over
pixels (see the .cl). CPU family only; covec keeps the 1x1s with a fused pool, strides or padding."""

from collections.abc import Mapping
from typing import Any

import numpy as np

from ocl_infer.engine.kernels.base import Launch, new_kernel
from ocl_infer.engine.kernels.conv_common import ConvBase, all_ones, is_half, logical_shapes, storage_array
from ocl_infer.engine.kernels.registry import register
from ocl_infer.engine.plan.model import DeviceFacts, Step

TAG = "#pw"
OB_MAX = 8  # output channels per work-item: OB x NPV float16 accumulators + NPV inputs within 32 registers


def pointwise_blocking(oc: int, pixels: int) -> tuple[int, int]:
    """(OB output channels, NPV 16-pixel vectors) per work-item: 8 x 3 (24 accumulators); maps whose last block
    would be mostly empty get fewer vectors (13x13 = 169 pixels: 11 vectors, 3 per item would pad to 12)."""
    ob = min(OB_MAX, oc)
    vectors = -(-pixels // 16)
    for npv in (3, 2):
        if (-(-vectors // npv) * npv - vectors) * 8 <= vectors:  # empty vectors under 1/8 of the work
            return ob, npv
    return ob, 1


# what the tuner tries besides the rule's choice
BLOCKINGS = ((8, 3), (8, 2), (6, 4), (4, 4), (8, 1), (12, 2), (4, 6), (16, 1))


@register
class ConvPointwise(ConvBase):
    ops = ("conv",)
    variant = "pointwise"
    priority = 11  # above covec, which takes every 1x1 too
    cl_file = "conv_pointwise.cl"
    fuses_residual = True

    def __init__(self, step: Step, shapes: Mapping[str, tuple[int, ...]]) -> None:
        super().__init__(step, logical_shapes(step, shapes, TAG))
        self.np_ = self.ih * self.iw  # pixels of one map: the GEMM's columns
        tuned = step.attrs.get("blocking")  # a tuning-table entry (engine/tuning.py) overrides the rule
        self.ob, self.npv = ((int(tuned[0]), int(tuned[1])) if tuned else pointwise_blocking(self.oc, self.np_))
        self.nob = -(-self.oc // self.ob)
        self.half = is_half(step)

    @classmethod
    def supports(cls, step: Step, shapes: Mapping[str, tuple[int, ...]], facts: DeviceFacts) -> bool:
        if facts.family != "cpu" or not super().supports(step, shapes, facts) or len(step.inputs) < 3:
            return False
        x, f, y = (shapes[n] for n in (step.inputs[0], step.inputs[1], step.outputs[0]))
        a = step.attrs
        pads = [tuple(p) for p in (a.get("padding") or ())]
        # a re-laid-out filter (runtime) carries its taps in its name; the logical one has them as dims
        taps = (tuple(int(v) for v in step.inputs[1].rsplit(":", 1)[1].split("x")) if TAG in step.inputs[1]
                else tuple(f[2:]))
        return (len(x) in (3, 4) and taps in ((1,), (1, 1)) and int(a.get("groups", 1)) == 1
                and all_ones(a.get("stride")) and all(p == (0, 0) for p in pads) and not a.get("pool")
                and tuple(y[2:]) == tuple(x[2:]))

    def build_options(self) -> str:
        fixed = {"OB": self.ob, "NPV": self.npv, "ACT": self.act}
        if self.half:
            fixed["HALF"] = 1
        if self.res:
            fixed["RES"] = self.res
        return " ".join(f"-D{k}={v}" for k, v in fixed.items()) + " -cl-fast-relaxed-math -cl-mad-enable"

    def relayout(self, consts: Mapping[str, np.ndarray]) -> dict[str, tuple[str, np.ndarray]]:
        fname, bname = self.step.inputs[1], self.step.inputs[2]
        if fname not in consts or bname not in consts:
            raise self.fail("filter and bias must be constants")
        cpad = self.nob * self.ob
        f = np.zeros((cpad, self.ic), np.float32)
        f[: self.oc] = consts[fname].reshape(self.oc, self.ic)
        wl = f.reshape(self.nob, self.ob, self.ic).transpose(0, 2, 1)  # [NOB][IC][OB]
        b = np.zeros(cpad, np.float32)
        b[: self.oc] = np.broadcast_to(consts[bname].astype(np.float32).reshape(-1), (self.oc,))
        return {fname: (f"{fname}{TAG}{self.ob}:{self.kh}x{self.kw}",
                        storage_array(wl, self.half, f"op {self.step.name}: filter {fname}")),
                bname: (f"{bname}{TAG}{cpad}", b)}

    def launches(self, program: Any, ins: list[Any], outs: list[Any]) -> list[Launch]:
        k = new_kernel(program, "conv2d_pointwise")
        k.set_args(ins[0], ins[1], ins[2], outs[0], np.float32(self.a0), np.float32(self.a1),
                   *(np.int32(v) for v in (self.ic, self.np_, self.oc)), *self.residual_args(ins))
        return [Launch(k, (self.nob, -(-self.np_ // (16 * self.npv)), self.n), (1, 1, 1))]

    @classmethod
    def candidates(cls, step: Step, shapes: Mapping[str, tuple[int, ...]]) -> list[dict[str, Any]]:
        """Step attrs the tuner tries, the rule's choice first; OC padded by at most 1/8."""
        rule = cls(Step(step.kind, step.variant, step.inputs, step.outputs,
                        {k: v for k, v in step.attrs.items() if k != "blocking"}, step.name), shapes)
        out = [(rule.ob, rule.npv)]
        for ob, npv in BLOCKINGS:
            if (ob, npv) not in out and ob <= rule.oc and -(-rule.oc // ob) * ob * 8 <= rule.oc * 9:
                out.append((ob, npv))
        return [{"blocking": list(b)} for b in out]
