// Direct convolution vectorised over OUTPUT CHANNELS: each work-item holds NV float16 vectors (16*NV output
// channels) x RY rows x NP columns of accumulators in registers; the input value of each position is broadcast.
// Stride 1, square kernel KS, zero padding PAD; fused bias + leaky (LEAKY=1, slope ALPHA < 1) and, with
// POOL=2 (RY=2, NP even), a fused 2x2 stride-2 max-pool (leaky is monotonic, so pooling first is exact).
// Layouts: in [CIN][H][W]; wt [COUT_PAD/CO_V][KS][KS][CIN][CO_V]; bias [COUT_PAD]; out [COUT][H'][W'] (NCHW, N=1)
// with COUT_PAD = COUT rounded up to CO_V (zero weights); H', W' = H, W or H/2, W/2 with POOL=2.
// Launch: global (ceil(W/NP), ceil(H/RY), COUT_PAD/CO_V), local (1,1,1).
#define CO_V (16 * NV)
#define HW (H * W)

__kernel void conv_covec(__global const float* restrict in, __global const float16* restrict wt,
                         __global const float16* restrict bias, __global float* restrict out)
{
    const int x0 = get_global_id(0) * NP;
    const int y0 = get_global_id(1) * RY;
    const int cb = get_global_id(2);
    float16 acc[NV][RY][NP];
#pragma unroll
    for (int v = 0; v < NV; v++) {
        const float16 b = bias[cb * NV + v];
#pragma unroll
        for (int r = 0; r < RY; r++)
#pragma unroll
            for (int p = 0; p < NP; p++) acc[v][r][p] = b;
    }
    for (int ky = 0; ky < KS; ky++) {
        const int iy0 = y0 + ky - PAD;
        if (iy0 + RY <= 0 || iy0 >= H) continue;  // every row of the block reads padding
        for (int kx = 0; kx < KS; kx++) {
            const int ix0 = x0 + kx - PAD;
            __global const float16* w = wt + ((size_t)(cb * KS + ky) * KS + kx) * CIN * NV;
            if (ix0 >= 0 && ix0 + NP <= W && iy0 >= 0 && iy0 + RY <= H) {
                __global const float* ip = in + iy0 * W + ix0;
                for (int ci = 0; ci < CIN; ci++) {
                    float16 wv[NV];
#pragma unroll
                    for (int v = 0; v < NV; v++) wv[v] = w[v];
#pragma unroll
                    for (int r = 0; r < RY; r++)
#pragma unroll
                        for (int p = 0; p < NP; p++) {
                            const float a = ip[r * W + p];
#pragma unroll
                            for (int v = 0; v < NV; v++) acc[v][r][p] = fma((float16)a, wv[v], acc[v][r][p]);
                        }
                    ip += HW;
                    w += NV;
                }
            } else {
                // Block touches the border: positions outside the image read zero; clamping keeps loads in bounds.
                __global const float* ip = in;
                for (int ci = 0; ci < CIN; ci++) {
                    float16 wv[NV];
#pragma unroll
                    for (int v = 0; v < NV; v++) wv[v] = w[v];
#pragma unroll
                    for (int r = 0; r < RY; r++) {
                        const int iy = iy0 + r;
                        const bool row_ok = iy >= 0 && iy < H;
                        __global const float* rp = ip + clamp(iy, 0, H - 1) * W;
#pragma unroll
                        for (int p = 0; p < NP; p++) {
                            const int ix = ix0 + p;
                            const float a = (row_ok && ix >= 0 && ix < W) ? rp[clamp(ix, 0, W - 1)] : 0.0f;
#pragma unroll
                            for (int v = 0; v < NV; v++) acc[v][r][p] = fma((float16)a, wv[v], acc[v][r][p]);
                        }
                    }
                    ip += HW;
                    w += NV;
                }
            }
        }
    }
#if POOL == 2
#define OH (H / 2)
#define OW (W / 2)
#pragma unroll
    for (int v = 0; v < NV; v++) {
        const int nl = min(16, COUT - (cb * CO_V + v * 16));  // COUT may be 255: padded lanes not stored
#pragma unroll
        for (int p = 0; p < NP; p += 2) {
            const int ox = (x0 + p) / 2;
            if (ox >= OW) break;
            float16 m = fmax(fmax(acc[v][0][p], acc[v][0][p + 1]), fmax(acc[v][1][p], acc[v][1][p + 1]));
#if LEAKY
            m = fmax(m, m * ALPHA);
#endif
            float t[16];
            vstore16(m, 0, t);
            __global float* o = out + (size_t)(cb * CO_V + v * 16) * OH * OW + (y0 / 2) * OW + ox;
#pragma unroll
            for (int l = 0; l < 16; l++)
                if (l < nl) o[(size_t)l * OH * OW] = t[l];
        }
    }
#else
#pragma unroll
    for (int v = 0; v < NV; v++) {
        const int nl = min(16, COUT - (cb * CO_V + v * 16));
#pragma unroll
        for (int r = 0; r < RY; r++) {
            if (y0 + r >= H) break;
#pragma unroll
            for (int p = 0; p < NP; p++) {
                if (x0 + p >= W) break;
                float16 s = acc[v][r][p];
#if LEAKY
                s = fmax(s, s * ALPHA);
#endif
                float t[16];
                vstore16(s, 0, t);
                __global float* o = out + (size_t)(cb * CO_V + v * 16) * HW + (y0 + r) * W + x0 + p;
#pragma unroll
                for (int l = 0; l < 16; l++)
                    if (l < nl) o[(size_t)l * HW] = t[l];
            }
        }
    }
#endif
}
