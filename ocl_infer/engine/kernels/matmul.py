"""Matrix family: linear (x W^T + b, fused activation) and matmul with transposes and broadcast batch dims.

Three variants of one geometry (`MatBase`): "strided", the general kernel (4 columns of one row per work-item,
any shape); "block", the CPU family's register-blocked GEMM (an MR x 16 NV block per work-item in float16
registers); "tiled", the GPU family's local-memory tiled GEMM (conv_gemm's scheme on strided operands). A
constant B (linear's filter, a MatMul weight) is packed at plan time into [batch][K][Np], rows contiguous and
zero-padded to whole column blocks; a transposed activation B is packed by a launch of its own for "block"."""

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np

from ocl_infer.engine.kernels.base import Kernel, Launch, ScratchLaunch, contiguous_strides, new_kernel, size_of
from ocl_infer.engine.kernels.conv_common import ACTIVATIONS
from ocl_infer.engine.kernels.registry import register
from ocl_infer.engine.plan.model import DeviceFacts, Step

PACKED = "#mmk"  # tag of a packed constant B: <name>#mmk<Np>
BLOCK_NV = (4, 2, 1)  # CPU: 16-float vectors per column block, widest first
# CPU: rows per work-item for NV = 4, 2, 1: MR * NV <= 24 float16 accumulators (AVX-512 has 32 vector
# registers), and at most 8 row offsets (x86 has 16 general registers: 12 rows spilled, 2-5x slower)
BLOCK_MR = {4: 6, 2: 8, 1: 8}
# GPU tiles (TX, TY, RM, RN, TK), largest first: a TX x TY work-group computes (TY RM) x (TX RN) outputs
TILES = ((16, 16, 4, 4, 16), (16, 8, 4, 4, 16), (8, 8, 4, 4, 16), (8, 8, 2, 2, 16))


class MatBase(Kernel):
    """The geometry of a linear or matmul step, shared by the variants: C[batch][M][N] = A x B over K, with
    strides that read A and B (a packed B included), the bias and the fused activation."""

    ops = ("linear", "matmul")
    cl_file = "matmul.cl"
    headers = ("activation.h.cl",)
    col_block = 16  # columns a packed B and the bias are padded to

    def __init__(self, step: Step, shapes: Mapping[str, tuple[int, ...]]) -> None:
        super().__init__(step, shapes)
        a_shape, b_shape = self.shape(step.inputs[0]), self.shape(step.inputs[1])
        act = step.attrs.get("activation")
        self.act = ACTIVATIONS[act[0] if act else None]
        self.a0, self.a1 = (float(act[1]), float(act[2])) if act else (0.0, 0.0)
        if step.kind == "linear":  # [M,K] x [N,K]^T
            self.m, self.k = a_shape
            self.n = b_shape[0]
            self.batch, self.sab, self.sam, self.sak = 1, 0, self.k, 1
            self.b_batch, sbk, sbn = 1, 1, self.k
        else:
            ta, tb = bool(step.attrs.get("transposeA")), bool(step.attrs.get("transposeB"))
            a_st, b_st = contiguous_strides(a_shape), contiguous_strides(b_shape)
            self.m, self.k = (a_shape[-1], a_shape[-2]) if ta else (a_shape[-2], a_shape[-1])
            self.n = b_shape[-2] if tb else b_shape[-1]
            self.sam, self.sak = (a_st[-1], a_st[-2]) if ta else (a_st[-2], a_st[-1])
            sbk, sbn = (b_st[-1], b_st[-2]) if tb else (b_st[-2], b_st[-1])
            self.b_batch = size_of(b_shape[:-2])
            self.batch = max(size_of(a_shape[:-2]), self.b_batch)
            self.sab = self.m * self.k if size_of(a_shape[:-2]) > 1 else 0
        self.np = self.pad(self.n)
        self.packed = PACKED in step.inputs[1]
        if self.packed:
            self.np = int(step.inputs[1].rsplit(PACKED, 1)[1])
            sbk, sbn = self.np, 1
        self.sbk, self.sbn = sbk, sbn
        self.sbb = self.k * (self.np if self.packed else self.n) if self.b_batch > 1 else 0
        # B shared by every batch and A's rows contiguous across batches: one GEMM of batch * M rows
        # (RT-DETR's [300, 1, 256] x [256, 256] is 300 products of one row each)
        if self.sbb == 0 and self.batch > 1 and self.sab == self.m * self.sam:
            self.m, self.batch, self.sab = self.m * self.batch, 1, 0
        self.has_bias = step.kind == "linear" and len(step.inputs) > 2

    def pad(self, n: int) -> int:
        return -(-n // self.col_block) * self.col_block

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
        """A constant B packed [batch][K][Np] (rows contiguous, zero columns past N); the bias padded to Np."""
        out: dict[str, tuple[str, np.ndarray]] = {}
        bname = self.step.inputs[1]
        if bname in consts and not self.packed:
            w = consts[bname].astype(np.float32)
            if self.step.kind == "linear":
                w = w.T[None]  # [N,K] -> [1][K][N]
            else:
                w = w.reshape(self.b_batch, *w.shape[-2:])
                if self.step.attrs.get("transposeB"):
                    w = w.transpose(0, 2, 1)
            packed = np.zeros((self.b_batch, self.k, self.np), np.float32)
            packed[:, :, : self.n] = w
            out[bname] = (f"{bname}{PACKED}{self.np}", packed)
        if self.has_bias:
            name = self.step.inputs[2]
            if name not in consts:
                raise self.fail("linear bias must be a constant")
            b = np.zeros(self.np, np.float32)
            b[: self.n] = np.broadcast_to(consts[name].astype(np.float32).reshape(-1), (self.n,))
            out[name] = (f"{name}#bias{self.np}", b)
        return out

    def epilogue_options(self) -> dict[str, int]:
        return {"ACT": self.act, "BIAS": int(self.has_bias)}


@register
class Gemm(MatBase):
    """The general kernel: any shape and strides, the activation a run-time argument."""

    variant = "strided"

    def launches(self, program: Any, ins: list[Any], outs: list[Any]) -> list[Launch]:
        kern = new_kernel(program, "gemm_strided")
        bias, sbias = (ins[2], 1) if self.has_bias else (ins[0], 0)  # sbias 0: the kernel never reads it
        kern.set_args(ins[0], ins[1], bias, outs[0],
                      *(np.int32(v) for v in (self.m, self.n, self.k, self.sab, self.sam, self.sak, self.sbb,
                                              self.sbk, self.sbn, sbias, self.act)),
                      np.float32(self.a0), np.float32(self.a1))
        return [Launch(kern, (-(-self.n // 4), self.m, self.batch))]


def block_shape(n: int) -> tuple[int, int]:
    """(MR rows, NV 16-float vectors) per work-item of the CPU kernel: the widest column block that pads N by at
    most 1/8 more than single vectors do (N = 32 takes 2 vectors, not 4 half-empty), rows so that MR * NV
    float16 accumulators and MR row offsets stay in registers (measured on RT-DETR's shapes)."""
    def padded(nv: int) -> int:
        return -(-n // (16 * nv)) * 16 * nv
    nv = next(v for v in BLOCK_NV if padded(v) * 8 <= padded(1) * 9)
    return BLOCK_MR[nv], nv


@register
class GemmBlock(MatBase):
    """CPU family: register-blocked, B read as float16 rows (packed when constant or not row-contiguous)."""

    variant = "block"
    priority = 10

    def __init__(self, step: Step, shapes: Mapping[str, tuple[int, ...]]) -> None:
        n = shapes[step.outputs[0]][-1]
        self.mr, self.nv = block_shape(n)
        self.col_block = 16 * self.nv
        super().__init__(step, shapes)
        self.pack_b = not self.packed and self.sbn != 1  # a transposed activation B: packed at run time

    @classmethod
    def supports(cls, step: Step, shapes: Mapping[str, tuple[int, ...]], facts: DeviceFacts) -> bool:
        # a matrix-vector product (N <= 2) would waste 14+ of 16 lanes: the general kernel takes it
        return (super().supports(step, shapes, facts) and facts.family == "cpu"
                and shapes[step.outputs[0]][-1] > 2)

    def build_options(self) -> str:
        fixed = {"MR": self.mr, "NV": self.nv, **self.epilogue_options()}
        return " ".join(f"-D{k}={v}" for k, v in fixed.items()) + " -cl-mad-enable"

    def scratch_sizes(self) -> tuple[int, ...]:
        return (4 * self.b_batch * self.k * self.np,) if self.pack_b else ()

    def launches(self, program: Any, ins: list[Any], outs: list[Any]) -> list[Launch]:
        b, sbb, sbk, nload = ins[1], self.sbb, self.sbk, (self.np if self.packed else self.n)
        pre: list[Launch] = []
        if self.pack_b:
            (b,) = self.scratch_buffers()
            pk = new_kernel(program, "gemm_pack_b")
            src_sbb = self.sbb if self.b_batch > 1 else 0
            pk.set_args(ins[1], b, *(np.int32(v) for v in (self.n, self.k, self.np, src_sbb, self.sbk, self.sbn)))
            pre.append(ScratchLaunch(pk, (self.np, self.k, self.b_batch), None, (b,)))
            sbb, sbk, nload = (self.k * self.np if self.b_batch > 1 else 0), self.np, self.np
        kern = new_kernel(program, "gemm_block")
        bias = ins[2] if self.has_bias else ins[0]  # not read without BIAS
        kern.set_args(ins[0], b, bias, outs[0],
                      *(np.int32(v) for v in (self.m, self.n, self.k, self.sab, self.sam, self.sak, sbb, sbk,
                                              nload)),
                      np.float32(self.a0), np.float32(self.a1))
        gs = (-(-self.n // self.col_block), -(-self.m // self.mr), self.batch)
        main = ScratchLaunch(kern, gs, (1, 1, 1), (b,)) if self.pack_b else Launch(kern, gs, (1, 1, 1))
        return [*pre, main]


def tile_fits(tile: tuple[int, ...], facts: DeviceFacts | None) -> bool:
    tx, ty, rm, rn, tk = tile
    if facts is None:
        return True
    return tx * ty <= facts.max_work_group_size and (ty * rm + tx * rn + 2) * tk * 4 <= facts.local_mem_bytes


def tile_rule(batch: int, m: int, n: int, facts: DeviceFacts | None) -> tuple[int, ...]:
    """The largest tile that still gives every compute unit two work-groups (else the smallest that fits):
    big tiles reuse more of each global load, small ones keep small products (attention heads) parallel."""
    units = facts.compute_units if facts is not None else 16
    valid = [t for t in TILES if tile_fits(t, facts)]
    for t in valid:
        if batch * -(-m // (t[1] * t[2])) * -(-n // (t[0] * t[3])) >= 2 * units:
            return t
    return valid[-1]


@register
class GemmTiled(MatBase):
    """GPU family: tiles of A and B staged in local memory, RM x RN outputs per work-item."""

    variant = "tiled"
    priority = 10
    headers = (*MatBase.headers, "gemm_tile.h.cl")  # the register tile shared with conv_gemm

    def __init__(self, step: Step, shapes: Mapping[str, tuple[int, ...]]) -> None:
        super().__init__(step, shapes)
        chosen = step.attrs.get("rule_tile")  # the planner's choice from the device's facts (`device_rule`)
        self.tile = (tuple(int(v) for v in chosen) if chosen else tile_rule(self.batch, self.m, self.n, None))
        self.tx, self.ty, self.rm, self.rn, self.tk = self.tile

    @classmethod
    def supports(cls, step: Step, shapes: Mapping[str, tuple[int, ...]], facts: DeviceFacts) -> bool:
        return (super().supports(step, shapes, facts) and facts.family == "gpu"
                and any(tile_fits(t, facts) for t in TILES))

    @classmethod
    def device_rule(cls, step: Step, shapes: Mapping[str, tuple[int, ...]], facts: DeviceFacts) -> Step:
        """`step` with the tile for this device in attr `rule_tile` (wrappers re-created without facts build
        the same kernel)."""
        k = cls(step, shapes)
        tile = tile_rule(k.batch, k.m, k.n, facts)
        return Step(step.kind, step.variant, step.inputs, step.outputs,
                    MappingProxyType({**step.attrs, "rule_tile": list(tile)}), step.name)

    def build_options(self) -> str:
        fixed = {"TX": self.tx, "TY": self.ty, "RM": self.rm, "RN": self.rn, "TK": self.tk,
                 "AK": int(self.sak == 1), "BN": int(self.sbn == 1), **self.epilogue_options()}
        return " ".join(f"-D{k}={v}" for k, v in fixed.items()) + " -cl-mad-enable"

    def launches(self, program: Any, ins: list[Any], outs: list[Any]) -> list[Launch]:
        kern = new_kernel(program, "gemm_tiled")
        bias = ins[2] if self.has_bias else ins[0]  # not read without BIAS
        kern.set_args(ins[0], ins[1], bias, outs[0],
                      *(np.int32(v) for v in (self.m, self.n, self.k, self.sab, self.sam, self.sak, self.sbb,
                                              self.sbk, self.sbn)),
                      np.float32(self.a0), np.float32(self.a1))
        tm, tn = self.ty * self.rm, self.tx * self.rn
        gs = (-(-self.n // tn) * self.tx, -(-self.m // tm) * self.ty, self.batch)
        return [Launch(kern, gs, (self.tx, self.ty, 1))]
