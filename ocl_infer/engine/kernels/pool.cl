// Pooling over the last two dims, reductions over any axes, softmax over any axes. After common.h.cl.

inline int border_index(int j, const int len, const int border) {
    // border: 2 replicate, 3 reflect, 4 reflect-even (0 ignore and 1 constant never get here)
    if (j >= 0 && j < len) return j;  // the other coordinate may be the one outside
    if (border == 2) return clamp(j, 0, len - 1);
    if (border == 3) { if (len == 1) return 0; j = j < 0 ? -j : 2 * len - 2 - j; return clamp(j, 0, len - 1); }
    j = j < 0 ? -j - 1 : 2 * len - 1 - j;
    return clamp(j, 0, len - 1);
}

// mode: 0 max, 1 avg, 2 box (sum); border: 0 ignore, 1 constant (zero), 2 replicate, 3 reflect, 4 reflect-even
// The window (P_KH ... P_MODE) comes as compile-time constants so the tap loops unroll; the map sizes come as
// arguments, so pools with the same window share one program.
#ifdef P_KH
#define kh P_KH
#define kw P_KW
#define sh P_SH
#define sw P_SW
#define dh P_DH
#define dw P_DW
#define pt P_PT
#define pl P_PL
#define border P_BORDER
#define mode P_MODE
// Launch: global (OW rounded up to the local size, OH, planes): grid coordinates, no run-time divisions.
__kernel void pool2d(__global const float* src, __global float* dst, const int ih, const int iw, const int oh,
                     const int ow) {
    const int ox = get_global_id(0), oy = get_global_id(1), p = get_global_id(2);
    if (ox >= ow || oy >= oh) return;  // work-groups padded in x (and in y for the GPU family)
    const int i = (p * oh + oy) * ow + ox;
    __global const float* plane = src + (size_t)p * ih * iw;
    float acc = mode == 0 ? -INFINITY : 0.0f;
    int count = 0;
#pragma unroll
    for (int ky = 0; ky < kh; ++ky) {
        int y = oy * sh - pt + ky * dh;
        const bool yin = y >= 0 && y < ih;
#pragma unroll
        for (int kx = 0; kx < kw; ++kx) {
            int x = ox * sw - pl + kx * dw;
            float v;
            if (yin && x >= 0 && x < iw) {
                v = plane[y * iw + x];
            } else if (border == 0) {
                continue;
            } else if (border == 1) {
                v = 0.0f;
            } else {
                v = plane[border_index(y, ih, border) * iw + border_index(x, iw, border)];
            }
            acc = mode == 0 ? fmax(acc, v) : acc + v;
            ++count;
        }
    }
    if (mode == 1) acc = border == 0 ? acc / (float)max(count, 1) : acc / (float)(kh * kw);
    dst[i] = acc;
}

// Max pool, one work-item per output column of a plane (CPU family): it walks the input rows once, takes each
// row's max over the kw taps once and keeps the last kh of them in registers (shifted, kh unrolled), so a k x k
// window costs about 2k operations per output instead of k^2 and a plane's rows are one work-item's loop (SPPF's
// 5x5 pools at 13x13: 13 work-items per plane instead of 169). dh = 1; border 0 (ignore) or 1 (zero).
// Launch: global n = planes * ow, 1-D.
__kernel void max_pool_columns(__global const float* src, __global float* dst, const int ih, const int iw,
                               const int oh, const int ow, const int n) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const int p = i / ow, ox = i - p * ow;
    __global const float* plane = src + (size_t)p * ih * iw;
    __global float* out = dst + (size_t)p * oh * ow + ox;
    const float outside = border == 1 ? 0.0f : -INFINITY;
    float ring[kh];
#pragma unroll
    for (int k = 0; k < kh; ++k) ring[k] = outside;
    const int x0 = ox * sw - pl;
    int oy = 0, done = kh - 1 - pt;  // the input row that completes output row oy's window
    for (int y = -pt; oy < oh; ++y) {
        float m = -INFINITY;
        if (y >= 0 && y < ih) {
            __global const float* row = plane + y * iw;
#pragma unroll
            for (int kx = 0; kx < kw; ++kx) {
                const int x = x0 + kx * dw;
                m = (x >= 0 && x < iw) ? fmax(m, row[x]) : (border == 1 ? fmax(m, 0.0f) : m);
            }
        } else {
            m = outside;
        }
#pragma unroll
        for (int k = 0; k + 1 < kh; ++k) ring[k] = ring[k + 1];
        ring[kh - 1] = m;
        if (y == done) {
            float v = ring[0];
#pragma unroll
            for (int k = 1; k < kh; ++k) v = fmax(v, ring[k]);
            out[oy * ow] = v;
            ++oy;
            done += sh;
        }
    }
}
#undef kh
#undef kw
#undef sh
#undef sw
#undef dh
#undef dw
#undef pt
#undef pl
#undef border
#undef mode
#endif

// Output element i is at input offset bidx(i, od, os); the reduced elements are bidx(r, rd, rs) from there.
// mode: 0 sum, 1 mean, 2 max, 3 min
__kernel void reduce_axes(__global const float* src, __global float* dst, const int8 od, const int8 os,
                          const int8 rd, const int8 rs, const int nred, const int mode, const int n) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const int base = bidx(i, od, os);
    float acc = mode == 2 ? -INFINITY : (mode == 3 ? INFINITY : 0.0f);
    for (int r = 0; r < nred; ++r) {
        const float v = src[base + bidx(r, rd, rs)];
        acc = mode == 2 ? fmax(acc, v) : (mode == 3 ? fmin(acc, v) : acc + v);
    }
    dst[i] = mode == 1 ? acc / (float)nred : acc;
}

__kernel void softmax_axes(__global const float* src, __global float* dst, const int8 od, const int8 os,
                           const int8 rd, const int8 rs, const int nred, const int mode, const int n) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const int base = bidx(i, od, os);
    float m = -INFINITY;
    for (int r = 0; r < nred; ++r) m = fmax(m, src[base + bidx(r, rd, rs)]);
    float s = 0.0f;
    for (int r = 0; r < nred; ++r) s += exp(src[base + bidx(r, rd, rs)] - m);
    const float inv = 1.0f / s;
    for (int r = 0; r < nred; ++r) {
        const int off = base + bidx(r, rd, rs);
        dst[off] = exp(src[off] - m) * inv;
    }
}

// The common case: the reduced axes form one contiguous block, so the tensor is viewed as [outer][r][inner]
// and work-item i = (o, j) walks its row with stride `inner`: neighbouring work-items read neighbouring words,
// and no rank-8 index arithmetic runs per element (the DFL softmax of YOLOv8 heads: 16 bins x 4 x 3549 rows).
__kernel void reduce_rows(__global const float* src, __global float* dst, const int r, const int inner,
                          const int mode, const int n) {
    const int i = get_global_id(0);
    if (i >= n) return;
    __global const float* row = src + (size_t)(i / inner) * r * inner + i % inner;
    float acc = mode == 2 ? -INFINITY : (mode == 3 ? INFINITY : 0.0f);
    for (int k = 0; k < r; ++k) {
        const float v = row[(size_t)k * inner];
        acc = mode == 2 ? fmax(acc, v) : (mode == 3 ? fmin(acc, v) : acc + v);
    }
    dst[i] = mode == 1 ? acc / (float)r : acc;
}

// softmax_rows on 16 neighbouring rows per work-item as float16 vectors (CPU family: a work-item per row left
// PoCL a scalar exp per element; the DFL softmax 1x16x4x3549 took 0.8 ms). Needs inner >= 16. Launch: global
// (ceil(inner / 16), outer). A block that would run past the end is moved back to end at the last row: it
// recomputes some of its neighbour's rows and writes the same values, so dst is never read back (src is read
// three times: max, sum, output) and overlapping blocks cannot scale a value twice.
__kernel void softmax_rows16(__global const float* src, __global float* dst, const int r, const int inner) {
    const int j = min((int)get_global_id(0) * 16, inner - 16);
    const size_t base = (size_t)get_global_id(1) * r * inner + j;
    float16 m = (float16)(-INFINITY);
    for (int k = 0; k < r; ++k) m = fmax(m, vload16(0, src + base + (size_t)k * inner));
    float16 s = (float16)(0.0f);
    for (int k = 0; k < r; ++k) s += exp(vload16(0, src + base + (size_t)k * inner) - m);
    const float16 inv = 1.0f / s;
    for (int k = 0; k < r; ++k) {
        const size_t at = base + (size_t)k * inner;
        vstore16(exp(vload16(0, src + at) - m) * inv, 0, dst + at);
    }
}

// Softmax along the contiguous last axis (attention scores, 1x2x169x169 in YOLO11n's C2PSA): a work-item per
// row reading it as float16 vectors, the r % 16 tail as scalars (the per-row kernel left PoCL a gather across
// work-items 169 floats apart: 0.21 ms). Launch: global (rows), local 1.
inline float hmax16(const float16 v) {
    const float8 a = fmax(v.lo, v.hi);
    const float4 b = fmax(a.lo, a.hi);
    const float2 c = fmax(b.lo, b.hi);
    return fmax(c.x, c.y);
}
inline float hsum16(const float16 v) {
    const float8 a = v.lo + v.hi;
    const float4 b = a.lo + a.hi;
    const float2 c = b.lo + b.hi;
    return c.x + c.y;
}
__kernel void softmax_last16(__global const float* src, __global float* dst, const int r) {
    const size_t base = (size_t)get_global_id(0) * r;
    __global const float* x = src + base;
    __global float* y = dst + base;
    const int full = r & ~15;
    float16 m16 = (float16)(-INFINITY);
    for (int k = 0; k < full; k += 16) m16 = fmax(m16, vload16(0, x + k));
    float m = hmax16(m16);
    for (int k = full; k < r; ++k) m = fmax(m, x[k]);
    float16 s16 = (float16)(0.0f);
    for (int k = 0; k < full; k += 16) {  // exp once: kept in dst, scaled below
        const float16 e = exp(vload16(0, x + k) - m);
        vstore16(e, 0, y + k);
        s16 += e;
    }
    float s = hsum16(s16);
    for (int k = full; k < r; ++k) {
        const float e = exp(x[k] - m);
        y[k] = e;
        s += e;
    }
    const float inv = 1.0f / s;
    for (int k = 0; k < full; k += 16) vstore16(vload16(0, y + k) * inv, 0, y + k);
    for (int k = full; k < r; ++k) y[k] *= inv;
}

__kernel void softmax_rows(__global const float* src, __global float* dst, const int r, const int inner,
                           const int n) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const size_t base = (size_t)(i / inner) * r * inner + i % inner;
    float m = -INFINITY;
    for (int k = 0; k < r; ++k) m = fmax(m, src[base + (size_t)k * inner]);
    float s = 0.0f;
    for (int k = 0; k < r; ++k) {  // exp once: kept in dst, scaled below
        const float e = exp(src[base + (size_t)k * inner] - m);
        dst[base + (size_t)k * inner] = e;
        s += e;
    }
    const float inv = 1.0f / s;
    for (int k = 0; k < r; ++k) dst[base + (size_t)k * inner] *= inv;
}
