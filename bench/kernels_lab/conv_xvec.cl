// Direct 3x3 convolution (stride 1, pad 1), vectorised over x (float16 lanes): each work-item computes COB
// output channels x RY rows x 16 columns; fused bias + leaky and optional 2x2/2 max-pool (POOL=1, RY even).
// Layouts: in [CIN][H][W]; wt [COUT/COB][CIN][3][3][COB]; bias [COUT]; out [COUT][H][W] or pooled [H/2][W/2].
#define HW (H * W)

inline float16 load_row16(__global const float* row, const int x0)
{
    if (x0 + 16 <= W) return vload16(0, row + x0);
    float t[16];
#pragma unroll
    for (int l = 0; l < 16; l++) t[l] = (x0 + l < W) ? row[min(x0 + l, W - 1)] : 0.0f;
    return vload16(0, t);
}

__kernel void conv_xvec(__global const float* restrict in, __global const float* restrict wt,
                        __global const float* restrict bias, __global float* restrict out)
{
    const int x0 = get_global_id(0) * 16;
    const int y0 = get_global_id(1) * RY;
    const int cb = get_global_id(2);
    float16 acc[COB][RY];
#pragma unroll
    for (int c = 0; c < COB; c++) {
        const float b = bias[cb * COB + c];
#pragma unroll
        for (int r = 0; r < RY; r++) acc[c][r] = (float16)b;
    }
    __global const float* w = wt + (size_t)cb * CIN * 9 * COB;
    for (int ci = 0; ci < CIN; ci++) {
        __global const float* plane = in + (size_t)ci * HW;
#pragma unroll
        for (int j = 0; j < RY + 2; j++) {
            const int iy = y0 + j - 1;
            if (iy < 0 || iy >= H) continue;
            __global const float* row = plane + iy * W;
            const float16 c16 = load_row16(row, x0);
            const float left = x0 > 0 ? row[x0 - 1] : 0.0f;
            const float right = x0 + 16 < W ? row[x0 + 16] : 0.0f;
            const float16 l16 = (float16)(left, c16.s0123, c16.s4567, c16.s89ab, c16.scde);
            const float16 r16 = (float16)(c16.s1234, c16.s5678, c16.s9abc, c16.sdef, right);
#pragma unroll
            for (int r = 0; r < RY; r++) {
                const int ky = j - r;
                if (ky < 0 || ky > 2) continue;
                __global const float* wk = w + ky * 3 * COB;
#pragma unroll
                for (int c = 0; c < COB; c++) {
                    acc[c][r] = fma(l16, (float16)wk[c], acc[c][r]);
                    acc[c][r] = fma(c16, (float16)wk[COB + c], acc[c][r]);
                    acc[c][r] = fma(r16, (float16)wk[2 * COB + c], acc[c][r]);
                }
            }
        }
        w += 9 * COB;
    }
#pragma unroll
    for (int c = 0; c < COB; c++) {
        const int co = cb * COB + c;
#if POOL
#pragma unroll
        for (int r = 0; r < RY; r += 2) {
            float16 m = fmax(acc[c][r], acc[c][r + 1]);
            float8 p = fmax(m.even, m.odd);
#if LEAKY
            p = fmax(p, p * 0.1f);
#endif
            const int oy = (y0 + r) / 2, ox = x0 / 2;
            if (oy >= H / 2) continue;
            __global float* o = out + (size_t)co * (H / 2) * (W / 2) + oy * (W / 2) + ox;
            if (ox + 8 <= W / 2) vstore8(p, 0, o);
            else {
                float t[8];
                vstore8(p, 0, t);
                for (int l = 0; l < 8 && ox + l < W / 2; l++) o[l] = t[l];
            }
        }
#else
#pragma unroll
        for (int r = 0; r < RY; r++) {
            float16 v = acc[c][r];
#if LEAKY
            v = fmax(v, v * 0.1f);
#endif
            if (y0 + r >= H) continue;
            __global float* o = out + (size_t)co * HW + (y0 + r) * W + x0;
            if (x0 + 16 <= W) vstore16(v, 0, o);
            else {
                float t[16];
                vstore16(v, 0, t);
                for (int l = 0; l < 16 && x0 + l < W; l++) o[l] = t[l];
            }
        }
#endif
    }
}
