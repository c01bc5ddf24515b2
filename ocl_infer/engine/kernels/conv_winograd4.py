"""Convolution, "winograd4" variant: Winograd F(4x4, 3x3). The same three launches as `ConvWinograd`
(F(2x2, 3x3)) with 6x6 input tiles and 36 GEMMs: 4x fewer multiplies than a direct conv instead of 2.25x, for
larger transforms, 36/16 more transformed-weight memory and a larger rounding error. Its GEMM is
conv_winograd.cl's (that file is put before conv_winograd4.cl)."""

from collections.abc import Mapping

import numpy as np

from ocl_infer.engine.kernels.conv_winograd import ConvWinograd, filter_taps
from ocl_infer.engine.kernels.registry import register
from ocl_infer.engine.plan.model import DeviceFacts, Step

# Taken where it needs at most this fraction of F(2x2)'s multiplies, tile padding included: 26x26 maps (0.65,
# measured 14-24 % faster per layer), 20x20 (0.56); not 13x13 (0.73, measured no faster: its 4x4 tiles cover
# 16x16) nor 10x10 (0.81).
MAX_MULTIPLY_RATIO = 0.7

# G of F(4x4, 3x3) (Lavin & Gray): U = G g G^T, 6x6 per (output, input) channel pair
G4 = np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
               [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]])


def winograd4_filter(w: np.ndarray, cov: int) -> np.ndarray:
    """U = G g G^T for each (oc, ic) of w [OC, IC, 3, 3], laid out [36][NCB][IC][cov], OC zero-padded.
    One output slab at a time from small reused temporaries (see `winograd_filter`)."""
    g = filter_taps(w, cov)
    ncb, ic = g.shape[2:4]
    out = np.empty((6, 6, ncb, ic, cov), np.float32)
    rows = np.empty((3, ncb, ic, cov), np.float32)
    scratch = np.empty((3, ncb, ic, cov), np.float32)
    for a in range(6):
        _combine(g, G4[a], rows, scratch)  # row a of G along kh, for each kw
        for b in range(6):
            _combine(rows, G4[b], out[a, b], scratch[0])  # row b of G along kw
    return out.reshape(36, ncb, ic, cov)


def _combine(x: np.ndarray, coef: np.ndarray, out: np.ndarray, scratch: np.ndarray) -> None:
    """out = sum of coef[k] * x[k] over the three slabs of x, skipping zero coefficients, in float32."""
    first = True
    for k in range(3):
        c = np.float32(coef[k])
        if c == 0:
            continue
        if first:
            np.multiply(x[k], c, out=out)
            first = False
        else:
            np.multiply(x[k], c, out=scratch)
            out += scratch


@register
class ConvWinograd4(ConvWinograd):
    variant = "winograd4"
    priority = 25  # above F(2x2), where `supports` says it saves enough
    cl_file = "conv_winograd4.cl"
    headers = ("activation.h.cl", "conv_winograd.cl")
    tile = 4
    v_shift = 7  # max row sum of |B^T| is 10: |V| <= 100 max |d| <= 2^7 max |d| (see ConvWinograd)
    kernels = ("winograd4_input", "winograd_gemm", "winograd4_output")
    vector_output = True
    # 4x fewer multiplies pay for the transforms from a smaller mean (26x26, same runs as F(2x2)'s figure: 64 -> 32
    # 0.14 vs covec 0.13 ms, 64 -> 64 0.21 vs 0.245, 128 -> 64 0.33 vs 0.46)
    min_channel_mean = 56

    @staticmethod
    def filter_transform(w: np.ndarray, cov: int) -> np.ndarray:
        return winograd4_filter(w, cov)

    @classmethod
    def supports(cls, step: Step, shapes: Mapping[str, tuple[int, ...]], facts: DeviceFacts) -> bool:
        if not super().supports(step, shapes, facts):
            return False
        oh, ow = shapes[step.outputs[0]][2:4] if not step.attrs.get("pool") else (0, 0)
        tiles2 = -(-oh // 2) * -(-ow // 2)
        tiles4 = -(-oh // 4) * -(-ow // 4)
        return tiles2 > 0 and 36 * tiles4 <= MAX_MULTIPLY_RATIO * 16 * tiles2
