// Winograd F(2x2, 3x3) convolution in three launches (any batch N, stride 1, dilation 1, groups 1, padding 1):
//   winograd_input : 4x4 input patch per 2x2 output tile -> V = B^T d B, stored V[16][IC][TP]
//   winograd_gemm  : M[xi] = U[xi] x V[xi] for the 16 xi, vectorised over output channels (NV float16
//                    vectors x NT tiles of accumulators per work-item); U [16][NCB][IC][16*NV]; M [16][TP][NCB*CO_V]
//   winograd_output: Y = A^T M A (2x2 outputs per tile) + bias, activation (ACT as in activation.h.cl);
//                    y [N][OC][OH][OW]
// TW = ceil(OW/2), T = TW * ceil(OH/2) tiles per image; the batch is more tiles: column n * T + t of V and
// row of M is tile t of image n, so one GEMM serves the whole batch (each weight load feeds N times the
// tiles); TP = N * T rounded up to NT. The transforms take the tile as grid coordinates or divide by a float
// reciprocal: an integer division by a run-time tw per work-item cost up to 3x their time.
// Compile-time: the blocking NT NV and ACT. The geometry (ic ih iw oc oh ow, ncb channel blocks, tp) comes as
// arguments, so layers with the same blocking share one program (fewer compiles at a cold start).
#define CO_V (16 * NV)

// HALF=1 (engine precision "fp16"): U (weights) and the V, M scratch are stored as half, converted on load and
// store (vload_half*/vstore_half* are core OpenCL 1.2; this device has no half arithmetic); arithmetic, bias
// and the layer's input and output stay float. Halves the GEMM's weight stream (4.7 M weights -> 17 MB on the
// 512->1024 layer) and the scratch traffic.
// PoCL 3.1's scalar vload_half/vstore_half are library code (branchy for the store) that its work-group
// vectoriser does not handle (2-4x slower transforms, measured); the scalar conversions here are a few integer
// ops that vectorise. The vector vload_halfN/vstore_half16 map to vcvtph2ps/vcvtps2ph and are kept.
#if HALF
typedef ushort store_t;  // IEEE half bits
// half bits -> float, exact for every half on every device: normals by rebiasing the exponent in integers,
// subnormals as mantissa * 2^-24 (no float subnormal involved, so a device that flushes those still reads
// them; the former product by 2^112 took subnormal float bits); inf and NaN stay inf and NaN (read as 65536
// and 98304 before that: an overflowed M came out as finite garbage).
inline float half_bits_to_float(const uint h) {
    const uint e = h & 0x7c00u;
    const uint normal = ((h & 0x7fffu) << 13) + 0x38000000u;  // exponent + 112
    const uint sub = as_uint((float)(h & 0x3ffu) * 0x1p-24f);
    const uint special = normal + 0x38000000u;  // exponent 31 + 2 * 112 = 255
    return as_float(((h & 0x8000u) << 16) | (e == 0x7c00u ? special : (e == 0u ? sub : normal)));
}
// float -> half bits, round to nearest even, branch-free (overflow gives inf, NaN gives a quiet NaN)
inline ushort float_to_half_bits(const float x) {
    const uint f = as_uint(x);
    const uint sign = (f >> 16) & 0x8000u;
    const uint a = f & 0x7fffffffu;
    const uint normal = (a + 0xc8000fffu + ((a >> 13) & 1u)) >> 13;  // rebias, round to nearest even
    const uint sub = as_uint(as_float(a) + 0.5f) - 0x3f000000u;       // |x| < 2^-14: the FPU rounds it
    const uint big = a > 0x7f800000u ? 0x7e00u : 0x7c00u;
    const uint h = a >= 0x47800000u ? big : (a < 0x38800000u ? sub : normal);
    return (ushort)(h | sign);
}
// The GEMM reads its NT tiles of V as one vload_halfVT, VT >= NT (V is allocated 16 halves longer): one
// vcvtph2ps instead of NT scalar conversions made the fp16 GEMM 10-20% faster than the fp32 one here, instead
// of 15% slower. vload_halfN needs only 2-byte alignment (spec); PoCL emits unaligned-safe memory operands.
#if NT <= 4
#define VT 4
#elif NT <= 8
#define VT 8
#elif NT <= 16
#define VT 16
#else
#error "HALF needs NT <= 16 (one vload_half16 of V per input channel)"
#endif
#define VEC_(t, n) t##n
#define VEC(t, n) VEC_(t, n)
// STORE1 stores V, LOAD1 loads M. V = B^T d B sums up to 4 |d| (F(2x2)) or 100 |d| (F(4x4)), so it is stored
// times VSCALE (2^-2, 2^-7: |stored V| <= max |d|; half's 65504 overflowed on YOLOv8n's head, white frame,
// |V| 2.3e5); the GEMM's M = U V carries the same factor and the output transform takes it off. Powers of 2:
// exact, but for values that become subnormal (|V| < VSCALE^-1 2^-14: absolute error 2^-25 / VSCALE).
#define LOAD1(p, i) (half_bits_to_float((p)[i]) * (1.0f / VSCALE))
#define STORE1(v, p, i) ((p)[i] = float_to_half_bits((v) * VSCALE))
#define LOAD16(p, i) vload_half16((i), (__global const half*)(p))
#define STORE16(v, p) vstore_half16((v), 0, (__global half*)(p))
#define LOADM16(p) (vload_half16(0, (__global const half*)(p)) * (1.0f / VSCALE))  // 16 values of M
#else
typedef float store_t;
#define LOAD1(p, i) ((p)[i])
#define STORE1(v, p, i) ((p)[i] = (v))
#define LOAD16(p, i) vload16((i), (p))
#define STORE16(v, p) vstore16((v), 0, (p))
#define LOADM16(p) vload16(0, (p))
#endif

// What the transforms of both tile sizes share (conv_winograd4.cl uses these too).
// INPUT_PATCH(d, S): the (S + 2) x (S + 2) input patch of tile t (S outputs per tile side: patches overlap by
// 2) of channel ci of image n, from (S ty - 1, S tx - 1), into float d[S + 2][S + 2]: zeros outside the map and
// for V's padding columns (t >= tiles). Reads the input kernels' arguments and their t, n, ci. A macro, not a
// function: PoCL keeps a private array passed to a function in memory per work-item, which cost the
// transform its vectorisation across the work-group (seen in PoCL's kernel IR).
// t / tw by a float multiply: exact here (t < 2^20, tw < 2^10) and, unlike an integer division by a run-time
// value, it vectorises across the work-group.
#define INPUT_PATCH(d, S)                                                                                   \
    const int ty = (int)(((float)t + 0.5f) * inv_tw), tx = t - ty * tw;                                    \
    const int y0 = (S) * ty - 1, x0 = (S) * tx - 1;                                                         \
    __global const float* p = x + ((size_t)n * ic + ci) * ih * iw;                                          \
    float d[(S) + 2][(S) + 2];                                                                              \
    _Pragma("unroll") for (int i = 0; i < (S) + 2; i++)                                                     \
        _Pragma("unroll") for (int j = 0; j < (S) + 2; j++) {                                               \
            const int yy = y0 + i, xx = x0 + j;                                                             \
            d[i][j] = (t < tiles && yy >= 0 && yy < ih && xx >= 0 && xx < iw) ? p[yy * iw + xx] : 0.0f;     \
        }

// y[i] = v (bias added) through the activation, the fused residual r[i] added before (RES 1) or after (RES 2) it
inline void store_output(__global float* y, __global const float* r, const size_t i, float v, const float a0,
                         const float a1) {
#if RES == 1
    v += r[i];
#endif
    v = activate(v, a0, a1);
#if RES == 2
    v += r[i];
#endif
    y[i] = v;
}

// Launch: global (TP - (N-1) T rounded up to the local size, IC, N): tile t of image n is V's column
// n * T + t. Only the last image writes past its T tiles: zeros up to TP (an earlier image's would be the next
// image's columns).
__kernel void winograd_input(__global const float* restrict x, __global store_t* restrict v, const int ic,
                             const int ih, const int iw, const int tw, const int tiles, const int tp,
                             const float inv_tw) {
    const int t = get_global_id(0);
    const int ci = get_global_id(1);
    const int n = get_global_id(2);
    const int col = n * tiles + t;
    if (col >= tp || (t >= tiles && n + 1 < (int)get_global_size(2))) return;
    INPUT_PATCH(d, 2)
    float b[4][4];  // B^T d
#pragma unroll
    for (int j = 0; j < 4; j++) {
        b[0][j] = d[0][j] - d[2][j];
        b[1][j] = d[1][j] + d[2][j];
        b[2][j] = d[2][j] - d[1][j];
        b[3][j] = d[1][j] - d[3][j];
    }
    __global store_t* o = v + (size_t)ci * tp + col;
    const size_t plane = (size_t)ic * tp;
#pragma unroll
    for (int i = 0; i < 4; i++) {  // (B^T d) B
        STORE1(b[i][0] - b[i][2], o, (i * 4 + 0) * plane);
        STORE1(b[i][1] + b[i][2], o, (i * 4 + 1) * plane);
        STORE1(b[i][2] - b[i][1], o, (i * 4 + 2) * plane);
        STORE1(b[i][1] - b[i][3], o, (i * 4 + 3) * plane);
    }
}

__kernel void winograd_gemm(__global const store_t* restrict v, __global const store_t* restrict u,
                            __global store_t* restrict m, const int ic, const int ncb, const int tp) {
    const int t0 = get_global_id(0) * NT;
    const int cb = get_global_id(1);
    const int xi = get_global_id(2);
    float16 acc[NV][NT];
#pragma unroll
    for (int k = 0; k < NV; k++)
#pragma unroll
        for (int t = 0; t < NT; t++) acc[k][t] = (float16)(0.0f);
    __global const store_t* vp = v + (size_t)xi * ic * tp + t0;
    __global const store_t* up = u + ((size_t)xi * ncb + cb) * ic * CO_V;
    for (int ci = 0; ci < ic; ci++) {
        float16 w[NV];
#pragma unroll
        for (int k = 0; k < NV; k++) w[k] = LOAD16(up, k);
#if HALF
        float at[VT];  // NT tiles of V converted in one vector
        VEC(vstore, VT)(VEC(vload_half, VT)(0, (__global const half*)vp), 0, at);
#endif
#pragma unroll
        for (int t = 0; t < NT; t++) {
#if HALF
            const float a = at[t];
#else
            const float a = vp[t];
#endif
#pragma unroll
            for (int k = 0; k < NV; k++) acc[k][t] = fma((float16)(a), w[k], acc[k][t]);
        }
        vp += tp;
        up += CO_V;
    }
    __global store_t* mp = m + ((size_t)xi * tp + t0) * (ncb * CO_V) + cb * CO_V;
#pragma unroll
    for (int t = 0; t < NT; t++)
#pragma unroll
        for (int k = 0; k < NV; k++) STORE16(acc[k][t], mp + (size_t)t * ncb * CO_V + k * 16);
}

__kernel void winograd_output(__global const store_t* restrict m, __global const float* restrict bias,
                              __global float* restrict y, const float a0, const float a1, const int oc,
                              const int oh, const int ow, const int ncb, const int tp, const int th,
                              const float inv_th RESIDUAL_ARG) {
    // Launch: global (OC rounded up to the local size, TW, N * TH): dimension 2 is n * TH + ty, so its row of
    // tiles times TW plus tx is M's row n * T + t.
    const int co = get_global_id(0), tx = get_global_id(1), nty = get_global_id(2);
    if (co >= oc) return;
    const int t = nty * get_global_size(1) + tx;
    const int n = (int)(((float)nty + 0.5f) * inv_th), ty = nty - n * th;  // exact: as t / tw in winograd_input
    float s[16];
#pragma unroll
    for (int xi = 0; xi < 16; xi++) s[xi] = LOAD1(m, ((size_t)xi * tp + t) * (ncb * CO_V) + co);
    float a[2][4];  // A^T s
#pragma unroll
    for (int j = 0; j < 4; j++) {
        a[0][j] = s[j] + s[4 + j] + s[8 + j];
        a[1][j] = s[4 + j] - s[8 + j] - s[12 + j];
    }
    const float b = bias[co];
    const size_t plane = ((size_t)n * oc + co) * oh * ow;  // channel co of image n
#pragma unroll
    for (int i = 0; i < 2; i++) {
        const int yy = 2 * ty + i, xx = 2 * tx;
        if (yy >= oh) break;
#pragma unroll
        for (int k = 0; k < 2; k++) {
            if (xx + k >= ow) break;
            const float v = k == 0 ? a[i][0] + a[i][1] + a[i][2] : a[i][1] - a[i][2] - a[i][3];
            store_output(y, RESIDUAL_PTR, plane + yy * ow + xx + k, v + b, a0, a1);
        }
    }
}
