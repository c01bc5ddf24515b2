// Pointwise (1x1, stride 1, no padding) convolution vectorised over PIXELS ("pointwise"): on an NCHW map a 1x1
// conv is a GEMM y[oc][p] = sum_ci w[oc][ci] x[ci][p] over the flattened map (p = y * W + x), so a work-item
// keeps OB output channels x NPV float16 vectors of consecutive pixels in registers: per input channel NPV
// contiguous vector loads and OB broadcast weights feed OB * NPV multiply-adds, and every store is a contiguous
// 16-float vector. covec (vectorised over output channels) stores each vector lane by lane into 16 planes,
// which dominates on the few input channels of YOLOv8/v11's C2f 1x1 convs.
// Layouts: x [N][IC][P]; w [NOB][IC][OB] (OC zero-padded to NOB * OB); bias [NOB * OB]; y [N][OC][P].
// Launch: global (NOB, ceil(P / (16 * NPV)), N), local (1, 1, 1): the channel blocks of one pixel block are
// neighbouring work-groups, so its input slice is read from cache by all of them.
// Compile-time: OB, NPV, ACT, RES, HALF (weights stored as half). Geometry (ic, p, oc) comes at launch.
#define PV (16 * NPV)

// 16 pixels from p0 on (p0 < np): a vector load inside the map, else lane by lane with clamped indices (lanes
// past the map hold copies of its last pixel; they are never stored): maps under 16 pixels, the residual
inline float16 load16(__global const float* restrict row, const int p0, const int np) {
    if (p0 + 16 <= np) return vload16(0, row + p0);
    float t[16];
#pragma unroll
    for (int l = 0; l < 16; l++) t[l] = row[min(p0 + l, np - 1)];
    return vload16(0, t);
}

__kernel void conv2d_pointwise(__global const float* restrict x, WEIGHTS w, __global const float* restrict bias,
                               __global float* restrict y, const float a0, const float a1,
                               const int ic, const int np, const int oc RESIDUAL_ARG) {
    const int cb = get_global_id(0);
    const int p0 = get_global_id(1) * PV;
    const int n = get_global_id(2);
    __global const float* xp = x + (size_t)n * ic * np;
    WEIGHTS wb = w + (size_t)cb * ic * OB;
    float16 acc[OB][NPV];
#pragma unroll
    for (int o = 0; o < OB; o++) {
        const float16 b = (float16)(bias[cb * OB + o]);
#pragma unroll
        for (int j = 0; j < NPV; j++) acc[o][j] = b;
    }
    // Vector j covers pixels at[j] .. at[j] + 15. In the map's last block a vector that would run past the end
    // is moved back to end at the last pixel: it recomputes a few pixels of its neighbour, bit for bit the
    // same values (same order of operations), and every load stays a plain vector load. Only maps of fewer
    // than 16 pixels read lane by lane.
    int at[NPV];
#pragma unroll
    for (int j = 0; j < NPV; j++) at[j] = np >= 16 ? min(p0 + j * 16, np - 16) : 0;
    if (np >= 16) {
        for (int ci = 0; ci < ic; ci++) {
            float16 xv[NPV];
#pragma unroll
            for (int j = 0; j < NPV; j++) xv[j] = vload16(0, xp + at[j]);
            float wr[OB];
            LOAD_WROW(wr, wb)
#pragma unroll
            for (int o = 0; o < OB; o++) {
                const float16 wv = (float16)(wr[o]);
#pragma unroll
                for (int j = 0; j < NPV; j++) acc[o][j] = fma(wv, xv[j], acc[o][j]);
            }
            xp += np;
            wb += OB;
        }
    } else {
        for (int ci = 0; ci < ic; ci++) {
            const float16 xv = load16(xp, 0, np);
            float wr[OB];
            LOAD_WROW(wr, wb)
#pragma unroll
            for (int o = 0; o < OB; o++) acc[o][0] = fma((float16)(wr[o]), xv, acc[o][0]);
            xp += np;
            wb += OB;
        }
    }
#pragma unroll
    for (int o = 0; o < OB; o++) {
        const int c = cb * OB + o;
        if (c >= oc) break;  // zero-padded channels are not stored
        const size_t plane = (size_t)(n * oc + c) * np;
#pragma unroll
        for (int j = 0; j < NPV; j++) {
            if (p0 + j * 16 >= np) break;  // wholly past the end: a repeat of the last vector
            const int q = at[j];
#if RES
            const float16 rv = load16(res + plane, q, np);
#else
            const float16 rv = (float16)(0.0f);
#endif
            finish_store16(acc[o][j], rv, y + plane + q, np - q, a0, a1);
        }
    }
}
