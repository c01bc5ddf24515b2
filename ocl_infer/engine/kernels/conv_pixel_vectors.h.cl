// What the kernels vectorised over pixels share (conv_pointwise.cl, conv_pixels.cl): scalar weight loads (a
// weight is broadcast against pixel vectors; HALF=1, precision "fp16", stores the weights as half, widened
// on load) and the epilogue of one 16-pixel output vector.
#if HALF
#define WEIGHTS __global const half* restrict
#define LOAD_W1(p, i) vload_half((i), (p))
#else
#define WEIGHTS __global const float* restrict
#define LOAD_W1(p, i) ((p)[i])
#endif

// v (bias included) through the activation, with the residual rv added before it (RES 1) or after it (RES 2;
// RES 0 ignores rv), stored to out whole, or its first n lanes where the map ends inside the vector (n < 16).
inline void finish_store16(float16 v, const float16 rv, __global float* out, const int n, const float a0,
                           const float a1) {
#if RES == 1
    v = activate16(v + rv, a0, a1);
#elif RES == 2
    v = activate16(v, a0, a1) + rv;
#else
    v = activate16(v, a0, a1);
#endif
    if (n >= 16) {
        vstore16(v, 0, out);
    } else {
        float t[16];
        vstore16(v, 0, t);
        for (int l = 0; l < n; l++) out[l] = t[l];
    }
}
