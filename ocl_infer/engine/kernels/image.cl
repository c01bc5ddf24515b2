// uint8 interleaved image (any row stride) -> letterboxed float32 NCHW tensor, in one pass.
// Inside the box: bilinear resize with half-pixel centres and edge clamp (cv2.resize INTER_LINEAR's sampling),
// channel pick (BGR<->RGB, BGRA), then x * scale - mean. Outside the box: pad. One work item per output pixel.

__kernel void image_to_nchw(__global const uchar* restrict src, const int src_stride, const int src_w,
                            const int src_h, const int4 pick,  // source byte of output channel 0,1,2; w = bytes/px
                            __global float* restrict dst, const int net_w, const int net_h,
                            const int4 box,       // dx, dy, new_w, new_h
                            const float2 ratio,   // src_w / new_w, src_h / new_h
                            const float scale, const float4 mean, const float pad,
                            const int quantize) {  // 1: resample like cv2.resize on uint8 (see below)
    const int x = get_global_id(0), y = get_global_id(1);
    if (x >= net_w || y >= net_h) return;
    const int plane = net_w * net_h;
    __global float* out = dst + y * net_w + x;
    const int u = x - box.x, v = y - box.y;
    if (u < 0 || v < 0 || u >= box.z || v >= box.w) {
        out[0] = pad; out[plane] = pad; out[2 * plane] = pad;
        return;
    }
    // cv2: f = (d + 0.5) * ratio - 0.5, negative clamps to 0; past the last pixel both taps are the last pixel
    const float fx = fmax(((float)u + 0.5f) * ratio.x - 0.5f, 0.0f);
    const float fy = fmax(((float)v + 0.5f) * ratio.y - 0.5f, 0.0f);
    const int x0 = min((int)fx, src_w - 1), y0 = min((int)fy, src_h - 1);
    const int x1 = min(x0 + 1, src_w - 1), y1 = min(y0 + 1, src_h - 1);
    // cv2 sets the weight to 0 past the last pixel; the taps are equal there, but the rounding below is not
    const float ax = x0 == src_w - 1 ? 0.0f : fx - (float)x0, ay = y0 == src_h - 1 ? 0.0f : fy - (float)y0;
    __global const uchar* r0 = src + y0 * src_stride;
    __global const uchar* r1 = src + y1 * src_stride;
    const int p00 = x0 * pick.w, p01 = x1 * pick.w;
    const int c[3] = {pick.x, pick.y, pick.z};
    const float m[3] = {mean.x, mean.y, mean.z};
    if (quantize) {
        // cv2's uint8 INTER_LINEAR: 11-bit fixed-point weights, rows then columns, rounded back to uint8, so the
        // tensor equals the host path's (cv2.resize)
        const int wx1 = convert_int_rte(ax * 2048.0f), wx0 = convert_int_rte((1.0f - ax) * 2048.0f);
        const int wy1 = convert_int_rte(ay * 2048.0f), wy0 = convert_int_rte((1.0f - ay) * 2048.0f);
        for (int k = 0; k < 3; ++k) {
            const int top = r0[p00 + c[k]] * wx0 + r0[p01 + c[k]] * wx1;
            const int bottom = r1[p00 + c[k]] * wx0 + r1[p01 + c[k]] * wx1;
            // the vertical pass as cv2's SIMD code does it: >> 4, 16-bit high multiply, then (v + 2) >> 2
            const int v = (((top >> 4) * wy0) >> 16) + (((bottom >> 4) * wy1) >> 16);
            const int q = clamp((v + 2) >> 2, 0, 255);
            out[k * plane] = (float)q * scale - m[k];
        }
        return;
    }
    for (int k = 0; k < 3; ++k) {
        const float a = (float)r0[p00 + c[k]], b = (float)r0[p01 + c[k]];
        const float d = (float)r1[p00 + c[k]], e = (float)r1[p01 + c[k]];
        const float top = a + ax * (b - a), bottom = d + ax * (e - d);
        out[k * plane] = (top + ay * (bottom - top)) * scale - m[k];
    }
}
