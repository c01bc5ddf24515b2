// Data movement: strided copies (transpose, slice, concat, split, nearest upsample), pad, linear upsample.
// Included after common.h.cl.

__kernel void strided_copy(__global const float* src, __global float* dst, const int8 d, const int8 ss,
                           const int8 ds, const int soff, const int doff, const int n) {
    const int i = get_global_id(0);
    if (i < n) dst[doff + bidx(i, d, ds)] = src[soff + bidx(i, d, ss)];
}

// Copies of up to 3 (collapsed) dims, the common case (concat along a spatial or anchor axis, channel/space
// transposes): grid coordinates give the index, no per-element divisions. Launch: global (d0, d1, d2), d0
// innermost; strides of the source and destination per dim.
__kernel void grid_copy(__global const float* restrict src, __global float* restrict dst, const int ss0,
                        const int ss1, const int ss2, const int ds0, const int ds1, const int ds2, const int soff,
                        const int doff) {
    const size_t i = get_global_id(0), j = get_global_id(1), k = get_global_id(2);
    dst[doff + i * ds0 + j * ds1 + k * ds2] = src[soff + i * ss0 + j * ss1 + k * ss2];
}

// grid_copy for the CPU family where dim 0 is contiguous in both tensors and at least 16 long (concat along the
// anchor axis, transposes that keep the last axis): up to `chunk` floats of a row per work-item as float16
// vectors (a scalar per work-item left PoCL strided gathers: the DFL transpose 1x4x16x3549 took 0.13 ms; a
// vector per work-item, work-group overhead), the tail in scalars. Launch: global (ceil(d0 / chunk), d1, d2),
// local 1.
__kernel void rows_copy16(__global const float* restrict src, __global float* restrict dst, const int d0,
                          const int ss1, const int ss2, const int ds1, const int ds2, const int soff,
                          const int doff, const int chunk) {
    const int i0 = get_global_id(0) * chunk, end = min(i0 + chunk, d0);
    const size_t j = get_global_id(1), k = get_global_id(2);
    __global const float* s = src + soff + j * ss1 + k * ss2;
    __global float* d = dst + doff + j * ds1 + k * ds2;
    int i = i0;
    for (; i + 16 <= end; i += 16) vstore16(vload16(0, s + i), 0, d + i);
    for (; i < end; i++) d[i] = s[i];
}

__kernel void contiguous_copy(__global const float* restrict src, __global float* restrict dst, const int soff,
                              const int doff, const int n) {
    const int i = get_global_id(0);
    if (i < n) dst[doff + i] = src[soff + i];
}

// One input pixel per work-item, written fh x fw times: grid coordinates, no run-time divisions (which made
// the flat version 4x slower). Launch: global (IW rounded up to the local size, IH, planes).
__kernel void nearest_upsample2d(__global const float* restrict src, __global float* restrict dst, const int ih,
                                 const int iw, const int fh, const int fw) {
    const int ix = get_global_id(0), iy = get_global_id(1), p = get_global_id(2);
    if (ix >= iw || iy >= ih) return;  // work-groups padded in x (and in y for the GPU family)
    const float v = src[((size_t)p * ih + iy) * iw + ix];
    const int ow = iw * fw;
    __global float* o = dst + ((size_t)p * ih * fh + iy * fh) * ow + ix * fw;
    for (int a = 0; a < fh; a++)
        for (int b = 0; b < fw; b++) o[a * ow + b] = v;
}

// nearest_upsample2d for the CPU family at factor 2x2: 8 input pixels per work-item, each output row written as
// one float16 of duplicated lanes (the scalar kernel's 4 stores per pixel took 0.16 ms for 128x26x26 -> 52x52),
// the iw % 8 tail in scalars. Launch: global (ceil(IW / 8), IH, planes), local 1.
__kernel void nearest_upsample2x_8(__global const float* restrict src, __global float* restrict dst, const int ih,
                                   const int iw) {
    const int x0 = get_global_id(0) * 8, iy = get_global_id(1), p = get_global_id(2);
    __global const float* s = src + ((size_t)p * ih + iy) * iw;
    const int ow = 2 * iw;
    __global float* o = dst + ((size_t)p * 2 * ih + 2 * iy) * ow;
    if (x0 + 8 <= iw) {
        const float8 v = vload8(0, s + x0);
        const float16 w = (float16)(v.s0, v.s0, v.s1, v.s1, v.s2, v.s2, v.s3, v.s3, v.s4, v.s4, v.s5, v.s5, v.s6,
                                    v.s6, v.s7, v.s7);
        vstore16(w, 0, o + 2 * x0);
        vstore16(w, 0, o + ow + 2 * x0);
    } else {
        for (int x = x0; x < iw; x++) {
            const float v = s[x];
            o[2 * x] = v;
            o[2 * x + 1] = v;
            o[ow + 2 * x] = v;
            o[ow + 2 * x + 1] = v;
        }
    }
}

inline int pad_index(int j, const int len, const int border) {
    // border: 0 constant, 1 replicate, 2 reflect, 3 reflect-even; -1 means "use the constant value"
    if (j >= 0 && j < len) return j;
    if (border == 0) return -1;
    if (border == 1) return clamp(j, 0, len - 1);
    if (border == 2) { if (len == 1) return 0; j = j < 0 ? -j : 2 * len - 2 - j; return clamp(j, 0, len - 1); }
    j = j < 0 ? -j - 1 : 2 * len - 1 - j;
    return clamp(j, 0, len - 1);
}

__kernel void pad_nd(__global const float* src, __global float* dst, const int8 od, const int8 id,
                     const int8 is, const int8 before, const int border, const float value, const int n) {
    const int i = get_global_id(0);
    if (i >= n) return;
    int odv[8], idv[8], isv[8], bv[8];
    vstore8(od, 0, odv); vstore8(id, 0, idv); vstore8(is, 0, isv); vstore8(before, 0, bv);
    int o = i, off = 0;
    for (int k = 7; k >= 0; --k) {
        const int q = o % odv[k];
        o /= odv[k];
        const int j = pad_index(q - bv[k], idv[k], border);
        if (j < 0) { dst[i] = value; return; }
        off += j * isv[k];
    }
    dst[i] = src[off];
}

// method: 0 symmetric (half pixel), 1 asymmetric, 2 aligned (corners); border: 0 constant, 1 replicate
inline float src_coord(const int o, const int in, const int out, const int method) {
    if (method == 0) return ((float)o + 0.5f) * ((float)in / (float)out) - 0.5f;
    if (method == 1) return (float)o * ((float)in / (float)out);
    return out > 1 ? (float)o * ((float)(in - 1) / (float)(out - 1)) : 0.0f;
}

inline float tap(__global const float* plane, int y, int x, const int ih, const int iw, const int border) {
    if (y < 0 || y >= ih || x < 0 || x >= iw) {
        if (border == 0) return 0.0f;
        y = clamp(y, 0, ih - 1);
        x = clamp(x, 0, iw - 1);
    }
    return plane[y * iw + x];
}

__kernel void linear_upsample2d(__global const float* src, __global float* dst, const int ih, const int iw,
                                const int oh, const int ow, const int method, const int border, const int n) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const int ox = i % ow, oy = (i / ow) % oh, p = i / (ow * oh);
    const float sy = src_coord(oy, ih, oh, method), sx = src_coord(ox, iw, ow, method);
    const float fy0 = floor(sy), fx0 = floor(sx);
    const float wy = sy - fy0, wx = sx - fx0;
    const int y0 = (int)fy0, x0 = (int)fx0;
    __global const float* plane = src + (size_t)p * ih * iw;
    const float top = (1.0f - wx) * tap(plane, y0, x0, ih, iw, border) + wx * tap(plane, y0, x0 + 1, ih, iw, border);
    const float bot = (1.0f - wx) * tap(plane, y0 + 1, x0, ih, iw, border) + wx * tap(plane, y0 + 1, x0 + 1, ih, iw, border);
    dst[i] = (1.0f - wy) * top + wy * bot;
}
