// KH x KW convolution (stride 1 or 2 along x, any along y, zero padding) vectorised over output PIXELS
// ("pixels"): pointwise's idea for spatial taps. A work-item keeps OB output channels x NPV float16 vectors of
// 16 consecutive output pixels of one output row in registers; per input channel and tap it loads NPV input
// vectors (stride 2: two loads, the even lanes of the first and the odd lanes of the second) and broadcasts OB
// weights against them, and every store is a contiguous 16-float vector. covec (vectorised over output
// channels) stores each vector lane by lane into 16 planes, which dominates on the few channels of YOLOv8/v11's
// stem and stride-2 downsampling convs.
// Layouts: x [N][IC][IH][IW]; w [NOB][IC][KH][KW][OB] (OC zero-padded to NOB * OB); bias [NOB * OB];
// y [N][OC][OH][OW]. Launch: global (NOB, OH * ceil(OW / (16 * NPV)), N), local (1, 1, 1): the channel blocks
// of one pixel block are neighbouring work-groups, so its input rows are read from cache by all of them.
// Compile-time: KH, KW, SW, OB, NPV, ACT, RES, HALF (weights stored as half). Geometry comes at launch.
#define PV (16 * NPV)

// 16 values row[x0], row[x0 + step], ... with zeros outside [0, w): the residual of a map narrower than 16
// pixels (the lanes past the map are never stored).
inline float16 gather16(__global const float* restrict row, const int x0, const int step, const int w) {
    float t[16];
#pragma unroll
    for (int l = 0; l < 16; l++) {
        const int i = x0 + l * step;
        t[l] = i >= 0 && i < w ? row[i] : 0.0f;
    }
    return vload16(0, t);
}

// The inputs of 16 output pixels for one tap, all inside the row: p[0], p[SW], ..., p[15 * SW] (a macro: p is a
// global row or a private copy of one).
#if SW == 1
#define LOAD_TAP(p) vload16(0, (p))
#else
#define LOAD_TAP(p) ((float16)(vload16(0, (p)).even, vload16(0, (p) + 15).odd))  // p[0..15], p[15..30]
#endif
#define SEG (15 * SW + KW)  // the inputs of one vector's taps in one row

#define COPY_SEGMENTS                                                                                \
    for (int j = 0; j < NPV; j++) {                                                                  \
        if (inside[j]) continue;                                                                     \
        for (int t = 0; t < SEG; t++) {                                                              \
            const int i = ix[j] + t;                                                                 \
            seg[j][t] = i >= 0 && i < iw ? row[i] : 0.0f;                                            \
        }                                                                                            \
    }

// acc += the taps of every input channel: PREPARE runs once per input row, LOAD (an expression of row, j, kx)
// gives vector j's inputs of tap kx
#define ACCUMULATE(LOAD, PREPARE)                                                                    \
    {                                                                                                \
        __global const float* xp = xn;                                                               \
        WEIGHTS wb = wn;                                                                             \
        for (int ci = 0; ci < ic; ci++) {                                                            \
            for (int ky = ky0; ky < ky1; ky++) {                                                     \
                __global const float* row = xp + ky * iw;                                            \
                WEIGHTS wt = wb + ky * KW * OB;                                                      \
                PREPARE                                                                              \
                _Pragma("unroll") for (int kx = 0; kx < KW; kx++) {                                  \
                    float16 xv[NPV];                                                                 \
                    _Pragma("unroll") for (int j = 0; j < NPV; j++) xv[j] = LOAD;                    \
                    float wr[OB];                                                                    \
                    LOAD_WROW(wr, wt + kx * OB)                                                      \
                    _Pragma("unroll") for (int o = 0; o < OB; o++) {                                 \
                        const float16 wv = (float16)(wr[o]);                                         \
                        _Pragma("unroll") for (int j = 0; j < NPV; j++)                              \
                            acc[o][j] = fma(wv, xv[j], acc[o][j]);                                   \
                    }                                                                                \
                }                                                                                    \
            }                                                                                        \
            xp += plane;                                                                             \
            wb += KH * KW * OB;                                                                      \
        }                                                                                            \
    }

__kernel void conv2d_pixels(__global const float* restrict x, WEIGHTS w, __global const float* restrict bias,
                            __global float* restrict y, const float a0, const float a1,
                            const int ic, const int ih, const int iw, const int oc, const int oh, const int ow,
                            const int sh, const int pt, const int pl RESIDUAL_ARG) {
    const int cb = get_global_id(0);
    const int nxb = (ow + PV - 1) / PV;
    const int oy = get_global_id(1) / nxb;
    const int ox0 = get_global_id(1) % nxb * PV;
    const int n = get_global_id(2);
    float16 acc[OB][NPV];
#pragma unroll
    for (int o = 0; o < OB; o++) {
        const float16 b = (float16)(bias[cb * OB + o]);
#pragma unroll
        for (int j = 0; j < NPV; j++) acc[o][j] = b;
    }
    // Vector j covers output pixels at[j] .. at[j] + 15; as in pointwise, one that would run past the row's end
    // is moved back to end at its last pixel (it recomputes its neighbour's pixels bit for bit). A vector whose
    // taps all lie inside the input row loads plain vectors; one over the padding reads a zero-padded private
    // copy of its inputs of the row, made once per row instead of a gather per tap.
    int ix[NPV];
    bool inside[NPV];
#pragma unroll
    for (int j = 0; j < NPV; j++) {
        ix[j] = (ow >= 16 ? min(ox0 + j * 16, ow - 16) : 0) * SW - pl;
        inside[j] = ix[j] >= 0 && ix[j] + 15 * SW + KW - 1 < iw && ow >= 16;
    }
    const int iy0 = oy * sh - pt;
    const int ky0 = max(0, -iy0), ky1 = min(KH, ih - iy0);  // taps over the top/bottom padding add nothing
    const int plane = ih * iw;
    __global const float* xn = x + (size_t)n * ic * plane + iy0 * iw;
    WEIGHTS wn = w + (size_t)cb * ic * KH * KW * OB;
    bool all_inside = true;
#pragma unroll
    for (int j = 0; j < NPV; j++) all_inside = all_inside && inside[j];
    // the common case (every vector inside its rows) without the gather's code in its loop
    if (all_inside) {
        ACCUMULATE(LOAD_TAP(row + ix[j] + kx), )
    } else {
        // a vector over the padding (or a row under 16 pixels): its inputs of each row copied once, zero-padded
        float seg[NPV][SEG];
        ACCUMULATE(inside[j] ? LOAD_TAP(row + ix[j] + kx) : LOAD_TAP(&seg[j][kx]), COPY_SEGMENTS)
    }
#pragma unroll
    for (int o = 0; o < OB; o++) {
        const int c = cb * OB + o;
        if (c >= oc) break;  // zero-padded channels are not stored
        const size_t row = ((size_t)(n * oc + c) * oh + oy) * ow;
#pragma unroll
        for (int j = 0; j < NPV; j++) {
            if (ox0 + j * 16 >= ow) break;  // wholly past the end: a repeat of the last vector
            const int q = ow >= 16 ? min(ox0 + j * 16, ow - 16) : 0;
#if RES
            const float16 rv = ow >= 16 ? vload16(0, res + row + q) : gather16(res + row, 0, 1, ow);
#else
            const float16 rv = (float16)(0.0f);
#endif
            finish_store16(acc[o][j], rv, y + row + q, ow, a0, a1);
        }
    }
}
