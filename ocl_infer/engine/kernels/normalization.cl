// Layer normalization over the trailing r elements of each row (ONNX LayerNormalization: every axis from
// `axis` on), with scale and offset broadcast along the row (stride 1) or as one value (stride 0).
// One work-item per row, two passes (mean, then the variance of the differences: no cancellation).
__kernel void layer_norm_rows(__global const float* restrict xs, __global const float* restrict scale,
                              __global const float* restrict offset, __global float* restrict ys,
                              const int rows, const int r, const int s_scale, const int s_offset,
                              const float epsilon) {
    const int row = get_global_id(0);
    if (row >= rows) return;
    __global const float* x = xs + row * r;
    __global float* y = ys + row * r;
    float sum = 0.0f;
    for (int j = 0; j < r; ++j) sum += x[j];
    const float mean = sum / r;
    float sq = 0.0f;
    for (int j = 0; j < r; ++j) { const float d = x[j] - mean; sq += d * d; }
    const float inv = rsqrt(sq / r + epsilon);
    for (int j = 0; j < r; ++j) y[j] = (x[j] - mean) * inv * scale[j * s_scale] + offset[j * s_offset];
}
