// Winograd F(2x2, 3x3) convolution in three launches (stride 1, pad 1, 3x3, N=1):
//   wino_input : d (4x4 patch per 2x2 output tile) -> V = B^T d B, stored V[16][CIN][TP]
//   wino_gemm  : M[xi] = U[xi] x V[xi] for the 16 xi, vectorised over output channels like conv_covec
//                (NV float16 vectors x NT tiles of accumulators per work-item); U is [16][NCB][CIN][CO_V]
//   wino_output: Y = A^T M A (2x2 outputs per tile) + bias, activation; y [COUT][H][W]
// TW = ceil(W/2), T = TW * ceil(H/2) tiles, TP = T rounded up to NT; COUT_PAD = NCB * CO_V.
#define CO_V (16 * NV)
#define TW ((W + 1) / 2)
#define TH ((H + 1) / 2)
#define T (TW * TH)

__kernel void wino_input(__global const float* restrict x, __global float* restrict v)
{
    const int t = get_global_id(0);
    const int ci = get_global_id(1);
    if (t >= TP) return;
    float d[4][4];
    const int ty = t / TW, tx = t % TW;
    const int y0 = 2 * ty - 1, x0 = 2 * tx - 1;
    __global const float* p = x + (size_t)ci * H * W;
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const int yy = y0 + i, xx = x0 + j;
            d[i][j] = (t < T && yy >= 0 && yy < H && xx >= 0 && xx < W) ? p[yy * W + xx] : 0.0f;
        }
    float b[4][4];  // B^T d
#pragma unroll
    for (int j = 0; j < 4; j++) {
        b[0][j] = d[0][j] - d[2][j];
        b[1][j] = d[1][j] + d[2][j];
        b[2][j] = d[2][j] - d[1][j];
        b[3][j] = d[1][j] - d[3][j];
    }
    __global float* o = v + (size_t)ci * TP + t;
#pragma unroll
    for (int i = 0; i < 4; i++) {  // (B^T d) B
        o[(size_t)(i * 4 + 0) * CIN * TP] = b[i][0] - b[i][2];
        o[(size_t)(i * 4 + 1) * CIN * TP] = b[i][1] + b[i][2];
        o[(size_t)(i * 4 + 2) * CIN * TP] = b[i][2] - b[i][1];
        o[(size_t)(i * 4 + 3) * CIN * TP] = b[i][1] - b[i][3];
    }
}

__kernel void wino_gemm(__global const float* restrict v, __global const float16* restrict u,
                        __global float* restrict m)
{
    const int t0 = get_global_id(0) * NT;
    const int cb = get_global_id(1);
    const int xi = get_global_id(2);
    float16 acc[NV][NT];
#pragma unroll
    for (int k = 0; k < NV; k++)
#pragma unroll
        for (int t = 0; t < NT; t++) acc[k][t] = (float16)(0.0f);
    __global const float* vp = v + (size_t)xi * CIN * TP + t0;
    __global const float16* up = u + ((size_t)xi * NCB + cb) * CIN * NV;
    for (int ci = 0; ci < CIN; ci++) {
        float16 w[NV];
#pragma unroll
        for (int k = 0; k < NV; k++) w[k] = up[k];
#pragma unroll
        for (int t = 0; t < NT; t++) {
            const float a = vp[t];
#pragma unroll
            for (int k = 0; k < NV; k++) acc[k][t] = fma((float16)(a), w[k], acc[k][t]);
        }
        vp += TP;
        up += NV;
    }
    __global float* mp = m + ((size_t)xi * TP + t0) * (NCB * CO_V) + cb * CO_V;
#pragma unroll
    for (int t = 0; t < NT; t++)
#pragma unroll
        for (int k = 0; k < NV; k++) vstore16(acc[k][t], 0, mp + (size_t)t * NCB * CO_V + k * 16);
}

__kernel void wino_output(__global const float* restrict m, __global const float* restrict bias,
                          __global float* restrict y)
{
    const int co = get_global_id(0);
    const int t = get_global_id(1);
    if (co >= COUT || t >= T) return;
    float s[16];
#pragma unroll
    for (int xi = 0; xi < 16; xi++) s[xi] = m[((size_t)xi * TP + t) * (NCB * CO_V) + co];
    float a[2][4];  // A^T s
#pragma unroll
    for (int j = 0; j < 4; j++) {
        a[0][j] = s[j] + s[4 + j] + s[8 + j];
        a[1][j] = s[4 + j] - s[8 + j] - s[12 + j];
    }
    const float b = bias[co];
    const int ty = t / TW, tx = t % TW;
    __global float* o = y + (size_t)co * H * W;
#pragma unroll
    for (int i = 0; i < 2; i++) {
        float r0 = a[i][0] + a[i][1] + a[i][2] + b;
        float r1 = a[i][1] - a[i][2] - a[i][3] + b;
#if LEAKY
        r0 = fmax(r0, r0 * ALPHA);
        r1 = fmax(r1, r1 * ALPHA);
#endif
        const int yy = 2 * ty + i, xx = 2 * tx;
        if (yy < H) {
            o[yy * W + xx] = r0;
            if (xx + 1 < W) o[yy * W + xx + 1] = r1;
        }
    }
}
