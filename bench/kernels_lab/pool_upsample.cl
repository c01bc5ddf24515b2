// Helpers for the lab network: Darknet-style max-pool (size 2, stride S, padding only bottom/right, border
// 'ignore') and nearest x2 upsample. NCHW, N=1; one work-item per output element.
__kernel void max_pool2(__global const float* restrict in, __global float* restrict out,
                        const int h, const int w, const int oh, const int ow, const int stride)
{
    const int ox = get_global_id(0), oy = get_global_id(1), c = get_global_id(2);
    if (ox >= ow || oy >= oh) return;
    __global const float* p = in + (size_t)c * h * w;
    const int y = oy * stride, x = ox * stride;
    float m = p[y * w + x];
    if (x + 1 < w) m = fmax(m, p[y * w + x + 1]);
    if (y + 1 < h) {
        m = fmax(m, p[(y + 1) * w + x]);
        if (x + 1 < w) m = fmax(m, p[(y + 1) * w + x + 1]);
    }
    out[(size_t)c * oh * ow + oy * ow + ox] = m;
}

__kernel void upsample2(__global const float* restrict in, __global float* restrict out, const int h, const int w)
{
    const int x = get_global_id(0), y = get_global_id(1), c = get_global_id(2);
    const float v = in[(size_t)c * h * w + y * w + x];
    __global float* o = out + (size_t)c * 4 * h * w + 2 * y * 2 * w + 2 * x;
    o[0] = v;
    o[1] = v;
    o[2 * w] = v;
    o[2 * w + 1] = v;
}
