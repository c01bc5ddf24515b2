"""Convolution, "winograd" variant: F(2x2, 3x3) as input transform, 16 GEMMs vectorised over output channels,
output transform (+ bias + activation). 2.25x fewer multiplies than direct; measured 1.4-1.7x faster than the
covec direct kernel on the YOLOv3-tiny 3x3 layers with 64+ input channels (bench/kernels_lab/README.md).
Takes 3x3, stride 1, dilation 1, padding 1, groups 1, IC >= 64, OC >= 16 on CPU devices, at any batch: the
batch's images are more tiles (V's columns and M's rows run over n * T + t), so one GEMM per transformed point
serves every image and its weight stream is read once per batch, not once per image.

Two scratch buffers (V: 16*IC*TP floats, M: 16*TP*OC_PAD floats, TP = N * T rounded up to NT) are scratch
slots 0 and 1 (`scratch_sizes`), shared with every other step of the runtime; the plan counts the slots. With
the plan's precision "fp16" (step attr `precision`), U, V and M are stored as half (half
the bytes), arithmetic stays float."""

from collections.abc import Mapping
from typing import Any

import numpy as np

from ocl_infer.engine.kernels.base import Launch, ScratchLaunch
from ocl_infer.engine.kernels.conv_common import ConvBase, is_half, least_padded, logical_shapes, storage_array
from ocl_infer.engine.kernels.registry import register
from ocl_infer.engine.plan.model import DeviceFacts, Step

TAG = "#winograd"
IN_LOCAL = (16, 1)  # transforms' work-groups (16 tiles; 16 output channels), measured best of 8-64 here
OUT_LOCAL = (16, 1, 1)
# what the tuner tries besides the rule's choice: GEMM (NT, NV) and the transforms' (input, output) local sizes
GEMM_BLOCKINGS = ((7, 3), (4, 4), (8, 2), (6, 3), (5, 4), (12, 2), (13, 2), (4, 3), (4, 5), (5, 5), (3, 5))
TRANSFORM_LOCALS = ((IN_LOCAL, OUT_LOCAL), ((32, 1), (16, 1, 1)), ((8, 1), (8, 1, 1)), ((16, 1), (32, 1, 1)))
MIN_IC = 64  # below this the transforms cost more than the saved multiplies (first layers of YOLOv3-tiny)


def channel_mean(ic: int, oc: int) -> float:
    """The harmonic mean of the input and output channels, 2 IC OC / (IC + OC): what a Winograd layer saves
    grows with IC x OC (multiplies) while its transforms grow with IC + OC (V's and M's channels), so their ratio
    follows this mean; a narrow side (256 -> 64) costs more transform per saved multiply than a square layer."""
    return 2 * ic * oc / (ic + oc)


G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])


def winograd_filter(w: np.ndarray, cov: int) -> np.ndarray:
    """U = G g G^T for each (oc, ic) of w [OC, IC, 3, 3], laid out [16][NCB][IC][cov], OC zero-padded."""
    # G's rows spelled out as adds, one output slab at a time: for each row a of G, the three taps along kh
    # are combined into `rows` (reused), then the four kw combinations go straight into the final array. Each
    # output byte is written once and the temporaries stay small: at model load, touching fresh memory (page
    # faults) costs more than the arithmetic (~0.1 s less for YOLOv3-tiny than two whole-array passes).
    g = filter_taps(w, cov)
    ncb, ic = g.shape[2:4]
    out = np.empty((4, 4, ncb, ic, cov), np.float32)
    rows, rows_scratch = np.empty((2, 3, ncb, ic, cov), np.float32)
    scratch = np.empty((ncb, ic, cov), np.float32)
    for a in range(4):
        _g_row(g[0], g[1], g[2], a, rows, rows_scratch)  # row a of G along kh, for each kw
        for b in range(4):
            _g_row(rows[0], rows[1], rows[2], b, out[a, b], scratch)  # row b of G along kw
    return out.reshape(16, ncb, ic, cov)


def filter_taps(w: np.ndarray, cov: int) -> np.ndarray:
    """w [OC, IC, 3, 3] as [kh][kw][NCB][IC][cov], OC zero-padded to NCB * cov: the order the transformed
    weights are stored in, so every later pass writes contiguous memory."""
    oc, ic = w.shape[:2]
    ncb = -(-oc // cov)
    padded = np.zeros((ncb * cov, ic, 3, 3), np.float32)
    padded[:oc] = w
    return np.ascontiguousarray(padded.reshape(ncb, cov, ic, 3, 3).transpose(3, 4, 0, 2, 1))


def _g_row(x0: np.ndarray, x1: np.ndarray, x2: np.ndarray, row: int, out: np.ndarray, scratch: np.ndarray) -> None:
    """out = row `row` of G = [[1,0,0],[.5,.5,.5],[.5,-.5,.5],[0,0,1]] applied to (x0, x1, x2), in place.

    Rows 1 and 2 are 0.5 (x0 + x2) +/- 0.5 x1, computed in that order (the same rounding as before)."""
    if row == 0:
        out[...] = x0
    elif row == 3:
        out[...] = x2
    else:
        np.add(x0, x2, out=out)
        out *= 0.5  # half the sum of the outer taps
        np.multiply(x1, 0.5, out=scratch)
        if row == 1:
            out += scratch
        else:
            out -= scratch


# The rule's GEMM blockings (NT tiles, NV 16-channel vectors) in order of preference: 7x3 measured best where
# nothing is padded (13x13 F(2x2)), then 5x4 and 4x5 (20 accumulators), 4x4.
RULE_BLOCKINGS = ((7, 3), (5, 4), (4, 5), (4, 4))


def winograd_blocking(tiles: int, oc: int) -> tuple[int, int]:
    """(NT tiles, NV channel vectors) per GEMM work-item: the least padded of RULE_BLOCKINGS for the tile count
    (the whole batch's) and OC: 7x3 for 49 tiles and 16*3k channels, 5x4 for 64 channels (7x3 would pad them
    to 96) and for 25 or 100 tiles, 4x5 for 80 channels (4x4 pads them to 128)."""
    nt, nv = least_padded(RULE_BLOCKINGS, (tiles, -(-oc // 16)))
    return nt, nv


@register
class ConvWinograd(ConvBase):
    ops = ("conv",)
    variant = "winograd"
    priority = 20
    cl_file = "conv_winograd.cl"
    fuses_residual = True
    tile = 2  # outputs per tile side: F(tile x tile, 3x3); the input tiles are tile + 2 wide
    # fp16: V (and M) stored times 2^-v_shift, 2^v_shift >= max |V| / max |d| = (max row sum of |B^T|)^2
    # (F(2x2): 4), so the half scratch overflows only where the activations themselves leave half's range
    v_shift = 2
    kernels = ("winograd_input", "winograd_gemm", "winograd_output")
    # The output transform takes 16 channels per work-item as float16 vectors (F(4x4)) instead of one channel
    # per work-item in `out_local` groups that PoCL vectorises across (F(2x2), no faster the other way).
    vector_output = False
    # Below this `channel_mean` the three launches cost more than covec's direct conv (YOLO11n / YOLOv8n at 13x13
    # on 2 Zen 4 cores, 2026-12-06, device time per layer: 64 -> 64 0.09 vs 0.07 ms, 256 -> 64 0.26 vs 0.24;
    # 128 -> 128 0.24 vs 0.25, 256 -> 80 0.31 vs 0.35; YOLOv3-tiny's 13x13 layers are at 341 and above).
    min_channel_mean = 112

    def __init__(self, step: Step, shapes: Mapping[str, tuple[int, ...]]) -> None:
        super().__init__(step, logical_shapes(step, shapes, TAG))  # TAG is also in "#winograd4"
        self.tw, self.th = -(-self.ow // self.tile), -(-self.oh // self.tile)
        self.tiles = self.tw * self.th  # per image
        self.batch_tiles = self.n * self.tiles  # the GEMM's columns: every image's tiles one after another
        self.points = (self.tile + 2) ** 2  # transformed values per tile: the number of GEMMs
        tuned = step.attrs.get("blocking")  # a tuning-table entry (engine/tuning.py) overrides the rule
        self.nt, self.nv = (int(tuned[0]), int(tuned[1])) if tuned else winograd_blocking(self.batch_tiles, self.oc)
        self.in_local = tuple(int(v) for v in step.attrs.get("in_local") or IN_LOCAL)
        self.out_local = tuple(int(v) for v in step.attrs.get("out_local") or OUT_LOCAL)
        self.nv = min(self.nv, -(-self.oc // 16))
        self.ncb = -(-self.oc // (16 * self.nv))
        self.tp = -(-self.batch_tiles // self.nt) * self.nt
        self.half = is_half(step)  # U, V and M stored as half

    @classmethod
    def supports(cls, step: Step, shapes: Mapping[str, tuple[int, ...]], facts: DeviceFacts) -> bool:
        if not super().supports(step, shapes, facts) or len(step.inputs) < 3:
            return False
        x, f, y = (tuple(shapes[n]) for n in (step.inputs[0], step.inputs[1], step.outputs[0]))
        a = step.attrs
        pads = [tuple(p) for p in (a.get("padding") or ())]
        ones = all(int(v) == 1 for v in (*(a.get("stride") or ()), *(a.get("dilation") or ())))
        return (len(x) == 4 and tuple(f[2:4]) == (3, 3) and int(a.get("groups", 1)) == 1 and ones
                and pads == [(1, 1), (1, 1)] and x[1] >= MIN_IC and y[1] >= 16 and facts.family == "cpu"
                and channel_mean(x[1], y[1]) >= cls.min_channel_mean)

    @classmethod
    def candidates(cls, step: Step, shapes: Mapping[str, tuple[int, ...]]) -> list[dict[str, Any]]:
        """Step attrs the tuner tries (GEMM blocking x the transforms' local sizes), the rule's choice first.
        At most 26 float16 accumulators per GEMM work-item (32 AVX-512 registers); OC padded by at most 1/8."""
        keys = ("blocking", "in_local", "out_local")
        rule = cls(Step(step.kind, step.variant, step.inputs, step.outputs,
                        {k: v for k, v in step.attrs.items() if k not in keys}, step.name), shapes)
        nb = -(-rule.oc // 16)  # 16-channel vectors; an NV that pads them by more than 1/8 wastes work
        blockings = [(rule.nt, rule.nv)]
        for b in GEMM_BLOCKINGS:
            if -(-nb // b[1]) * b[1] * 8 <= nb * 9 and b not in blockings:
                blockings.append(b)
        if cls.vector_output:  # the output transform has no local size to try
            in_locals = list(dict.fromkeys(li for li, _ in TRANSFORM_LOCALS))
            return [{"blocking": list(b), "in_local": list(li)} for b in blockings for li in in_locals]
        return [{"blocking": list(b), "in_local": list(li), "out_local": list(lo)}
                for b in blockings for li, lo in TRANSFORM_LOCALS]

    def build_options(self) -> str:
        """Only the blocking and epilogue: the geometry is passed at launch, so layers share programs."""
        extra = (f" -DHALF=1 -DVSCALE={2.0 ** -self.v_shift!r}f" if self.half else "") + (
            f" -DRES={self.res}" if self.res else "")
        return f"-DNT={self.nt} -DNV={self.nv} -DACT={self.act}{extra} -cl-fast-relaxed-math -cl-mad-enable"

    def relayout(self, consts: Mapping[str, np.ndarray]) -> dict[str, tuple[str, np.ndarray]]:
        fname, bname = self.step.inputs[1], self.step.inputs[2]
        if fname not in consts or bname not in consts:
            raise self.fail("filter and bias must be constants")
        cov = 16 * self.nv
        u = self.filter_transform(consts[fname].reshape(self.oc, self.ic, 3, 3), cov)
        b = np.ascontiguousarray(np.broadcast_to(consts[bname].astype(np.float32).reshape(-1), (self.oc,)))
        u = storage_array(u, self.half, f"op {self.step.name}: filter {fname} (Winograd-transformed)")
        tag = f"#{self.variant}"
        return {fname: (f"{fname}{tag}{cov}:3x3", u), bname: (f"{bname}{tag}{self.oc}", b)}

    @staticmethod
    def filter_transform(w: np.ndarray, cov: int) -> np.ndarray:
        return winograd_filter(w, cov)

    def scratch_sizes(self) -> tuple[int, int]:
        """Bytes of the V and M scratch buffers (scratch slots 0 and 1)."""
        item = 2 if self.half else 4
        v = self.points * self.ic * self.tp + 16  # + 16: the GEMM's vector reads past the end
        return v * item, self.points * self.tp * self.ncb * 16 * self.nv * item

    def launches(self, program: Any, ins: list[Any], outs: list[Any]) -> list[Launch]:
        import pyopencl as cl

        v, m = self.scratch_buffers()
        name_in, name_mm, name_out = self.kernels
        k_in = cl.Kernel(program, name_in)
        i32 = np.int32
        tw, th = self.tw, self.th
        k_in.set_args(ins[0], v, i32(self.ic), i32(self.ih), i32(self.iw), i32(tw), i32(self.tiles), i32(self.tp),
                      np.float32(1.0 / tw))
        k_mm = cl.Kernel(program, name_mm)
        k_mm.set_args(v, ins[1], m, i32(self.ic), i32(self.ncb), i32(self.tp))
        k_out = cl.Kernel(program, name_out)
        k_out.set_args(m, ins[2], outs[0], np.float32(self.a0), np.float32(self.a1), i32(self.oc), i32(self.oh),
                       i32(self.ow), i32(self.ncb), i32(self.tp), i32(th), np.float32(1.0 / th),
                       *self.residual_args(ins))
        # Fixed local sizes: the same JIT specialisation serves every layer (PoCL compiles per local size).
        li, lo = self.in_local, self.out_local
        # the input grid's third axis is the image; the last image also zero-fills V's padding columns up to TP
        last = self.tp - (self.n - 1) * self.tiles
        if self.vector_output:  # 16 output channels per work-item (see the .cl)
            out = ScratchLaunch(k_out, (-(-self.oc // 16), tw, self.n * th), (1, 1, 1), (m,))
        else:
            out = ScratchLaunch(k_out, (-(-self.oc // lo[0]) * lo[0], tw, self.n * th), lo, (m,))
        return [ScratchLaunch(k_in, (-(-last // li[0]) * li[0], self.ic, self.n), (*li, 1), (v,)),
                ScratchLaunch(k_mm, (self.tp // self.nt, self.ncb, self.points), (1, 1, 1), (v, m)), out]
