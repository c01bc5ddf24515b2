// Depthwise convolution (groups = input channels, M = OC / IC filters per channel), stride 1, one launch: a
// work-item computes XV output columns (one vector) x RY output rows of one output channel. It walks the
// RY + (KH - 1) * DH input rows its taps touch, each once: a row outside the map adds nothing (skipped), and a
// row gives its KW tap vectors as vector loads masked by column, so the zero padding costs a compare and a blend
// instead of a padding pass into scratch (bench/kernels_lab/README.md: that pass was a launch and a copy of the
// input, 25-50 % of the layer). A masked load may start before or end after its row, never outside the tensor:
// the (at most two) work-items whose windows would reach past its ends read clamped scalars instead.
// Each tap is a broadcast weight times a vector; fused bias + activation (ACT as in activation.h.cl). Stride 2
// stays with ConvBlocked (the vectors would need every other column).
// Layouts: x [N*IC][IH][IW]; w [OC][KH][KW]; bias [OC]; y [N][OC][OH][OW]. Compile-time: KH KW DH DW RY XV ACT;
// sizes and padding are arguments.

#define WIN (XV + (KW - 1) * DW)   // input columns of one row a work-item's taps read
#define ROWS (RY + (KH - 1) * DH)  // input rows they read
#if XV == 16
#define VT float16
#define IVT int16
#define VLOAD vload16
#define IOTA (int16)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
#else
#define VT float8
#define IVT int8
#define VLOAD vload8
#define IOTA (int8)(0, 1, 2, 3, 4, 5, 6, 7)
#endif

// One input row's KW tap vectors v[kx], columns off the row zeroed: masked vector loads.
#define ROW_VECTORS(v, row)                                                                 \
    _Pragma("unroll") for (int kx = 0; kx < KW; kx++) {                                    \
        const IVT col = (IVT)(ix0 + kx * DW) + IOTA;                                       \
        v[kx] = select((VT)(0.0f), VLOAD(0, (row) + ix0 + kx * DW), col >= 0 && col < iw); \
    }
// The same from clamped scalar reads (a window reaching past the tensor's ends).
#define ROW_SCALARS(v, row)                                                                 \
    {                                                                                       \
        float win[WIN];                                                                     \
        _Pragma("unroll") for (int c = 0; c < WIN; c++) {                                  \
            const int ix = ix0 + c;                                                         \
            const float t = (row)[clamp(ix, 0, iw - 1)];                                    \
            win[c] = ix >= 0 && ix < iw ? t : 0.0f;                                         \
        }                                                                                   \
        _Pragma("unroll") for (int kx = 0; kx < KW; kx++) v[kx] = VLOAD(0, win + kx * DW); \
    }
// acc[r] += every tap of the rows in the map; LOAD is one of the two above (instantiated once each, so the
// choice is made once per work-item, outside the unrolled loops).
#define ACCUMULATE(LOAD)                                                                             \
    _Pragma("unroll") for (int j = 0; j < ROWS; j++) {                                              \
        const int iy = oy0 - pt + j;                                                                 \
        if (iy < 0 || iy >= ih) continue;                                                            \
        VT v[KW];                                                                                    \
        LOAD(v, xc + iy * iw)                                                                        \
        _Pragma("unroll") for (int ky = 0; ky < KH; ky++) {                                         \
            const int r = j - ky * DH; /* the output row this input row feeds through filter row ky */ \
            if (r < 0 || r >= RY) continue;                                                          \
            _Pragma("unroll") for (int kx = 0; kx < KW; kx++)                                       \
                acc[r] = fma((VT)(wc[ky * KW + kx]), v[kx], acc[r]);                                 \
        }                                                                                            \
    }

__kernel void depthwise_conv(__global const float* restrict x, __global const float* restrict w,
                             __global const float* restrict bias, __global float* restrict y, const float a0,
                             const float a1, const int oc_n, const int m, const int ih, const int iw,
                             const int oh, const int ow, const int pt, const int pl, const int planes) {
    const int ox0 = get_global_id(0) * XV;
    const int oy0 = get_global_id(1) * RY;
    const int z = get_global_id(2);  // n * OC + oc; its input plane is n * IC + oc / M = z / M
    if (oy0 >= oh) return;           // rows rounded up to the local size
    const int oc = z % oc_n, plane = z / m;
    __global const float* xc = x + (size_t)plane * ih * iw;
    __global const float* wc = w + oc * KH * KW;
    VT acc[RY];
    const float b = bias[oc];
#pragma unroll
    for (int r = 0; r < RY; r++) acc[r] = (VT)(b);
    const int ix0 = ox0 - pl;  // input column of tap kx = 0 for the first output column
    // the first and last elements the masked loads would read, counted from the tensor's start
    const int y_lo = max(oy0 - pt, 0), y_hi = min(oy0 - pt + ROWS, ih) - 1;
    const int lo = (plane * ih + y_lo) * iw + ix0, hi = (plane * ih + y_hi) * iw + ix0 + WIN - 1;
    if (lo < 0 || hi >= planes * ih * iw) {
        ACCUMULATE(ROW_SCALARS)
    } else {
        ACCUMULATE(ROW_VECTORS)
    }
    __global float* yc = y + (size_t)z * oh * ow;
#pragma unroll
    for (int r = 0; r < RY; r++) {
        if (oy0 + r >= oh) break;
        float t[XV];
        __global float* o = yc + (oy0 + r) * ow + ox0;
        const int nl = min(XV, ow - ox0);  // the right-most vector may hang over the map
#if XV == 16
        // the activation on the whole vector (a scalar exp per element made SiLU most of the layer's time)
        const float16 v = activate16(acc[r], a0, a1);
        if (nl == 16) {
            vstore16(v, 0, o);
            continue;
        }
        vstore16(v, 0, t);
        for (int l = 0; l < nl; l++) o[l] = t[l];
#else
        vstore8(acc[r], 0, t);
        for (int l = 0; l < nl; l++) o[l] = activate(t[l], a0, a1);
#endif
    }
}
