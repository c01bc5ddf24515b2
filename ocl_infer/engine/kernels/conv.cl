// Direct convolution, register blocked: a work-item computes OCB output channels x XB (8) pixels of one output
// row, as float8 accumulators over x. Weights are laid out at load time as [G][NOCB][ICG][KH][KW][OCB] (zero
// padded in OCB), so each tap needs one weight vector load and one input vector load for OCB*8 FMAs.
// Compile-time constants: N IC OC G ICG OCG OCB NOCB YB IH IW OH OW KH KW SH SW DH DW PT PL ACT RES.
// ACT: the fused activation, RES the fused residual add, see activation.h.cl.

#define XB 8

#define LANE(k) (((ix + (k) * SW) >= 0 && (ix + (k) * SW) < IW) ? row[ix + (k) * SW] : 0.0f)

// YB output rows per work-item reuse each weight vector YB times (the big 13x13 layers are weight-bound).
__kernel void conv2d_blocked(__global const float* restrict x, __global const float* restrict w,
                             __global const float* restrict bias, __global float* restrict y,
                             const float a0, const float a1 RESIDUAL_ARG) {
    const int xb = get_global_id(0);
    const int oy0 = get_global_id(1) * YB;
    const int z = get_global_id(2);
    if (xb * XB >= OW || oy0 >= OH || z >= N * G * NOCB) return;  // padded work-groups
    const int ocb = z % NOCB;
    const int g = (z / NOCB) % G;
    const int n = z / (NOCB * G);
    const int ox0 = xb * XB;
    float8 acc[YB][OCB];
#pragma unroll
    for (int r = 0; r < YB; ++r)
#pragma unroll
        for (int j = 0; j < OCB; ++j) acc[r][j] = (float8)(0.0f);
    __global const float* xg = x + (size_t)(n * IC + g * ICG) * (IH * IW);
    __global const float* wb = w + (size_t)((g * NOCB + ocb) * ICG) * (KH * KW * OCB);
    const int ix0 = ox0 * SW - PL;
    for (int ic = 0; ic < ICG; ++ic) {
        __global const float* xc = xg + ic * (IH * IW);
        __global const float* wc = wb + ic * (KH * KW * OCB);
        for (int ky = 0; ky < KH; ++ky) {
#pragma unroll
            for (int kx = 0; kx < KW; ++kx) {
                const int ix = ix0 + kx * DW;
                const bool inner = ix >= 0 && ix + (XB - 1) * SW < IW;
                __global const float* wp = wc + (ky * KW + kx) * OCB;
#if OCB == 8
                const float8 wv = vload8(0, wp);
#endif
#pragma unroll
                for (int r = 0; r < YB; ++r) {
                    const int iy = (oy0 + r) * SH - PT + ky * DH;
                    if (iy < 0 || iy >= IH) continue;
                    __global const float* row = xc + iy * IW;
                    float8 v;
                    if (inner) {
#if SW == 1
                        v = vload8(0, row + ix);
#else
                        v = (float8)(row[ix], row[ix + SW], row[ix + 2 * SW], row[ix + 3 * SW], row[ix + 4 * SW],
                                     row[ix + 5 * SW], row[ix + 6 * SW], row[ix + 7 * SW]);
#endif
                    } else {
                        v = (float8)(LANE(0), LANE(1), LANE(2), LANE(3), LANE(4), LANE(5), LANE(6), LANE(7));
                    }
#if OCB == 8
                    acc[r][0] = fma((float8)(wv.s0), v, acc[r][0]);
                    acc[r][1] = fma((float8)(wv.s1), v, acc[r][1]);
                    acc[r][2] = fma((float8)(wv.s2), v, acc[r][2]);
                    acc[r][3] = fma((float8)(wv.s3), v, acc[r][3]);
                    acc[r][4] = fma((float8)(wv.s4), v, acc[r][4]);
                    acc[r][5] = fma((float8)(wv.s5), v, acc[r][5]);
                    acc[r][6] = fma((float8)(wv.s6), v, acc[r][6]);
                    acc[r][7] = fma((float8)(wv.s7), v, acc[r][7]);
#else
#pragma unroll
                    for (int j = 0; j < OCB; ++j) acc[r][j] = fma((float8)(wp[j]), v, acc[r][j]);
#endif
                }
            }
        }
    }
#pragma unroll
    for (int r = 0; r < YB; ++r) {
        const int oy = oy0 + r;
        if (oy >= OH) break;
#pragma unroll
        for (int j = 0; j < OCB; ++j) {
            const int oc = ocb * OCB + j;
            if (oc >= OCG) break;
            const int c = g * OCG + oc;
            const float b = bias[c];
            float8 t = acc[r][j] + (float8)(b);
            const size_t at = ((size_t)(n * OC + c) * OH + oy) * OW + ox0;
#if RES
            float8 rv;
            if (ox0 + XB <= OW) {
                rv = vload8(0, res + at);
            } else {
                float rt[XB];
                for (int k = 0; k < XB; ++k) rt[k] = k < OW - ox0 ? res[at + k] : 0.0f;
                rv = vload8(0, rt);
            }
#endif
#if RES == 1
            t += rv;
#endif
            t = (float8)(activate(t.s0, a0, a1), activate(t.s1, a0, a1), activate(t.s2, a0, a1),
                         activate(t.s3, a0, a1), activate(t.s4, a0, a1), activate(t.s5, a0, a1),
                         activate(t.s6, a0, a1), activate(t.s7, a0, a1));
#if RES == 2
            t += rv;
#endif
            __global float* out = y + at;
            if (ox0 + XB <= OW) {
                vstore8(t, 0, out);
            } else {
                float tv[XB];
                vstore8(t, 0, tv);
                for (int k = 0; k < OW - ox0; ++k) out[k] = tv[k];
            }
        }
    }
}

// Transposed convolution, gather form: each output pixel sums the input taps that reach it.
// Filter layout as NNEF: [IC][OCG][KH][KW].
__kernel void deconv2d(__global const float* restrict x, __global const float* restrict w,
                       __global const float* restrict bias, __global float* restrict y,
                       const float a0, const float a1) {
    const int ox = get_global_id(0);
    const int oy = get_global_id(1);
    const int z = get_global_id(2);
    if (ox >= OW || oy >= OH) return;
    const int oc = z % OC;
    const int n = z / OC;
    const int g = oc / OCG;
    const int ocg = oc % OCG;
    float acc = 0.0f;
    for (int icg = 0; icg < ICG; ++icg) {
        const int ic = g * ICG + icg;
        __global const float* plane = x + (size_t)(n * IC + ic) * (IH * IW);
        __global const float* wk = w + (size_t)(ic * OCG + ocg) * (KH * KW);
        for (int ky = 0; ky < KH; ++ky) {
            const int ty = oy + PT - ky * DH;
            if (ty < 0 || ty % SH != 0 || ty / SH >= IH) continue;
            for (int kx = 0; kx < KW; ++kx) {
                const int tx = ox + PL - kx * DW;
                if (tx < 0 || tx % SW != 0 || tx / SW >= IW) continue;
                acc = fma(plane[(ty / SH) * IW + tx / SW], wk[ky * KW + kx], acc);
            }
        }
    }
    y[((size_t)(n * OC + oc) * OH + oy) * OW + ox] = activate(acc + bias[oc], a0, a1);
}
