// Depthwise convolution (groups = input channels, M = OC / IC filters per channel) in two launches:
//   depthwise_pad : copies x [N*IC][IH][IW] into xp [N*IC][PH][PW] with the zero padding written out, so that
//                   the main kernel never tests a border (row-wise, interior in 16-float vectors)
//   depthwise_conv: a work-item computes XV output columns (one vector) x RY output rows of one output channel;
//                   each tap is a broadcast weight times a contiguous XV-wide load; fused bias + activation
//                   (ACT as in activation.h.cl). Stride 1 only: for stride 2 the padding pass copies 4x the
//                   output's pixels and measured no faster than ConvBlocked.
// Layouts: w [OC][KH][KW]; bias [OC]; y [N][OC][OH][OW]. PH/PW cover every row and column a (padded) work-item
// reads. Compile-time: KH KW DH DW RY XV ACT; sizes and padding are arguments.
// Measured (bench/kernels_lab/README.md, MobileNet shapes): 2.5-4x faster than the general ConvBlocked.

__kernel void depthwise_pad(__global const float* restrict x, __global float* restrict xp, const int ih,
                            const int iw, const int ph, const int pw, const int pt, const int pl) {
    const int py = get_global_id(0), z = get_global_id(1);
    if (py >= ph) return;  // rows rounded up to the local size
    __global float* o = xp + ((size_t)z * ph + py) * pw;
    const int sy = py - pt;
    if (sy < 0 || sy >= ih) {
        int px = 0;
        for (; px + 16 <= pw; px += 16) vstore16((float16)(0.0f), 0, o + px);
        for (; px < pw; px++) o[px] = 0.0f;
        return;
    }
    __global const float* s = x + ((size_t)z * ih + sy) * iw;
    const int lo = min(pl, pw), hi = min(pl + iw, pw);  // padded columns [lo, hi) hold source columns
    int px = 0;
    for (; px < lo; px++) o[px] = 0.0f;
    for (; px + 16 <= hi; px += 16) vstore16(vload16(0, s + px - pl), 0, o + px);
    for (; px < hi; px++) o[px] = s[px - pl];
    for (; px < pw; px++) o[px] = 0.0f;
}

#if XV == 16
#define VT float16
#define VLOAD vload16
#define VSTORE vstore16
#else
#define VT float8
#define VLOAD vload8
#define VSTORE vstore8
#endif

__kernel void depthwise_conv(__global const float* restrict xp, __global const float* restrict w,
                             __global const float* restrict bias, __global float* restrict y, const float a0,
                             const float a1, const int oc_n, const int m, const int ph, const int pw,
                             const int oh, const int ow) {
    const int ox0 = get_global_id(0) * XV;
    const int oy0 = get_global_id(1) * RY;
    const int z = get_global_id(2);  // n * OC + oc; its input plane is n * IC + oc / M = z / M
    if (oy0 >= oh) return;  // rows rounded up to the local size
    const int oc = z % oc_n;
    __global const float* xc = xp + (size_t)(z / m) * ph * pw;
    __global const float* wc = w + oc * KH * KW;
    VT acc[RY];
    const float b = bias[oc];
#pragma unroll
    for (int r = 0; r < RY; r++) acc[r] = (VT)(b);
#pragma unroll
    for (int ky = 0; ky < KH; ky++)
#pragma unroll
        for (int kx = 0; kx < KW; kx++) {
            const VT wv = (VT)(wc[ky * KW + kx]);
#pragma unroll
            for (int r = 0; r < RY; r++) {
                const VT v = VLOAD(0, xc + (oy0 + r + ky * DH) * pw + ox0 + kx * DW);
                acc[r] = fma(wv, v, acc[r]);
            }
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
        VSTORE(acc[r], 0, t);
        for (int l = 0; l < nl; l++) o[l] = activate(t[l], a0, a1);
#endif
    }
}
