// Winograd F(4x4, 3x3): the same three launches as F(2x2, 3x3) (conv_winograd.cl, put before this file:
// its GEMM and storage macros serve both) with 6x6 input tiles, 36 GEMMs and 4x4 output tiles. 4x fewer
// multiplies than a direct conv (F(2x2) saves 2.25x); larger transforms and slightly larger rounding error.
//   winograd4_input : V = B^T d B for each 6x6 patch (origin 4 ty - 1, 4 tx - 1), V [36][IC][TP]
//   winograd4_output: Y = A^T M A (4x4 outputs) + bias, activation (and a fused residual), y [N][OC][OH][OW]
// TW = ceil(OW/4), T = TW * ceil(OH/4) tiles per image, the batch's images one after another (column n * T + t),
// TP = N * T rounded up to NT; the grids as in conv_winograd.cl.

// B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1], applied to
// the six values d0..d5 of one column (or row)
#define BT6(d, o)                                                \
    o[0] = 4.0f * d[0] - 5.0f * d[2] + d[4];                     \
    o[1] = -4.0f * (d[1] + d[2]) + d[3] + d[4];                  \
    o[2] = 4.0f * (d[1] - d[2]) - d[3] + d[4];                   \
    o[3] = 2.0f * (d[3] - d[1]) + d[4] - d[2];                   \
    o[4] = 2.0f * (d[1] - d[3]) + d[4] - d[2];                   \
    o[5] = 4.0f * d[1] - 5.0f * d[3] + d[5];

// Launch: global (TP - (N-1) T rounded up to the local size, IC, N); only the last image writes the zero
// padding columns up to TP (see winograd_input).
__kernel void winograd4_input(__global const float* restrict x, __global store_t* restrict v, const int ic,
                              const int ih, const int iw, const int tw, const int tiles, const int tp,
                              const float inv_tw) {
    const int t = get_global_id(0);
    const int ci = get_global_id(1);
    const int n = get_global_id(2);
    const int col = n * tiles + t;
    if (col >= tp || (t >= tiles && n + 1 < (int)get_global_size(2))) return;
    INPUT_PATCH(d, 4)
    float b[6][6];  // B^T d, column by column
#pragma unroll
    for (int j = 0; j < 6; j++) {
        float c[6], o[6];
#pragma unroll
        for (int i = 0; i < 6; i++) c[i] = d[i][j];
        BT6(c, o)
#pragma unroll
        for (int i = 0; i < 6; i++) b[i][j] = o[i];
    }
    __global store_t* out = v + (size_t)ci * tp + col;
    const size_t plane = (size_t)ic * tp;
#pragma unroll
    for (int i = 0; i < 6; i++) {  // (B^T d) B, row by row
        float o[6];
        BT6(b[i], o)
#pragma unroll
        for (int j = 0; j < 6; j++) STORE1(o[j], out, (i * 6 + j) * plane);
    }
}

// A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1] on six values
#define AT6(s, o)                                                \
    o[0] = s[0] + s[1] + s[2] + s[3] + s[4];                     \
    o[1] = s[1] - s[2] + 2.0f * (s[3] - s[4]);                   \
    o[2] = s[1] + s[2] + 4.0f * (s[3] + s[4]);                   \
    o[3] = s[1] - s[2] + 8.0f * (s[3] - s[4]) + s[5];

// Launch: global (ceil(OC / 16), TW, N * TH), local (1, 1, 1): a work-item takes one tile for 16 output
// channels as float16 vectors (M's channels are contiguous: 36 vector loads), and stores each output pixel's
// 16 channels into their 16 planes. Against one channel per work-item with PoCL vectorising across the group
// (gathers and scatters of 8 lanes): 0.29 -> 0.22 ms at 64 x 52 x 52, 0.08 -> 0.055 at 128 -> 64 x 26 x 26.
// (F(2x2)'s output transform, 16 loads per 4 outputs, measured no faster this way and keeps its own.)
__kernel void winograd4_output(__global const store_t* restrict m, __global const float* restrict bias,
                               __global float* restrict y, const float a0, const float a1, const int oc,
                               const int oh, const int ow, const int ncb, const int tp, const int th,
                               const float inv_th RESIDUAL_ARG) {
    const int co0 = get_global_id(0) * 16, tx = get_global_id(1), nty = get_global_id(2);
    const int t = nty * get_global_size(1) + tx;  // M's row n * T + t
    const int n = (int)(((float)nty + 0.5f) * inv_th), ty = nty - n * th;  // exact: see conv_winograd.cl
    float16 s[6][6];
#pragma unroll
    for (int i = 0; i < 6; i++)
#pragma unroll
        for (int j = 0; j < 6; j++) s[i][j] = LOADM16(m + ((size_t)(i * 6 + j) * tp + t) * (ncb * CO_V) + co0);
    float16 a[4][6];  // A^T s, column by column
#pragma unroll
    for (int j = 0; j < 6; j++) {
        float16 c[6], o[4];
#pragma unroll
        for (int i = 0; i < 6; i++) c[i] = s[i][j];
        AT6(c, o)
#pragma unroll
        for (int i = 0; i < 4; i++) a[i][j] = o[i];
    }
    const int nl = min(16, oc - co0);  // channels of this vector that exist (M's are padded to NCB * CO_V)
    float bl[16];
    for (int l = 0; l < 16; l++) bl[l] = l < nl ? bias[co0 + l] : 0.0f;
    const float16 b = vload16(0, bl);
    const size_t hw = (size_t)oh * ow;
    const size_t base = ((size_t)n * oc + co0) * hw;  // channel co0 of image n
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const int yy = 4 * ty + i;
        if (yy >= oh) break;
        float16 r[4];
        AT6(a[i], r)
#pragma unroll
        for (int k = 0; k < 4; k++) {
            const int xx = 4 * tx + k;
            if (xx >= ow) break;
            store_channels16(y, RESIDUAL_PTR, base + yy * ow + xx, hw, nl, r[k] + b, a0, a1);
        }
    }
}
