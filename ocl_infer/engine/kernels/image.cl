// uint8 interleaved image (any row stride) -> letterboxed float32 NCHW tensor, in one pass.
// Inside the box: bilinear resize with cv2.resize INTER_LINEAR's sampling (half-pixel centres, edge clamp),
// optional swap of the first and third channel (BGR<->RGB), then x * scale - mean. Outside the box: pad.
// One work item per output pixel; its 3 colours are loaded and blended as one vector.
//
// Build options (one program per combination, so the compiler sees constants): BPP bytes per source pixel (3 or
// 4); SWAP 1 when output channel 0 is source byte 2; QUANTIZE 1 to resample exactly like cv2.resize on uint8.
// Per-geometry tables, made on the host once (ImageKernel.tables): per output column xt = (byte offset of the
// left tap, of the right tap, weight left, weight right), per output row yt = (row offsets, weights top, bottom).
// Weights are 11-bit fixed point with QUANTIZE, else float bits (as_float).
// `offset`: the element where this frame's 3×H×W image starts in dst (frame n of a batch: n × 3 × H × W), so each
// frame of a batch writes its own slice of one input tensor (an argument: sub-buffers would need aligned offsets).

#if BPP == 4
#define LOAD(row, off) convert_int4(vload4(0, (row) + (off)))
#else
#define LOAD(row, off) (int4)(convert_int3(vload3(0, (row) + (off))), 0)
#endif

__kernel void image_to_nchw(__global const uchar* restrict src, __global const int4* restrict xt,
                            __global const int4* restrict yt, __global float* restrict dst, const int offset,
                            const int net_w, const int net_h,
                            const int4 box,  // dx, dy, new_w, new_h
                            const float scale, const float4 mean, const float pad) {
    const int x = get_global_id(0), y = get_global_id(1);
    if (x >= net_w || y >= net_h) return;
    const int plane = net_w * net_h;
    __global float* out = dst + offset + y * net_w + x;
    const int u = x - box.x, v = y - box.y;
    if (u < 0 || v < 0 || u >= box.z || v >= box.w) {
        out[0] = pad; out[plane] = pad; out[2 * plane] = pad;
        return;
    }
    const int4 X = xt[u], Y = yt[v];
    __global const uchar* r0 = src + Y.x;
    __global const uchar* r1 = src + Y.y;
#if QUANTIZE
    // rows then columns, rounded back to uint8 the way cv2's SIMD code does (>> 4, 16-bit high multiply,
    // (v + 2) >> 2): the host path's tensor
    const int4 top = LOAD(r0, X.x) * X.z + LOAD(r0, X.y) * X.w;
    const int4 bottom = LOAD(r1, X.x) * X.z + LOAD(r1, X.y) * X.w;
    const int4 s = (((top >> 4) * Y.z) >> 16) + (((bottom >> 4) * Y.w) >> 16);
    // vector bounds: Oclgrind 21.10 returns garbage in lane z for clamp(int4, int, int) (valid OpenCL C)
    float4 p = convert_float4(clamp((s + 2) >> 2, (int4)(0), (int4)(255)));
#else
    const float ax = as_float(X.w), ay = as_float(Y.w);
    const float4 a = convert_float4(LOAD(r0, X.x)), b = convert_float4(LOAD(r0, X.y));
    const float4 d = convert_float4(LOAD(r1, X.x)), e = convert_float4(LOAD(r1, X.y));
    const float4 top = a + ax * (b - a), bottom = d + ax * (e - d);
    float4 p = top + ay * (bottom - top);
#endif
#if SWAP
    p = p.zyxw;
#endif
    p = p * scale - mean;
    out[0] = p.x; out[plane] = p.y; out[2 * plane] = p.z;
}
