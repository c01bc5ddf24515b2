"""Convolution, "covec" variant: vectorised over output channels, register-blocked over NV x 16 channels and
RY x NP output pixels; measured at 190-225 GFLOP/s on the YOLOv3-tiny 3x3 and 1x1 layers on 2 Zen 4 cores
under PoCL (bench/kernels_lab/README.md). Takes dilation-1 ungrouped 2-D convs of any stride with at least 16
output channels; everything else stays with `ConvBlocked`."""

from collections.abc import Mapping
from typing import Any

import numpy as np

from ocl_infer.engine.kernels.base import Launch
from ocl_infer.engine.kernels.conv_common import (
    ConvBase,
    all_ones,
    is_half,
    least_padded,
    logical_shapes,
    storage_array,
)
from ocl_infer.engine.kernels.registry import register
from ocl_infer.engine.plan.model import DeviceFacts, Step

TAG = "#covec"
def covec_blocking(oc: int, oh: int, ow: int, kh: int, kw: int, pool: bool = False) -> tuple[int, int, int]:
    """(NP columns, NV channel vectors, RY rows) per work-item, from the tuning runs on the YOLOv3-tiny and
    YOLOv8n shapes.

    At most ~16-26 float16 accumulators so everything stays in the 32 AVX-512 registers. A fused 2x2 pool needs
    RY = 2 and an even NP. Otherwise the least padded of the measured blockings (`least_padded`): 2x4x2 on small
    maps, 7x2x1 on wide ones, 4x4x1 where 7 columns would pad the row (52 columns: 56)."""
    nv_max = -(-oc // 16)
    if nv_max == 1:
        return 8, 1, 2
    if pool:
        return (2, 4, 2) if ow <= 32 and nv_max >= 4 else (4, 2, 2)
    if kh == kw == 1 and ow <= 14:
        return ow, 2, 1  # one full row per work-item: no wasted columns on 13x13
    options = ((2, 4, 2), (7, 2, 1), (4, 4, 1)) if ow <= 32 and nv_max >= 4 else ((7, 2, 1), (4, 4, 1))
    np_, nv, ry = least_padded(options, (ow, nv_max, oh))
    return np_, nv, ry


# what the tuner tries besides the rule's choice
BLOCKINGS = ((7, 2, 1), (4, 4, 1), (2, 4, 2), (8, 1, 2), (8, 2, 1), (4, 2, 2), (6, 4, 1), (8, 3, 1), (3, 4, 2),
             (2, 2, 2), (6, 2, 2), (4, 3, 2), (4, 1, 2), (6, 1, 2), (12, 1, 2), (14, 1, 2), (2, 6, 2))
LOCALS = ((1, 1, 1), (2, 1, 1))


@register
class ConvCovec(ConvBase):
    ops = ("conv",)
    variant = "covec"
    priority = 10
    cl_file = "conv_covec.cl"
    fuses_pool = True
    fuses_residual = True

    def __init__(self, step: Step, shapes: Mapping[str, tuple[int, ...]]) -> None:
        super().__init__(step, logical_shapes(step, shapes, TAG))
        self.pool = 2 if step.attrs.get("pool") else 0
        tuned = step.attrs.get("blocking")  # a tuning-table entry (engine/tuning.py) overrides the rule
        self.np_, self.nv, self.ry = ((int(tuned[0]), int(tuned[1]), int(tuned[2])) if tuned else
                                      covec_blocking(self.oc, self.oh, self.ow, self.kh, self.kw, bool(self.pool)))
        self.local = tuple(int(v) for v in step.attrs.get("local") or (1, 1, 1))
        self.ncb = -(-self.oc // (16 * self.nv))
        self.half = is_half(step)

    @classmethod
    def supports(cls, step: Step, shapes: Mapping[str, tuple[int, ...]], facts: DeviceFacts) -> bool:
        if not super().supports(step, shapes, facts) or len(shapes[step.inputs[0]]) != 4:
            return False
        a = step.attrs
        groups = int(a.get("groups", 1))
        return (groups == 1 and all_ones(a.get("dilation"))
                and len(step.inputs) > 2 and shapes[step.outputs[0]][1] >= 16 and facts.family == "cpu")

    def build_options(self) -> str:
        """Only the blocking, taps and epilogue: the geometry is passed at launch, so layers share programs."""
        fixed = {"KH": self.kh, "KW": self.kw, "ACT": self.act, "NP": self.np_, "NV": self.nv, "RY": self.ry,
                 "POOL": self.pool}
        if self.half:
            fixed["HALF"] = 1
        if self.res:
            fixed["RES"] = self.res
        if (self.sh, self.sw) != (1, 1):
            fixed.update(SH=self.sh, SW=self.sw)
        return " ".join(f"-D{k}={v}" for k, v in fixed.items()) + " -cl-fast-relaxed-math -cl-mad-enable"

    def relayout(self, consts: Mapping[str, np.ndarray]) -> dict[str, tuple[str, np.ndarray]]:
        fname = self.step.inputs[1]
        if fname not in consts:
            raise self.fail("filter must be a constant")
        cov = 16 * self.nv
        cpad = self.ncb * cov
        f = np.zeros((cpad, self.ic, self.kh, self.kw), np.float32)
        f[: self.oc] = consts[fname].reshape(self.oc, self.ic, self.kh, self.kw)
        wl = f.reshape(self.ncb, cov, self.ic, self.kh, self.kw).transpose(0, 3, 4, 2, 1)  # [NCB][KH][KW][IC][CO_V]
        out = {fname: (f"{fname}{TAG}{cov}:{self.kh}x{self.kw}",
                       storage_array(wl, self.half, f"op {self.step.name}: filter {fname}"))}
        bname = self.step.inputs[2]
        if bname not in consts:
            raise self.fail("bias must be a constant")
        b = np.zeros(cpad, np.float32)
        b[: self.oc] = np.broadcast_to(consts[bname].astype(np.float32).reshape(-1), (self.oc,))
        out[bname] = (f"{bname}{TAG}{cpad}", b)
        return out

    def launches(self, program: Any, ins: list[Any], outs: list[Any]) -> list[Launch]:
        import pyopencl as cl

        k = cl.Kernel(program, "conv2d_covec")  # a fresh kernel per layer: layers may share a program
        geometry = (self.ic, self.ih, self.iw, self.oc, self.oh, self.ow, self.pt, self.pl, self.ncb)
        k.set_args(ins[0], ins[1], ins[2], outs[0], np.float32(self.a0), np.float32(self.a1),
                   *(np.int32(v) for v in geometry), *self.residual_args(ins))
        # dims 0 and 1 rounded up to the local size: items past the map store nothing; dim 2 is exact (local 1)
        lx, ly = self.local[0], self.local[1]
        gs = (-(-self.ow // (self.np_ * lx)) * lx, -(-self.oh // (self.ry * ly)) * ly, self.n * self.ncb)
        return [Launch(k, gs, (lx, ly, 1))]

    @classmethod
    def candidates(cls, step: Step, shapes: Mapping[str, tuple[int, ...]]) -> list[dict[str, Any]]:
        """Step attrs the tuner tries (blocking x local size), the rule's choice first. Blockings keep at most
        28 float16 accumulators (32 AVX-512 registers) and pad OC by at most 1/8; a fused pool needs RY = 2 and
        an even NP."""
        rule = cls(Step(step.kind, step.variant, step.inputs, step.outputs,
                        {k: v for k, v in step.attrs.items() if k not in ("blocking", "local")}, step.name), shapes)
        nb = -(-rule.oc // 16)  # 16-channel vectors; an NV that pads them by more than 1/8 wastes work
        blockings = [(rule.np_, rule.nv, rule.ry)]
        for b in (*BLOCKINGS, (rule.ow, 1, 1), (rule.ow, 2, 1)):
            np_, nv, ry = b
            ok = (-(-nb // nv) * nv * 8 <= nb * 9 and np_ * nv * ry <= 28 and np_ <= max(rule.ow, 2)
                  and (not rule.pool or (ry == 2 and np_ % 2 == 0)))
            if ok and b not in blockings:
                blockings.append(b)
        return [{"blocking": list(b), "local": list(loc)} for b in blockings for loc in LOCALS]
