// Winograd F(2x2, 3x3) convolution in three launches (N = 1, stride 1, dilation 1, groups 1, padding 1):
//   winograd_input : 4x4 input patch per 2x2 output tile -> V = B^T d B, stored V[16][IC][TP]
//   winograd_gemm  : M[xi] = U[xi] x V[xi] for the 16 xi, vectorised over output channels (NV float16
//                    vectors x NT tiles of accumulators per work-item); U [16][NCB][IC][16*NV]; M [16][TP][NCB*CO_V]
//   winograd_output: Y = A^T M A (2x2 outputs per tile) + bias, activation (ACT as in activation.h.cl); y [OC][OH][OW]
// TW = ceil(OW/2), T = TW * ceil(OH/2) tiles, TP = T rounded up to NT. The transforms take the tile as two grid
// coordinates or divide by a float reciprocal: an integer division by a run-time tw per work-item cost up to 3x
// their time.
// Compile-time: the blocking NT NV and ACT. The geometry (ic ih iw oc oh ow, ncb channel blocks, tp) comes as
// arguments, so layers with the same blocking share one program (fewer compiles at a cold start).
#define CO_V (16 * NV)

// Launch: global (TP rounded up to the local size, IC). Tiles at or past T get zeros.
__kernel void winograd_input(__global const float* restrict x, __global float* restrict v, const int ic,
                             const int ih, const int iw, const int tw, const int tiles, const int tp,
                             const float inv_tw) {
    const int t = get_global_id(0);
    const int ci = get_global_id(1);
    if (t >= tp) return;
    // t / tw by a float multiply: exact here (t < 2^20, tw < 2^10) and, unlike an integer division by a
    // run-time value, it vectorises across the work-group
    const int ty = (int)(((float)t + 0.5f) * inv_tw), tx = t - ty * tw;
    const int y0 = 2 * ty - 1, x0 = 2 * tx - 1;
    __global const float* p = x + (size_t)ci * ih * iw;
    float d[4][4];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const int yy = y0 + i, xx = x0 + j;
            d[i][j] = (t < tiles && yy >= 0 && yy < ih && xx >= 0 && xx < iw) ? p[yy * iw + xx] : 0.0f;
        }
    float b[4][4];  // B^T d
#pragma unroll
    for (int j = 0; j < 4; j++) {
        b[0][j] = d[0][j] - d[2][j];
        b[1][j] = d[1][j] + d[2][j];
        b[2][j] = d[2][j] - d[1][j];
        b[3][j] = d[1][j] - d[3][j];
    }
    __global float* o = v + (size_t)ci * tp + t;
#pragma unroll
    for (int i = 0; i < 4; i++) {  // (B^T d) B
        o[(size_t)(i * 4 + 0) * ic * tp] = b[i][0] - b[i][2];
        o[(size_t)(i * 4 + 1) * ic * tp] = b[i][1] + b[i][2];
        o[(size_t)(i * 4 + 2) * ic * tp] = b[i][2] - b[i][1];
        o[(size_t)(i * 4 + 3) * ic * tp] = b[i][1] - b[i][3];
    }
}

__kernel void winograd_gemm(__global const float* restrict v, __global const float16* restrict u,
                            __global float* restrict m, const int ic, const int ncb, const int tp) {
    const int t0 = get_global_id(0) * NT;
    const int cb = get_global_id(1);
    const int xi = get_global_id(2);
    float16 acc[NV][NT];
#pragma unroll
    for (int k = 0; k < NV; k++)
#pragma unroll
        for (int t = 0; t < NT; t++) acc[k][t] = (float16)(0.0f);
    __global const float* vp = v + (size_t)xi * ic * tp + t0;
    __global const float16* up = u + ((size_t)xi * ncb + cb) * ic * NV;
    for (int ci = 0; ci < ic; ci++) {
        float16 w[NV];
#pragma unroll
        for (int k = 0; k < NV; k++) w[k] = up[k];
#pragma unroll
        for (int t = 0; t < NT; t++) {
            const float a = vp[t];
#pragma unroll
            for (int k = 0; k < NV; k++) acc[k][t] = fma((float16)(a), w[k], acc[k][t]);
        }
        vp += tp;
        up += NV;
    }
    __global float* mp = m + ((size_t)xi * tp + t0) * (ncb * CO_V) + cb * CO_V;
#pragma unroll
    for (int t = 0; t < NT; t++)
#pragma unroll
        for (int k = 0; k < NV; k++) vstore16(acc[k][t], 0, mp + (size_t)t * ncb * CO_V + k * 16);
}

__kernel void winograd_output(__global const float* restrict m, __global const float* restrict bias,
                              __global float* restrict y, const float a0, const float a1, const int oc,
                              const int oh, const int ow, const int ncb, const int tp) {
    // Launch: global (OC rounded up to the local size, TW, TH).
    const int co = get_global_id(0), tx = get_global_id(1), ty = get_global_id(2);
    if (co >= oc) return;
    const int t = ty * get_global_size(1) + tx;
    float s[16];
#pragma unroll
    for (int xi = 0; xi < 16; xi++) s[xi] = m[((size_t)xi * tp + t) * (ncb * CO_V) + co];
    float a[2][4];  // A^T s
#pragma unroll
    for (int j = 0; j < 4; j++) {
        a[0][j] = s[j] + s[4 + j] + s[8 + j];
        a[1][j] = s[4 + j] - s[8 + j] - s[12 + j];
    }
    const float b = bias[co];
    __global float* o = y + (size_t)co * oh * ow;
#pragma unroll
    for (int i = 0; i < 2; i++) {
        const int yy = 2 * ty + i, xx = 2 * tx;
        if (yy >= oh) break;
        o[yy * ow + xx] = activate(a[i][0] + a[i][1] + a[i][2] + b, a0, a1);
        if (xx + 1 < ow) o[yy * ow + xx + 1] = activate(a[i][1] - a[i][2] - a[i][3] + b, a0, a1);
    }
}
