"""Convolution, "gemm" variant: the GPU family's conv. An implicit GEMM over tiles staged in local memory with
register blocking (conv_gemm.cl): any stride, dilation and padding, ungrouped 2-D, fused bias,
activation, residual add and 2x2/2 max pool. Chosen on devices of the GPU kernel family (DeviceFacts.family);
the blocking comes from the device's compute units, work-group and local-memory limits, or its tuning table."""

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np

from ocl_infer.engine.kernels.base import Launch, ScratchLaunch
from ocl_infer.engine.kernels.conv_common import ConvBase, is_half, logical_shapes, storage_array
from ocl_infer.engine.kernels.registry import register
from ocl_infer.engine.plan.model import DeviceFacts, Step

TAG = "#gemm"
# Tiles (TX, TY, RM, RN, TK): a TX x TY work-group computes (TY*RM channels) x (TX*RN pixels), TK deep.
TILES = ((16, 16, 8, 8, 16), (16, 16, 4, 8, 16), (16, 16, 8, 4, 16), (16, 16, 4, 4, 16), (16, 8, 8, 4, 16),
         (16, 8, 4, 4, 16), (8, 16, 8, 4, 16), (16, 8, 4, 8, 16), (16, 4, 4, 8, 16), (8, 8, 4, 4, 16),
         (16, 16, 4, 4, 8), (8, 8, 4, 4, 8), (16, 4, 4, 4, 16), (32, 4, 4, 4, 16), (8, 4, 4, 4, 16))
SPLITS = (1, 2, 4, 8, 16)  # split-K factors: work-groups per tile, each summing 1/S of K
LAUNCH_COST = 2e5  # the reduce pass's launch, in the estimate's units (about 5 us on a GPU)


def fits(tile: tuple[int, ...], facts: DeviceFacts | None, pool: bool) -> bool:
    """Whether a tile is valid (its loads map evenly onto the work-group) and fits the device."""
    tx, ty, rm, rn, tk = tile[:5]
    nt, tm, tn = tx * ty, ty * rm, tx * rn
    ok = nt % tm == 0 and nt % tn == 0 and (not pool or rn % 4 == 0)
    if facts is not None:
        ok = ok and nt <= facts.max_work_group_size and (tm + tn) * tk * 4 <= facts.local_mem_bytes
    return ok


def split_ok(splits: int, k: int, tk: int, pool: bool) -> bool:
    """Split-K needs at least 4 TK-deep steps per split, and no fused pool (the reduce pass does not pool)."""
    return splits == 1 or (not pool and k >= splits * tk * 4)


def estimate(b: tuple[int, ...], n: int, oc: int, pixels: int, k: int, compute_units: int) -> float:
    """Relative time of a blocking, for the rule only (the tuner measures): the work of the busiest compute
    unit (its work-groups x a tile's multiply-adds over the tile's register reuse, multiply-adds per local
    load), slowed where that unit holds too few work-items to hide memory latency (under ~512), plus the
    reduce pass of a split K."""
    tx, ty, rm, rn, tk, splits = b
    tm, tn, nt = ty * rm, tx * rn, tx * ty
    groups = n * -(-oc // tm) * -(-pixels // tn) * splits
    per_unit = -(-groups // compute_units)
    reuse = min(rm * rn / (rm + rn), 4.0)
    depth = -(-k // (tk * splits)) * tk
    t = per_unit * tm * tn * depth / reuse / min(1.0, per_unit * nt / 512)
    if splits > 1:
        t += LAUNCH_COST + 4.0 * (splits + 1) * n * oc * pixels / compute_units
    return t


def gemm_blocking(n: int, oc: int, pixels: int, k: int, facts: DeviceFacts | None, pool: bool) -> tuple[int, ...]:
    """The rule: the cheapest valid (tile, split) by `estimate` on this device (16 compute units if unknown)."""
    units = facts.compute_units if facts is not None else 16
    options = [(*t, s) for t in TILES if fits(t, facts, pool) for s in SPLITS if split_ok(s, k, t[4], pool)]
    return min(options, key=lambda b: estimate(b, n, oc, pixels, k, units))


@register
class ConvGemm(ConvBase):
    ops = ("conv",)
    variant = "gemm"
    priority = 30  # above the CPU family's convs; they never take GPU-family devices anyway
    cl_file = "conv_gemm.cl"
    headers = (*ConvBase.headers, "gemm_tile.h.cl")  # the register tile shared with matmul's gemm_tiled
    fuses_pool = True
    fuses_residual = True

    def __init__(self, step: Step, shapes: Mapping[str, tuple[int, ...]]) -> None:
        super().__init__(step, logical_shapes(step, shapes, TAG))
        self.pool = 2 if step.attrs.get("pool") else 0
        self.pixels = (self.oh // 2) * (self.ow // 2) * 4 if self.pool else self.oh * self.ow
        # a tuning-table entry, else the rule the planner chose from the device's facts (`device_rule`)
        chosen = step.attrs.get("blocking") or step.attrs.get("rule_blocking")
        self.k = self.ic * self.kh * self.kw
        self.blocking = (tuple(int(v) for v in chosen) if chosen else
                         gemm_blocking(self.n, self.oc, self.pixels, self.k, None, bool(self.pool)))
        self.tx, self.ty, self.rm, self.rn, self.tk, self.splits = self.blocking
        self.tm, self.tn = self.ty * self.rm, self.tx * self.rn
        # K per split, a whole number of TK steps; the split count may shrink so that none is empty
        self.kc = -(-self.k // (self.splits * self.tk)) * self.tk
        self.splits = -(-self.k // self.kc)
        self.ocp = -(-self.oc // self.tm) * self.tm
        self.kp = -(-self.k // self.tk) * self.tk
        self.half = is_half(step)

    @classmethod
    def supports(cls, step: Step, shapes: Mapping[str, tuple[int, ...]], facts: DeviceFacts) -> bool:
        return (super().supports(step, shapes, facts) and facts.family == "gpu" and len(step.inputs) > 2
                and len(shapes[step.inputs[0]]) == 4  # 1-D convs stay with ConvBlocked
                and int(step.attrs.get("groups", 1)) == 1
                and any(fits(t, facts, bool(step.attrs.get("pool"))) for t in TILES))

    @classmethod
    def device_rule(cls, step: Step, shapes: Mapping[str, tuple[int, ...]], facts: DeviceFacts) -> Step:
        """`step` with the rule's blocking for this device in attr `rule_blocking`: the runtime and the tuner
        re-create wrappers without the device's facts and must build the kernel the plan sized."""
        k = cls(step, shapes)
        rule = gemm_blocking(k.n, k.oc, k.pixels, k.k, facts, bool(k.pool))
        return Step(step.kind, step.variant, step.inputs, step.outputs,
                    MappingProxyType({**step.attrs, "rule_blocking": list(rule)}), step.name)

    def build_options(self) -> str:
        """Blocking, taps and epilogue; the geometry is passed at launch, so layers share programs."""
        fixed = {"TX": self.tx, "TY": self.ty, "RM": self.rm, "RN": self.rn, "TK": self.tk, "KH": self.kh,
                 "KW": self.kw, "ACT": self.act, "POOL": self.pool, "RES": self.res, "HALF": int(self.half),
                 "SPLIT": int(self.splits > 1)}
        return " ".join(f"-D{k}={v}" for k, v in fixed.items()) + " -cl-mad-enable"

    def relayout(self, consts: Mapping[str, np.ndarray]) -> dict[str, tuple[str, np.ndarray]]:
        fname, bname = self.step.inputs[1], self.step.inputs[2]
        if fname not in consts or bname not in consts:
            raise self.fail("filter and bias must be constants")
        w = np.zeros((self.kp, self.ocp), np.float32)  # [K][OC]: a tile row is OC-contiguous (coalesced loads)
        w[: self.k, : self.oc] = consts[fname].reshape(self.oc, self.k).T
        b = np.zeros(self.ocp, np.float32)
        b[: self.oc] = np.broadcast_to(consts[bname].astype(np.float32).reshape(-1), (self.oc,))
        tag = f"{TAG}{self.tm}x{self.tk}"
        return {fname: (f"{fname}{tag}:{self.kh}x{self.kw}",
                        storage_array(w, self.half, f"op {self.step.name}: filter {fname}")),
                bname: (f"{bname}{tag}", b)}

    def scratch_sizes(self) -> tuple[int, ...]:
        """The partial sums of a split K: [splits][N][OC][P] floats."""
        return (4 * self.splits * self.n * self.oc * self.pixels,) if self.splits > 1 else ()

    def launches(self, program: Any, ins: list[Any], outs: list[Any]) -> list[Launch]:
        import pyopencl as cl

        k = cl.Kernel(program, "conv2d_gemm")  # a fresh kernel per layer: layers may share a program
        geometry = (self.ic, self.ih, self.iw, self.oc, self.oh, self.ow, self.sh, self.sw, self.dh, self.dw,
                    self.pt, self.pl, self.ocp, self.kc, self.splits)
        gs = (-(-self.pixels // self.tn) * self.tx, (self.ocp // self.tm) * self.ty, self.n * self.splits)
        a0, a1 = np.float32(self.a0), np.float32(self.a1)
        if self.splits == 1:
            k.set_args(ins[0], ins[1], ins[2], outs[0], a0, a1, *(np.int32(v) for v in geometry),
                       *self.residual_args(ins))
            return [Launch(k, gs, (self.tx, self.ty, 1))]
        (part,) = self.scratch_buffers()
        # the residual argument (RES builds) goes to both kernels; only the reduce pass reads it
        k.set_args(ins[0], ins[1], ins[2], part, a0, a1, *(np.int32(v) for v in geometry), *self.residual_args(ins))
        total = self.n * self.oc * self.pixels
        r = cl.Kernel(program, "conv2d_gemm_reduce")
        r.set_args(part, ins[2], outs[0], a0, a1, *(np.int32(v) for v in (self.oc, self.pixels, total, self.splits)),
                   *self.residual_args(ins))
        return [ScratchLaunch(k, gs, (self.tx, self.ty, 1), (part,)),
                ScratchLaunch(r, (-(-total // 64) * 64,), (64,), (part,))]

    @classmethod
    def candidates(cls, step: Step, shapes: Mapping[str, tuple[int, ...]]) -> list[dict[str, Any]]:
        """Step attrs the tuner tries: the rule's blocking first, then every valid tile that pads the channels
        by at most a quarter (or is a single tile) with each split-K factor that leaves 4+ steps per split."""
        probe = cls(Step(step.kind, step.variant, step.inputs, step.outputs,
                         MappingProxyType({k: v for k, v in step.attrs.items() if k != "blocking"}), step.name),
                    shapes)
        out = [probe.blocking]
        for t in TILES:
            tm = t[1] * t[2]
            padded = -(-probe.oc // tm) * tm
            if not fits(t, None, bool(probe.pool)) or (padded * 4 > probe.oc * 5 and padded != tm):
                continue
            for s in SPLITS[:4]:
                if split_ok(s, probe.k, t[4], bool(probe.pool)) and (*t, s) not in out:
                    out.append((*t, s))
        return [{"blocking": list(b)} for b in out]
