// Indexing ops: top_k (radix select + rank), gather_elements, gather. Included after common.h.cl.
// Integer tensors (indices) are float32 holding exact integers (the wrappers refuse axes over 2^24).
// Rows of top_k: element j of row r = (outer o, inner i) is xs[(o * n + j) * inner + i].

#ifndef TOPK_LOCAL
#define TOPK_LOCAL 16  // gather and gather_elements build without it
#endif

// Unsigned key whose order is the float order (largest = 1) or its reverse (largest = 0): the best element has
// the largest key. -0 becomes +0 so that they tie, as onnxruntime's float comparison makes them.
inline uint topk_key(float x, int largest) {
    const uint u = as_uint(x == 0.0f ? 0.0f : x);
    const uint key = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
    return largest ? key : ~key;
}

// One work-group per row: the k-th best key T by four 8-bit radix passes (histograms in local memory), then the
// selected (value, index) pairs into scratch[row][0..k): keys above T in any order, then the `take` first ties
// with T in index order (onnxruntime keeps the lower index on ties). Each work-item owns a contiguous chunk,
// so the ties' index order is the work-items' order.
__kernel void topk_select(__global const float* restrict xs, __global float* restrict scratch,
                          const int n, const int inner, const int k, const int largest) {
    __local int hist[256];
    __local int ties[TOPK_LOCAL];
    __local int shared[3];  // chosen digit, still to take at the threshold, slots filled above it
    const int row = get_group_id(0), lid = get_local_id(0);
    const int base = (row / inner) * n * inner + row % inner;
    const int chunk = (n + TOPK_LOCAL - 1) / TOPK_LOCAL;
    const int j0 = min(lid * chunk, n), j1 = min(j0 + chunk, n);
    uint prefix = 0, mask = 0;
    int take = k;
    for (int shift = 24; shift >= 0; shift -= 8) {
        for (int b = lid; b < 256; b += TOPK_LOCAL) hist[b] = 0;
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int j = j0; j < j1; ++j) {
            const uint key = topk_key(xs[base + j * inner], largest);
            if ((key & mask) == prefix) atomic_inc(&hist[(key >> shift) & 255u]);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        if (lid == 0) {
            int above = 0, b = 255;
            for (; b > 0 && above + hist[b] < take; --b) above += hist[b];
            shared[0] = b;
            shared[1] = take - above;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        prefix |= (uint)shared[0] << shift;
        mask |= 255u << shift;
        take = shared[1];
        barrier(CLK_LOCAL_MEM_FENCE);  // everyone read shared[] before the next pass rewrites it
    }
    // prefix is now the threshold key T: k - take elements lie above it, `take` ties are kept
    int mine = 0;
    for (int j = j0; j < j1; ++j) mine += topk_key(xs[base + j * inner], largest) == prefix;
    ties[lid] = mine;
    if (lid == 0) shared[2] = 0;
    barrier(CLK_LOCAL_MEM_FENCE);
    if (lid == 0) {  // exclusive prefix sum over the work-items' tie counts
        int sum = 0;
        for (int w = 0; w < TOPK_LOCAL; ++w) { const int c = ties[w]; ties[w] = sum; sum += c; }
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    __global float* out = scratch + 2 * row * k;
    int tie = ties[lid];
    for (int j = j0; j < j1; ++j) {
        const float x = xs[base + j * inner];
        const uint key = topk_key(x, largest);
        int slot = -1;
        if (key > prefix) slot = atomic_inc(&shared[2]);
        else if (key == prefix && tie < take) slot = k - take + tie;
        tie += key == prefix;
        if (slot >= 0) { out[2 * slot] = x; out[2 * slot + 1] = (float)j; }
    }
}

// One work-item per selected element: its rank among the row's k (best key first, then lower index) is its
// output position.
__kernel void topk_rank(__global const float* restrict scratch, __global float* restrict values,
                        __global float* restrict indices, const int inner, const int k, const int largest) {
    const int s = get_global_id(0), row = get_global_id(1);
    if (s >= k) return;
    __global const float* sel = scratch + 2 * row * k;
    const float x = sel[2 * s], idx = sel[2 * s + 1];
    const uint key = topk_key(x, largest);
    int pos = 0;
    for (int t = 0; t < k; ++t) {
        const uint other = topk_key(sel[2 * t], largest);
        pos += other > key || (other == key && sel[2 * t + 1] < idx);
    }
    const int o = ((row / inner) * k + pos) * inner + row % inner;
    values[o] = x;
    indices[o] = idx;
}

// Index along an axis of length n: negative counts from the end; out of range is clamped (ONNX calls it an
// error; reading outside the buffer is never an option).
inline int axis_index(float v, int n) {
    int i = (int)v;
    i = i < 0 ? i + n : i;
    return clamp(i, 0, n - 1);
}

// out[p] = xs[p with its `axis` coordinate replaced by idx[p]]; p runs over the indices' dims `d`; `s` holds
// the strides of xs with 0 at the axis, whose own stride is s_axis.
__kernel void gather_elements(__global const float* restrict xs, __global const float* restrict idx,
                              __global float* restrict ys, const int8 d, const int8 s, const int axis_size,
                              const int s_axis, const int n) {
    const int p = get_global_id(0);
    if (p < n) ys[p] = xs[bidx(p, d, s) + axis_index(idx[p], axis_size) * s_axis];
}

// The common case (the indices have the input's dims but along the axis, as in detection heads): the input
// viewed as [outer][n][inner], the indices as [outer][m][inner], two divisions per element instead of eight.
__kernel void gather_elements_rows(__global const float* restrict xs, __global const float* restrict idx,
                                   __global float* restrict ys, const int n, const int m, const int inner,
                                   const int total) {
    const int p = get_global_id(0);
    if (p >= total) return;
    const int i = p % inner, o = p / (m * inner);
    ys[p] = xs[(o * n + axis_index(idx[p], n)) * inner + i];
}

// NNEF gather: out[o, m, i] = xs[o, idx[m], i] for outer o, index position m and inner i.
__kernel void gather(__global const float* restrict xs, __global const float* restrict idx,
                     __global float* restrict ys, const int n_axis, const int m, const int inner, const int total) {
    const int p = get_global_id(0);
    if (p >= total) return;
    const int i = p % inner, q = p / inner;
    const int o = q / m, mm = q % m;
    ys[p] = xs[(o * n_axis + axis_index(idx[mm], n_axis)) * inner + i];
}

// ONNX GridSample (2-D, PyTorch's grid_sample): out[n, c, i, j] samples x[n, c] at grid[n, i, j] = (gx, gy) in
// [-1, 1]. PADDING 0 zeros, 1 border, 2 reflection; LINEAR 1 bilinear, 0 nearest (half to even, as rint);
// ALIGN 1: -1 and 1 are the corner pixels' centres, else their outer edges.
inline float grid_unnormalize(float g, int size, int align) {
    return align ? (g + 1.0f) * 0.5f * (size - 1) : ((g + 1.0f) * size - 1.0f) * 0.5f;
}

inline float grid_reflect(float x, float twice_low, float twice_high) {
    if (twice_low == twice_high) return 0.0f;
    const float lo = twice_low * 0.5f, span = (twice_high - twice_low) * 0.5f;
    x = fabs(x - lo);
    const float extra = fmod(x, span);
    const int flips = (int)floor(x / span);
    return (flips % 2 == 0) ? extra + lo : span - extra + lo;
}

inline float grid_coordinate(float g, int size, int align, int padding) {
    float x = grid_unnormalize(g, size, align);
    if (padding == 2) x = align ? grid_reflect(x, 0.0f, 2.0f * (size - 1)) : grid_reflect(x, -1.0f, 2.0f * size - 1.0f);
    return padding == 0 ? x : clamp(x, 0.0f, (float)(size - 1));
}

// Weight of the tap at (y, x) and its offset in a plane: outside the map (zeros padding only) it weighs 0 and
// points at 0, so the channel loop reads nothing out of bounds and needs no test.
inline float grid_weight(int y, int x, int h, int w, float wt, int* off) {
    const int inside = y >= 0 && y < h && x >= 0 && x < w;
    *off = inside ? y * w + x : 0;
    return inside ? wt : 0.0f;
}

// One work-item per output position (n, i, j): the sampling point, its taps and weights once, then every channel
// (RT-DETR samples 32-channel heads: the coordinate math is not repeated per channel).
__kernel void grid_sample(__global const float* restrict xs, __global const float* restrict grid,
                          __global float* restrict ys, const int channels, const int h, const int w, const int ho,
                          const int wo, const int linear, const int padding, const int align, const int total) {
    const int p = get_global_id(0);
    if (p >= total) return;
    const int j = p % wo, i = (p / wo) % ho, n = p / (wo * ho);
    __global const float* g = grid + p * 2;
    const float x = grid_coordinate(g[0], w, align, padding), y = grid_coordinate(g[1], h, align, padding);
    int o0, o1, o2, o3;
    float w0, w1 = 0.0f, w2 = 0.0f, w3 = 0.0f;
    if (linear) {
        const float fx = floor(x), fy = floor(y);
        const int x0 = (int)fx, y0 = (int)fy;
        const float ax = x - fx, ay = y - fy;
        w0 = grid_weight(y0, x0, h, w, (1.0f - ay) * (1.0f - ax), &o0);
        w1 = grid_weight(y0, x0 + 1, h, w, (1.0f - ay) * ax, &o1);
        w2 = grid_weight(y0 + 1, x0, h, w, ay * (1.0f - ax), &o2);
        w3 = grid_weight(y0 + 1, x0 + 1, h, w, ay * ax, &o3);
    } else {
        w0 = grid_weight((int)rint(y), (int)rint(x), h, w, 1.0f, &o0);
        o1 = o2 = o3 = o0;
    }
    __global const float* plane = xs + n * channels * h * w;
    __global float* out = ys + (n * channels * ho + i) * wo + j;
    for (int c = 0; c < channels; ++c, plane += h * w, out += ho * wo)
        *out = w0 * plane[o0] + w1 * plane[o1] + w2 * plane[o2] + w3 * plane[o3];
}
