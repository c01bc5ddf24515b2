// Convolution as an implicit GEMM for GPUs ("gemm"): per image, Y[OC][P] = W[OC][K] x X[K][P] with K = IC*KH*KW
// and P the output pixels. The im2col matrix X is never written: each work-group gathers a TK x TN tile of it
// (zero outside the input and past K) and a TK x TM tile of the weights into local memory, then every work-item
// accumulates RM x RN outputs in registers. A TM x TN tile loads (TM + TN) * TK floats from global memory for
// TM * TN * TK multiply-adds: 4 (TM + TN) / (TM TN) bytes per multiply-add (0.125 at 64 x 64, against ~1.1 for a
// direct kernel without local memory).
// Work-item (tx, ty) of a TX x TY work-group owns channels m = ty + i*TY and columns c = tx + j*TX: strided, so
// neighbours read neighbouring local words (no bank conflicts) and store neighbouring pixels (coalesced).
// Layouts: x [N][IC][IH][IW]; w [KP][OCP] (k = (ic*KH + ky)*KW + kx, zero-padded to multiples of TK and TM);
// bias [OCP]; y [N][OC][OH][OW], or [N][OC][OH/2][OW/2] with POOL.
// Compile-time: TX TY RM RN TK, KH KW, ACT, RES, POOL, HALF, SPLIT. Geometry comes as arguments so layers with the
// same blocking share one program.
// SPLIT=1: K is split over `splits` work-groups per tile (grid dim 2 = N * splits), each taking `kc` of it (a
// multiple of TK): small maps with deep K (13x13 x 4608 at batch 1) would otherwise leave most compute units
// idle. Each writes raw partial sums to part[splits][N][OC][P]; conv2d_gemm_reduce adds them up and applies
// the epilogue.
// POOL=2 fuses a 2x2/2 max pool: column c of a tile is sub-pixel s = c / TQ of pooled pixel q = c % TQ
// (TQ = TN/4), so the four conv pixels of a pooled pixel sit in one work-item's registers (j = s*RQ + jj).
#define NT (TX * TY)
#define TM (TY * RM)
#define TN (TX * RN)
#define KHW (KH * KW)

#if HALF
#define WEIGHTS __global const half* restrict
#define LOAD_W(p, i) vload_half((i), (p))
#else
#define WEIGHTS __global const float* restrict
#define LOAD_W(p, i) ((p)[i])
#endif

// The epilogue of one output after its bias (both kernels): the activation, with residual r added before it
// (RES 1) or after it (RES 2). RESIDUAL(o) reads the residual only where the kernel has one.
#if RES
#define RESIDUAL(o) res[o]
#else
#define RESIDUAL(o) 0.0f
#endif
inline float finish(const float v, const float r, const float a0, const float a1) {
#if RES == 1
    return activate(v + r, a0, a1);
#elif RES == 2
    return activate(v, a0, a1) + r;
#else
    return activate(v, a0, a1);
#endif
}

#if POOL == 2
#define RQ (RN / 4)
#define TQ (TN / 4)
#endif

__kernel __attribute__((reqd_work_group_size(TX, TY, 1)))
void conv2d_gemm(__global const float* restrict x, WEIGHTS w, __global const float* restrict bias,
                 __global float* restrict y, const float a0, const float a1,
                 const int ic, const int ih, const int iw, const int oc, const int oh, const int ow,
                 const int sh, const int sw, const int dh, const int dw, const int pt, const int pl,
                 const int ocp, const int kc, const int splits RESIDUAL_ARG) {
    __local float ws[TK][TM];
    __local float xs[TK][TN];
    const int tx = get_local_id(0), ty = get_local_id(1);
    const int lid = ty * TX + tx;
    const int m0 = get_group_id(1) * TM;
    const int split = get_global_id(2) % splits, n = get_global_id(2) / splits;  // splits = 1 without SPLIT
    const int k_lo = split * kc, k_total = min(ic * KHW, k_lo + kc);
    const int ihw = ih * iw;
#if POOL == 2
    const int pw = ow / 2, np = (oh / 2) * pw;  // pooled map (floor, as ONNX)
    const int q0 = get_group_id(0) * TQ;
#else
    const int np = oh * ow;
    const int p0 = get_group_id(0) * TN;
#endif
    __global const float* xn = x + (size_t)n * ic * ihw;

    // This work-item gathers X tile column `lc` (rows lk, lk + NT/TN, ...); its pixel is fixed for the whole K
    // loop, so the division into (oy, ox) happens once.
    const int lc = lid % TN, lk = lid / TN;
#if POOL == 2
    const int lq = q0 + lc % TQ, ls = lc / TQ;
    const bool lvalid = lq < np;
    const int loy = 2 * (lq / pw) + ls / 2, lox = 2 * (lq % pw) + ls % 2;
#else
    const int lp = p0 + lc;
    const bool lvalid = lp < np;
    const int loy = lp / ow, lox = lp % ow;
#endif
    const int iy0 = loy * sh - pt, ix0 = lox * sw - pl;
    // ... and weight tile column `wc` of rows wk, wk + NT/TM, ...
    const int wc = lid % TM, wk = lid / TM;

    float acc[RM][RN];
    tile_zero(acc);

    for (int k0 = k_lo; k0 < k_total; k0 += TK) {
        // fixed trip counts (rows r = first + it * rows-per-pass), so the compiler unrolls both loads
#pragma unroll
        for (int it = 0; it < (TK * TM + NT - 1) / NT; it++) {
            const int r = wk + it * (NT / TM);
            if (r < TK) ws[r][wc] = LOAD_W(w, (size_t)(k0 + r) * ocp + m0 + wc);
        }
#pragma unroll
        for (int it = 0; it < (TK * TN + NT - 1) / NT; it++) {
            const int r = lk + it * (NT / TN);
            if (r >= TK) break;
            const int k = k0 + r;
            const int c = k / KHW, t = k - c * KHW;
            const int iy = iy0 + (t / KW) * dh, ix = ix0 + (t % KW) * dw;
            const bool in = lvalid && k < k_total && iy >= 0 && iy < ih && ix >= 0 && ix < iw;
            xs[r][lc] = in ? xn[(size_t)c * ihw + iy * iw + ix] : 0.0f;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        tile_fma(acc, &ws[0][0], TM, &xs[0][0], TN, tx, ty);
        barrier(CLK_LOCAL_MEM_FENCE);
    }

#if SPLIT
    // y is the partial-sum scratch here, [splits][N][OC][P]
    __global float* part = y + ((size_t)split * (get_global_size(2) / splits) + n) * oc * np;
#pragma unroll
    for (int i = 0; i < RM; i++) {
        const int m = m0 + ty + i * TY;
        if (m >= oc) break;
#pragma unroll
        for (int j = 0; j < RN; j++) {
            const int p = p0 + tx + j * TX;
            if (p >= np) break;
            part[(size_t)m * np + p] = acc[i][j];
        }
    }
#else
#pragma unroll
    for (int i = 0; i < RM; i++) {
        const int m = m0 + ty + i * TY;
        if (m >= oc) break;
        const float bm = bias[m];
#if POOL == 2
        // every activation fused with a pool is non-decreasing: max first, then bias and activation
#pragma unroll
        for (int jj = 0; jj < RQ; jj++) {
            const int q = q0 + tx + jj * TX;
            if (q >= np) break;
            const float v = fmax(fmax(acc[i][jj], acc[i][RQ + jj]), fmax(acc[i][2 * RQ + jj], acc[i][3 * RQ + jj]));
            y[((size_t)n * oc + m) * np + q] = activate(v + bm, a0, a1);
        }
#else
#pragma unroll
        for (int j = 0; j < RN; j++) {
            const int p = p0 + tx + j * TX;
            if (p >= np) break;
            const size_t o = ((size_t)n * oc + m) * np + p;
            y[o] = finish(acc[i][j] + bm, RESIDUAL(o), a0, a1);
        }
#endif
    }
#endif
}

// The epilogue of a split-K conv: y = act(sum of the partials + bias [+ residual]), one output per work-item.
__kernel void conv2d_gemm_reduce(__global const float* restrict part, __global const float* restrict bias,
                                 __global float* restrict y, const float a0, const float a1, const int oc,
                                 const int np, const int total, const int splits RESIDUAL_ARG) {
    const int o = get_global_id(0);
    if (o >= total) return;
    float v = bias[(o / np) % oc];
    for (int s = 0; s < splits; s++) v += part[(size_t)s * total + o];
    y[o] = finish(v, RESIDUAL(o), a0, a1);
}
