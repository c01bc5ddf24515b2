// Fused epilogue of the conv families. ACT: 0 none, 1 relu, 2 leaky_relu(a0), 3 clamp(a0, a1), 4 sigmoid,
// 5 tanh, 6 elu(a0), 7 silu (x * sigmoid(x): the planner fuses conv -> sigmoid -> mul(conv, sigmoid)).
// exp of -|v| never overflows: the kernels are built with -cl-fast-relaxed-math (finite math only), where
// 1 / (1 + exp(-v)) gave NaN for v < -88 on PoCL instead of 0.
inline float sigmoid_stable(const float v) {
    const float e = exp(-fabs(v));
    return (v >= 0.0f ? 1.0f : e) / (1.0f + e);
}

inline float activate(const float v, const float a0, const float a1) {
#if ACT == 1
    return v > 0.0f ? v : 0.0f;
#elif ACT == 2
    return v < 0.0f ? a0 * v : v;
#elif ACT == 3
    return fmin(fmax(v, a0), a1);
#elif ACT == 4
    return sigmoid_stable(v);
#elif ACT == 5
    return tanh(v);
#elif ACT == 6
    return v < 0.0f ? a0 * expm1(v) : v;
#elif ACT == 7
    return v * sigmoid_stable(v);
#else
    return v;
#endif
}

// The same on float16 vectors (covec, pointwise: 16 channels or 16 pixels per vector).
inline float16 sigmoid16(const float16 v) {
    const float16 e = exp(-fabs(v));
    return select(e, (float16)(1.0f), v >= (float16)(0.0f)) / (1.0f + e);
}

inline float16 activate16(const float16 v, const float a0, const float a1) {
#if ACT == 1
    return fmax(v, (float16)(0.0f));
#elif ACT == 2
    return select(v, v * a0, v < (float16)(0.0f));
#elif ACT == 3
    return fmin(fmax(v, (float16)(a0)), (float16)(a1));
#elif ACT == 4
    return sigmoid16(v);
#elif ACT == 5
    return tanh(v);
#elif ACT == 6
    return select(v, a0 * expm1(v), v < (float16)(0.0f));
#elif ACT == 7
    return v * sigmoid16(v);
#else
    return v;
#endif
}

// RES: a residual add fused by the planner (conv -> add), 0 none, 1 before the activation (ResNet), 2 after it
// (Darknet's shortcut). The residual tensor, laid out as the output, is then the kernel's last argument.
#ifndef RES
#define RES 0
#endif
#if RES
#define RESIDUAL_ARG , __global const float* restrict res
#else
#define RESIDUAL_ARG
#endif
// The residual tensor as a pointer in every build: null where RES is 0 (the helpers never read it then).
#if RES
#define RESIDUAL_PTR res
#else
#define RESIDUAL_PTR ((__global const float*)0)
#endif

// v (bias included) through the activation, with the residual rv added before it (RES 1) or after it (RES 2;
// RES 0 ignores rv).
inline float16 activate_residual16(const float16 v, const float16 rv, const float a0, const float a1) {
#if RES == 1
    return activate16(v + rv, a0, a1);
#elif RES == 2
    return activate16(v, a0, a1) + rv;
#else
    return activate16(v, a0, a1);
#endif
}

// 16 output channels of one pixel as a vector (Winograd F(4x4)'s output transform): lane l goes to
// y[at + l * plane], its channel's plane, for the first nl lanes (the channels that exist, oc need not be a
// multiple of 16); the residual r, if any, is read lane by lane at the same places. covec stores the same way
// but inline: through this function its residual layers ran 35-40 % slower under PoCL (YOLOv8n's C2f
// bottleneck conv 0.36 -> 0.51 ms).
inline void store_channels16(__global float* restrict y, __global const float* restrict r, const size_t at,
                             const size_t plane, const int nl, const float16 v, const float a0, const float a1) {
    float16 rv = (float16)(0.0f);
#if RES
    float rt[16];
#pragma unroll
    for (int l = 0; l < 16; l++) rt[l] = l < nl ? r[at + (size_t)l * plane] : 0.0f;
    rv = vload16(0, rt);
#endif
    float t[16];
    vstore16(activate_residual16(v, rv, a0, a1), 0, t);
#pragma unroll
    for (int l = 0; l < 16; l++)
        if (l < nl) y[at + (size_t)l * plane] = t[l];
}
