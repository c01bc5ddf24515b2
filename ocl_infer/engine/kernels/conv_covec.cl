// Direct convolution vectorised over OUTPUT channels ("covec"): a work-item keeps NV float16 vectors
// (16*NV output channels) x RY output rows x NP output columns of accumulators in registers; each input value
// is loaded once per tap and broadcast against NV weight vectors. Any stride SH x SW (YOLOv5/v8/11 downsample
// with stride-2 convs), dilation 1, groups 1; any KH x KW
// and zero padding PT/PL (bottom/right follow from OH, OW); fused bias + activation (ACT as in activation.h.cl).
// Layouts: x [N][IC][IH][IW]; w [NCB][KH][KW][IC][CO_V] (CO_V = 16*NV, OC zero-padded to NCB*CO_V);
// bias [NCB*CO_V]; y [N][OC][OH][OW].  Launch: global (ceil(OW/NP), ceil(OH/RY), N*NCB), local (1,1,1).
// Compile-time: the blocking NP NV RY, KH KW, ACT, POOL (0, or 2: fused 2x2/2 max pool). The geometry (ic ih iw oc
// oh ow pt pl, ncb = channel blocks) comes as arguments, so every layer with the same blocking shares one
// program: fewer compiles at a cold start, and loop bounds at run time cost nothing measurable here.
#define CO_V (16 * NV)
#ifndef SH  // strides: build options only where not 1, so stride-1 layers keep sharing their programs
#define SH 1
#endif
#ifndef SW
#define SW 1
#endif

// HALF=1 (engine precision "fp16"): the weights are stored as half and widened on load (vload_half16 is core
// OpenCL 1.2; this device has no half arithmetic); accumulation, bias and activations stay float.
#if HALF
#define WEIGHTS __global const half* restrict
#define LOAD_W(p, i) vload_half16((i), (p))
#else
#define WEIGHTS __global const float16* restrict
#define LOAD_W(p, i) ((p)[i])
#endif

// activate16 (float16 epilogue): activation.h.cl

__kernel void conv2d_covec(__global const float* restrict x, WEIGHTS w,
                           __global const float16* restrict bias, __global float* restrict y,
                           const float a0, const float a1,
                           const int ic, const int ih, const int iw, const int oc, const int oh,
                           const int ow, const int pt, const int pl, const int ncb RESIDUAL_ARG) {
    const int x0 = get_global_id(0) * NP;
    const int y0 = get_global_id(1) * RY;
    const int cb = get_global_id(2) % ncb;
    const int n = get_global_id(2) / ncb;
    __global const float* xn = x + (size_t)n * ic * ih * iw;
    float16 acc[NV][RY][NP];
#pragma unroll
    for (int v = 0; v < NV; v++) {
        const float16 b = bias[cb * NV + v];
#pragma unroll
        for (int r = 0; r < RY; r++)
#pragma unroll
            for (int p = 0; p < NP; p++) acc[v][r][p] = b;
    }
    for (int ky = 0; ky < KH; ky++) {
        const int iy0 = y0 * SH + ky - pt;
        if (iy0 + (RY - 1) * SH < 0 || iy0 >= ih) continue;  // every row of the block reads padding
        for (int kx = 0; kx < KW; kx++) {
            const int ix0 = x0 * SW + kx - pl;
            size_t wk = ((size_t)(cb * KH + ky) * KW + kx) * ic * NV;  // index in 16-lane vectors
            if (ix0 >= 0 && ix0 + (NP - 1) * SW < iw && iy0 >= 0 && iy0 + (RY - 1) * SH < ih) {
                // Interior block: no bounds checks in the hot loop.
                __global const float* ip = xn + iy0 * iw + ix0;
                for (int ci = 0; ci < ic; ci++) {
                    float16 wv[NV];
#pragma unroll
                    for (int v = 0; v < NV; v++) wv[v] = LOAD_W(w, wk + v);
#pragma unroll
                    for (int r = 0; r < RY; r++)
#pragma unroll
                        for (int p = 0; p < NP; p++) {
                            const float a = ip[r * SH * iw + p * SW];
#pragma unroll
                            for (int v = 0; v < NV; v++) acc[v][r][p] = fma((float16)(a), wv[v], acc[v][r][p]);
                        }
                    ip += ih * iw;
                    wk += NV;
                }
            } else {
                // Border block: outside positions read zero; clamping keeps every load inside the tensor.
                __global const float* ip = xn;
                for (int ci = 0; ci < ic; ci++) {
                    float16 wv[NV];
#pragma unroll
                    for (int v = 0; v < NV; v++) wv[v] = LOAD_W(w, wk + v);
#pragma unroll
                    for (int r = 0; r < RY; r++) {
                        const int iy = iy0 + r * SH;
                        const bool row_ok = iy >= 0 && iy < ih;
                        __global const float* rp = ip + clamp(iy, 0, ih - 1) * iw;
#pragma unroll
                        for (int p = 0; p < NP; p++) {
                            const int ix = ix0 + p * SW;
                            const float a = (row_ok && ix >= 0 && ix < iw) ? rp[clamp(ix, 0, iw - 1)] : 0.0f;
#pragma unroll
                            for (int v = 0; v < NV; v++) acc[v][r][p] = fma((float16)(a), wv[v], acc[v][r][p]);
                        }
                    }
                    ip += ih * iw;
                    wk += NV;
                }
            }
        }
    }
#if POOL == 2
    // Fused 2x2 stride-2 max pool (RY = 2, NP even): every activation we fuse is non-decreasing, so the max of
    // the activated values is the activation of the max. oh, ow here are the conv's; the pooled map is half.
#pragma unroll
    for (int v = 0; v < NV; v++) {
        const int c0 = cb * CO_V + v * 16;
        const int nl = min(16, oc - c0);
        const int py = y0 / 2;
        if (py >= oh / 2) break;
#pragma unroll
        for (int p = 0; p < NP; p += 2) {
            const int px = (x0 + p) / 2;
            if (px >= ow / 2) break;
            const float16 m = fmax(fmax(acc[v][0][p], acc[v][0][p + 1]), fmax(acc[v][1][p], acc[v][1][p + 1]));
            float t[16];
            vstore16(activate16(m, a0, a1), 0, t);
            __global float* o = y + ((size_t)(n * oc + c0) * (oh / 2) + py) * (ow / 2) + px;
#pragma unroll
            for (int l = 0; l < 16; l++)
                if (l < nl) o[(size_t)l * (oh / 2) * (ow / 2)] = t[l];
        }
    }
#else
#pragma unroll
    for (int v = 0; v < NV; v++) {
        const int c0 = cb * CO_V + v * 16;
        const int nl = min(16, oc - c0);  // oc need not be a multiple of 16 (255): padded lanes are not stored
#pragma unroll
        for (int r = 0; r < RY; r++) {
            if (y0 + r >= oh) break;
#pragma unroll
            for (int p = 0; p < NP; p++) {
                if (x0 + p >= ow) break;
                float t[16];
                const size_t at = ((size_t)(n * oc + c0) * oh + y0 + r) * ow + x0 + p;
#if RES
                // the residual, read lane by lane as the output is stored (channel stride oh * ow)
                float rt[16];
#pragma unroll
                for (int l = 0; l < 16; l++) rt[l] = l < nl ? res[at + (size_t)l * oh * ow] : 0.0f;
                const float16 rv = vload16(0, rt);
#endif
#if RES == 1
                vstore16(activate16(acc[v][r][p] + rv, a0, a1), 0, t);
#elif RES == 2
                vstore16(activate16(acc[v][r][p], a0, a1) + rv, 0, t);
#else
                vstore16(activate16(acc[v][r][p], a0, a1), 0, t);
#endif
                __global float* o = y + at;
#pragma unroll
                for (int l = 0; l < 16; l++)
                    if (l < nl) o[(size_t)l * oh * ow] = t[l];
            }
        }
    }
#endif
}
