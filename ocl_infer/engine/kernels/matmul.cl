// Batched matrix products C[b] = A[b] x B[b] (+ bias[n]) (+ activation), C contiguous [batch][M][N]. A and B
// are read through strides (sab, sam, sak), (sbb, sbk, sbn), so transposes and broadcast batches need no
// copies; a constant B (linear's filter, a MatMul weight) is packed at plan time into [batch][K][Np] (Np: N
// padded with zeros to a whole column block). Three kernels:
//   gemm_strided  the general one: each work-item 4 consecutive columns of one row (any shape, any strides).
//   gemm_block    CPU family: each work-item an MR x (16 NV) block kept in MR * NV float16 registers; per k,
//                 NV vector loads of B and MR broadcasts of A feed MR * NV vector FMAs (B rows contiguous).
//   gemm_tiled    GPU family: conv_gemm.cl's scheme on strided operands: a work-group stages a TK-deep slice of
//                 A (TM rows) and B (TN columns) in local memory, each work-item accumulates RM x RN outputs.
// gemm_strided takes the activation as a run-time argument (act codes as in activation.h.cl: 0 none, 1 relu,
// 2 leaky_relu, 3 clamp, 4 sigmoid, 5 tanh, 6 elu, 7 silu); the blocked kernels take ACT and BIAS as build
// options (activation.h.cl's activate/activate16).

#ifndef ACT
#define ACT 0
#endif
#ifndef BIAS
#define BIAS 0
#endif

inline float act_mm(const float v, const int act, const float a0, const float a1) {
    switch (act) {
        case 1: return v > 0.0f ? v : 0.0f;
        case 2: return v < 0.0f ? a0 * v : v;
        case 3: return fmin(fmax(v, a0), a1);
        case 4: return sigmoid_stable(v);
        case 5: return tanh(v);
        case 6: return v < 0.0f ? a0 * expm1(v) : v;
        case 7: return v * sigmoid_stable(v);
        default: return v;
    }
}

__kernel void gemm_strided(__global const float* a, __global const float* b, __global const float* bias,
                           __global float* c, const int M, const int N, const int K,
                           const int sab, const int sam, const int sak, const int sbb, const int sbk, const int sbn,
                           const int sbias, const int act, const float a0, const float a1) {
    const int n0 = get_global_id(0) * 4;
    const int m = get_global_id(1);
    const int bt = get_global_id(2);
    if (n0 >= N || m >= M) return;
    __global const float* ar = a + (size_t)bt * sab + (size_t)m * sam;
    __global const float* bb = b + (size_t)bt * sbb;
    float4 acc = (float4)(0.0f);
    const int nn = min(4, N - n0);
    for (int k = 0; k < K; ++k) {
        const float av = ar[k * sak];
        __global const float* br = bb + (size_t)k * sbk + (size_t)n0 * sbn;
        const float4 bv = (float4)(br[0], nn > 1 ? br[sbn] : 0.0f, nn > 2 ? br[2 * sbn] : 0.0f,
                                   nn > 3 ? br[3 * sbn] : 0.0f);
        acc = fma((float4)(av), bv, acc);
    }
    float r[4];
    vstore4(acc, 0, r);
    __global float* cr = c + ((size_t)bt * M + m) * N + n0;
    for (int j = 0; j < nn; ++j) cr[j] = act_mm(r[j] + (sbias > 0 ? bias[(n0 + j) * sbias] : 0.0f), act, a0, a1);
}

#ifdef MR
// CPU family. B rows are contiguous (sbn = 1): a packed constant, or an activation whose last dim is N.
// `nload` = columns that may be read as whole vectors (Np for a packed B, N otherwise); the one column block
// that crosses it takes the guarded path. Rows past M read row M - 1 (clamped) and store nothing.
// bias (BIAS builds) is padded to the column blocks. Launch: global (ceil(N / (16 NV)), ceil(M / MR), batch),
// local (1, 1, 1).
#define CB (16 * NV)

// One k of the block (both column paths): acc[i][v] += A[m0 + i][k] bv[v], then A's row offsets move to k + 1.
inline void block_fma(float16 acc[MR][NV], const float16 bv[NV], __global const float* ab, size_t ao[MR],
                      const int sak) {
#pragma unroll
    for (int i = 0; i < MR; i++) {
        const float16 av = (float16)(ab[ao[i]]);
#pragma unroll
        for (int v = 0; v < NV; v++) acc[i][v] = fma(av, bv[v], acc[i][v]);
        ao[i] += sak;
    }
}

__kernel void gemm_block(__global const float* restrict a, __global const float* restrict b,
                         __global const float* restrict bias, __global float* restrict c,
                         const int M, const int N, const int K, const int sab, const int sam, const int sak,
                         const int sbb, const int sbk, const int nload, const float a0, const float a1) {
    const int n0 = get_global_id(0) * CB;
    const int m0 = get_global_id(1) * MR;
    const int bt = get_global_id(2);
    __global const float* ab = a + (size_t)bt * sab;
    __global const float* bp = b + (size_t)bt * sbb + n0;
    size_t ao[MR];
#pragma unroll
    for (int i = 0; i < MR; i++) ao[i] = (size_t)min(m0 + i, M - 1) * sam;
    float16 acc[MR][NV];
#pragma unroll
    for (int i = 0; i < MR; i++)
#pragma unroll
        for (int v = 0; v < NV; v++) acc[i][v] = (float16)(0.0f);

    if (n0 + CB <= nload) {
        for (int k = 0; k < K; k++) {
            float16 bv[NV];
#pragma unroll
            for (int v = 0; v < NV; v++) bv[v] = vload16(v, bp);
            block_fma(acc, bv, ab, ao, sak);
            bp += sbk;
        }
    } else {
        // the last column block: whole vectors before `nload` load as such, the one across it lane by lane
        // (lanes past it read 0; the index is clamped, so loads stay inside), vectors past it are 0
        const int live = nload - n0;
        for (int k = 0; k < K; k++) {
            float16 bv[NV];
#pragma unroll
            for (int v = 0; v < NV; v++) {
                if ((v + 1) * 16 <= live) {
                    bv[v] = vload16(v, bp);
                } else if (v * 16 < live) {
                    float t[16];
#pragma unroll
                    for (int l = 0; l < 16; l++) {
                        const int j = v * 16 + l;
                        t[l] = j < live ? bp[min(j, live - 1)] : 0.0f;
                    }
                    bv[v] = vload16(0, t);
                } else {
                    bv[v] = (float16)(0.0f);
                }
            }
            block_fma(acc, bv, ab, ao, sak);
            bp += sbk;
        }
    }

#pragma unroll
    for (int v = 0; v < NV; v++) {
        const int nv0 = n0 + v * 16;
        if (nv0 >= N) break;
#if BIAS
        const float16 bv = vload16(0, bias + nv0);
#endif
#pragma unroll
        for (int i = 0; i < MR; i++) {
            if (m0 + i >= M) break;
#if BIAS
            const float16 r = activate16(acc[i][v] + bv, a0, a1);
#else
            const float16 r = activate16(acc[i][v], a0, a1);
#endif
            __global float* cr = c + ((size_t)bt * M + m0 + i) * N + nv0;
            if (nv0 + 16 <= N) {
                vstore16(r, 0, cr);
            } else {
                float t[16];
                vstore16(r, 0, t);
#pragma unroll
                for (int l = 0; l < 16; l++)
                    if (nv0 + l < N) cr[l] = t[l];
            }
        }
    }
}
#endif

#ifdef TX
// GPU family (conv_gemm.cl's tiling): a TX x TY work-group computes a (TY RM) x (TX RN) tile of C[b]; work-item
// (tx, ty) owns rows ty + i TY and columns tx + j TX (neighbours read neighbouring local words, store
// neighbouring columns). Tiles are gathered with guards (zero past M, N, K), so any shape runs. AK / BN: A is
// contiguous along K / B along N: consecutive work-items then read consecutive global addresses (coalesced);
// otherwise they walk the other index. The local rows are padded by one word so the k-major gathers do not all
// hit one bank. Launch: global (ceil(N / TN) TX, ceil(M / TM) TY, batch), local (TX, TY, 1).
#define NT (TX * TY)
#define TM (TY * RM)
#define TN (TX * RN)

// Stages rows k0 .. k0 + TK of a strided operand as a TK x W local tile (rows padded to W + 1 words):
// dst[r][i] = src[(t0 + i) st + (k0 + r) sk], zero past T and past K. The NT work-items share the copy; `kfast`
// (the operand is contiguous along K) gives consecutive work-items consecutive r, otherwise consecutive i, so
// their global reads coalesce either way. W and kfast are compile-time constants at both calls: the fixed trip
// count unrolls and the index choice folds away.
inline void gather_tile(__local float* dst, const int W, __global const float* src, const int t0, const int T,
                        const int st, const int k0, const int K, const int sk, const int lid, const bool kfast) {
#pragma unroll
    for (int it = 0; it < (W * TK + NT - 1) / NT; it++) {
        const int e = lid + it * NT;
        if (e < W * TK) {
            const int r = kfast ? e % TK : e / W, i = kfast ? e / TK : e % W;
            const int t = t0 + i, k = k0 + r;
            dst[r * (W + 1) + i] = (t < T && k < K) ? src[(size_t)t * st + (size_t)k * sk] : 0.0f;
        }
    }
}

__kernel __attribute__((reqd_work_group_size(TX, TY, 1)))
void gemm_tiled(__global const float* restrict a, __global const float* restrict b,
                __global const float* restrict bias, __global float* restrict c,
                const int M, const int N, const int K, const int sab, const int sam, const int sak,
                const int sbb, const int sbk, const int sbn, const float a0, const float a1) {
    __local float as[TK][TM + 1];
    __local float bs[TK][TN + 1];
    const int tx = get_local_id(0), ty = get_local_id(1);
    const int lid = ty * TX + tx;
    const int n0 = get_group_id(0) * TN, m0 = get_group_id(1) * TM;
    const int bt = get_group_id(2);
    __global const float* ab = a + (size_t)bt * sab;
    __global const float* bb = b + (size_t)bt * sbb;

    float acc[RM][RN];
    tile_zero(acc);

    for (int k0 = 0; k0 < K; k0 += TK) {
        gather_tile(&as[0][0], TM, ab, m0, M, sam, k0, K, sak, lid, AK);
        gather_tile(&bs[0][0], TN, bb, n0, N, sbn, k0, K, sbk, lid, !BN);
        barrier(CLK_LOCAL_MEM_FENCE);
        tile_fma(acc, &as[0][0], TM + 1, &bs[0][0], TN + 1, tx, ty);
        barrier(CLK_LOCAL_MEM_FENCE);
    }

#pragma unroll
    for (int i = 0; i < RM; i++) {
        const int m = m0 + ty + i * TY;
        if (m >= M) break;
        __global float* cr = c + ((size_t)bt * M + m) * N;
#pragma unroll
        for (int j = 0; j < RN; j++) {
            const int n = n0 + tx + j * TX;
            if (n >= N) break;
#if BIAS
            cr[n] = activate(acc[i][j] + bias[n], a0, a1);
#else
            cr[n] = activate(acc[i][j], a0, a1);
#endif
        }
    }
}
#endif

// A strided B copied into [batch][K][Np] (zero columns past N), for gemm_block when B is an activation whose
// rows are not contiguous (a transposed MatMul operand). Launch: global (Np, K, batch).
__kernel void gemm_pack_b(__global const float* restrict b, __global float* restrict out, const int N, const int K,
                          const int np, const int sbb, const int sbk, const int sbn) {
    const int n = get_global_id(0), k = get_global_id(1), bt = get_global_id(2);
    if (n >= np || k >= K) return;
    out[((size_t)bt * K + k) * np + n] = n < N ? b[(size_t)bt * sbb + (size_t)k * sbk + (size_t)n * sbn] : 0.0f;
}
