// Elementwise ops: unary (flat), binary and clamp with NNEF broadcasting (rank 8 strides), channel affine.
// Included after common.h.cl.

#define UNARY(NAME, EXPR) \
__kernel void NAME(__global const float* restrict xs, __global float* restrict ys, \
                   const float a0, const float a1, const int n) { \
    const int i = get_global_id(0); \
    if (i < n) { const float x = xs[i]; ys[i] = (EXPR); } \
}

UNARY(u_relu, x > 0.0f ? x : 0.0f)
UNARY(u_leaky_relu, x < 0.0f ? a0 * x : x)
UNARY(u_sigmoid, 1.0f / (1.0f + exp(-x)))
UNARY(u_tanh, tanh(x))
UNARY(u_elu, x < 0.0f ? a0 * expm1(x) : x)
UNARY(u_exp, exp(x))
UNARY(u_log, log(x))
UNARY(u_sqrt, sqrt(x))
UNARY(u_rsqrt, rsqrt(x))
UNARY(u_abs, fabs(x))
UNARY(u_neg, -x)
UNARY(u_sqr, x * x)
UNARY(u_rcp, 1.0f / x)
UNARY(u_sign, sign(x))
UNARY(u_floor, floor(x))
UNARY(u_ceil, ceil(x))
UNARY(u_round, rint(x))
UNARY(u_copy, x)
UNARY(u_softplus, x > 20.0f ? x : log1p(exp(x)))
UNARY(u_silu, x / (1.0f + exp(-x)))
UNARY(u_clamp_scalar, fmin(fmax(x, a0), a1))
UNARY(u_selu, a1 * (x < 0.0f ? a0 * expm1(x) : x))
UNARY(u_gelu, x / (1.0f + exp(-1.702f * x)))
UNARY(u_softabs, sqrt(x * x + a0))
UNARY(u_sin, sin(x))
UNARY(u_cos, cos(x))
UNARY(u_tan, tan(x))
UNARY(u_asin, asin(x))
UNARY(u_acos, acos(x))
UNARY(u_atan, atan(x))
UNARY(u_sinh, sinh(x))
UNARY(u_cosh, cosh(x))
UNARY(u_asinh, asinh(x))
UNARY(u_acosh, acosh(x))
UNARY(u_atanh, atanh(x))
UNARY(u_log2, log2(x))
UNARY(u_rsqr, 1.0f / (x * x))
UNARY(u_erf, erf(x))
UNARY(u_not, x == 0.0f ? 1.0f : 0.0f)
UNARY(u_truthy, x != 0.0f ? 1.0f : 0.0f)  // cast<logical>: ONNX's Cast to bool
UNARY(u_trunc, trunc(x))  // cast<integer> of a float: ONNX's Cast truncates toward zero

inline float mod_floor(float a, float b) {
    const float r = fmod(a, b);
    return (r != 0.0f && (r < 0.0f) != (b < 0.0f)) ? r + b : r;
}

#define BINARY(NAME, EXPR) \
__kernel void NAME(__global const float* as, __global const float* bs, __global float* ys, \
                   const int8 d, const int8 sa, const int8 sb, const int n) { \
    const int i = get_global_id(0); \
    if (i < n) { const float a = as[bidx(i, d, sa)]; const float b = bs[bidx(i, d, sb)]; ys[i] = (EXPR); } \
}

// Same-shape operands (no broadcasting, the common case: residual adds, gates): flat indices, no rank-8 index
// arithmetic (8 run-time divisions per element made these passes 3-4x slower).
#define BINARY_FLAT(NAME, EXPR) \
__kernel void NAME(__global const float* restrict as, __global const float* restrict bs, \
                   __global float* restrict ys, const int n) { \
    const int i = get_global_id(0); \
    if (i < n) { const float a = as[i]; const float b = bs[i]; ys[i] = (EXPR); } \
}

// Broadcasts that collapse to at most 3 dims (a scalar, a row across channels, a per-channel vector): grid
// coordinates (dim 0 innermost, padded to the work-group) and per-dim strides of a, b and y, no divisions (the
// rank-8 kernel's 16 run-time divisions per element made a scalar scale of 11k elements cost 75 us).
#define BINARY_GRID(NAME, EXPR) \
__kernel void NAME(__global const float* as, __global const float* bs, __global float* restrict ys, \
                   const int d0, const int sa0, const int sa1, const int sa2, const int sb0, const int sb1, \
                   const int sb2, const int sy1, const int sy2) { \
    const int i = get_global_id(0), j = get_global_id(1), k = get_global_id(2); \
    if (i < d0) { \
        const float a = as[i * sa0 + j * sa1 + k * sa2]; const float b = bs[i * sb0 + j * sb1 + k * sb2]; \
        ys[i + j * sy1 + k * sy2] = (EXPR); \
    } \
}

#define BINARY_BOTH(NAME, EXPR) BINARY(b_##NAME, EXPR) BINARY_FLAT(bf_##NAME, EXPR) BINARY_GRID(bg_##NAME, EXPR)

BINARY_BOTH(add, a + b)
BINARY_BOTH(sub, a - b)
BINARY_BOTH(mul, a * b)
BINARY_BOTH(div, a / b)
BINARY_BOTH(min, fmin(a, b))
BINARY_BOTH(max, fmax(a, b))
BINARY_BOTH(pow, pow(a, b))
BINARY_BOTH(prelu, a < 0.0f ? b * a : a)
// Integer tensors are float32 holding exact integers: add, sub and mul stay exact below 2^24 and use the float
// kernels; division truncates in integer arithmetic (float division need not be correctly rounded on GPUs),
// and a zero divisor gives 0 rather than a trap.
BINARY_BOTH(int_div, (int)b == 0 ? 0.0f : (float)((int)a / (int)b))
// ONNX Mod: fmod = 1 is C's fmod (sign of the dividend); fmod = 0 takes the sign of the divisor (Python's %).
// fmod is exact, so both serve integer tensors too.
BINARY_BOTH(fmod, fmod(a, b))
BINARY_BOTH(mod, mod_floor(a, b))
// Logical tensors are float32 holding 0 or 1 (any nonzero reads as true)
BINARY_BOTH(lt, a < b ? 1.0f : 0.0f)
BINARY_BOTH(gt, a > b ? 1.0f : 0.0f)
BINARY_BOTH(le, a <= b ? 1.0f : 0.0f)
BINARY_BOTH(ge, a >= b ? 1.0f : 0.0f)
BINARY_BOTH(eq, a == b ? 1.0f : 0.0f)
BINARY_BOTH(ne, a != b ? 1.0f : 0.0f)
BINARY_BOTH(and, (a != 0.0f && b != 0.0f) ? 1.0f : 0.0f)
BINARY_BOTH(or, (a != 0.0f || b != 0.0f) ? 1.0f : 0.0f)
BINARY_BOTH(xor, ((a != 0.0f) != (b != 0.0f)) ? 1.0f : 0.0f)

__kernel void t_select(__global const float* cs, __global const float* as, __global const float* bs,
                       __global float* ys, const int8 d, const int8 sc, const int8 sa, const int8 sb, const int n) {
    const int i = get_global_id(0);
    if (i < n) ys[i] = cs[bidx(i, d, sc)] != 0.0f ? as[bidx(i, d, sa)] : bs[bidx(i, d, sb)];
}

__kernel void t_clamp(__global const float* xs, __global const float* as, __global const float* bs,
                      __global float* ys, const int8 d, const int8 sx, const int8 sa, const int8 sb, const int n) {
    const int i = get_global_id(0);
    if (i < n) ys[i] = fmin(fmax(xs[bidx(i, d, sx)], as[bidx(i, d, sa)]), bs[bidx(i, d, sb)]);
}

// y = x * scale[c] + shift[c] with c the channel (dim 1): batch normalization folded at plan time.
__kernel void channel_affine(__global const float* restrict xs, __global const float* restrict scale,
                             __global const float* restrict shift, __global float* restrict ys,
                             const int channels, const int inner, const int n) {
    const int i = get_global_id(0);
    if (i < n) { const int c = (i / inner) % channels; ys[i] = fma(xs[i], scale[c], shift[c]); }
}
