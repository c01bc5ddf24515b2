// Batched matrix product C[b] = A[b] x B[b] (+ bias[n]) with arbitrary strides, so transposes and linear's
// filter layout need no copies. sbias 0 means no bias. Each work-item computes 4 consecutive columns of one row.
// act codes as in activation.h.cl (a run-time argument here: one program serves every activation): 0 none,
// 1 relu, 2 leaky_relu, 3 clamp, 4 sigmoid, 5 tanh, 6 elu, 7 silu.

// exp of -|v| never overflows, whatever the build options (see activation.h.cl).
inline float sigmoid_mm(const float v) {
    const float e = exp(-fabs(v));
    return (v >= 0.0f ? 1.0f : e) / (1.0f + e);
}

inline float act_mm(const float v, const int act, const float a0, const float a1) {
    switch (act) {
        case 1: return v > 0.0f ? v : 0.0f;
        case 2: return v < 0.0f ? a0 * v : v;
        case 3: return fmin(fmax(v, a0), a1);
        case 4: return sigmoid_mm(v);
        case 5: return tanh(v);
        case 6: return v < 0.0f ? a0 * expm1(v) : v;
        case 7: return v * sigmoid_mm(v);
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
