// Winograd F(2x2, 3x3) convolution in three launches (N = 1, stride 1, dilation 1, groups 1, padding 1):
//   winograd_input : 4x4 input patch per 2x2 output tile -> V = B^T d B, stored V[16][IC][TP]
//   winograd_gemm  : M[xi] = U[xi] x V[xi] for the 16 xi, vectorised over output channels (NV float16
//                    vectors x NT tiles of accumulators per work-item); U [16][NCB][IC][16*NV]; M [16][TP][NCB*CO_V]
//   winograd_output: Y = A^T M A (2x2 outputs per tile) + bias, activation (ACT as in activation.h.cl); y [OC][OH][OW]
// TW = ceil(OW/2), T = TW * ceil(OH/2) tiles, TP = T rounded up to NT.
// Compile-time: IC OC IH IW OH OW NT NV NCB TP ACT.
#define CO_V (16 * NV)
#define TW ((OW + 1) / 2)
#define TH ((OH + 1) / 2)
#define T (TW * TH)

__kernel void winograd_input(__global const float* restrict x, __global float* restrict v) {
    const int t = get_global_id(0);
    const int ci = get_global_id(1);
    if (t >= TP) return;
    const int ty = t / TW, tx = t % TW;
    const int y0 = 2 * ty - 1, x0 = 2 * tx - 1;
    __global const float* p = x + (size_t)ci * IH * IW;
    float d[4][4];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const int yy = y0 + i, xx = x0 + j;
            d[i][j] = (t < T && yy >= 0 && yy < IH && xx >= 0 && xx < IW) ? p[yy * IW + xx] : 0.0f;
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
        o[(size_t)(i * 4 + 0) * IC * TP] = b[i][0] - b[i][2];
        o[(size_t)(i * 4 + 1) * IC * TP] = b[i][1] + b[i][2];
        o[(size_t)(i * 4 + 2) * IC * TP] = b[i][2] - b[i][1];
        o[(size_t)(i * 4 + 3) * IC * TP] = b[i][1] - b[i][3];
    }
}

__kernel void winograd_gemm(__global const float* restrict v, __global const float16* restrict u,
                            __global float* restrict m) {
    const int t0 = get_global_id(0) * NT;
    const int cb = get_global_id(1);
    const int xi = get_global_id(2);
    float16 acc[NV][NT];
#pragma unroll
    for (int k = 0; k < NV; k++)
#pragma unroll
        for (int t = 0; t < NT; t++) acc[k][t] = (float16)(0.0f);
    __global const float* vp = v + (size_t)xi * IC * TP + t0;
    __global const float16* up = u + ((size_t)xi * NCB + cb) * IC * NV;
    for (int ci = 0; ci < IC; ci++) {
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

__kernel void winograd_output(__global const float* restrict m, __global const float* restrict bias,
                              __global float* restrict y, const float a0, const float a1) {
    const int co = get_global_id(0);
    const int t = get_global_id(1);
    if (co >= OC || t >= T) return;
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
    __global float* o = y + (size_t)co * OH * OW;
#pragma unroll
    for (int i = 0; i < 2; i++) {
        const int yy = 2 * ty + i, xx = 2 * tx;
        if (yy >= OH) break;
        o[yy * OW + xx] = activate(a[i][0] + a[i][1] + a[i][2] + b, a0, a1);
        if (xx + 1 < OW) o[yy * OW + xx + 1] = activate(a[i][1] - a[i][2] - a[i][3] + b, a0, a1);
    }
}
