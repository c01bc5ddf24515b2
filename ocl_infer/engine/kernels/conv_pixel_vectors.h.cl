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

// LOAD_WROW(t, p): the OB weights at p (one input channel and tap: contiguous in [..][OB]) into float t[OB]. Half
// weights as one vector conversion where OB is a vector width (vload_halfN is vcvtph2ps; PoCL 3.1's scalar
// vload_half is library code its vectoriser leaves scalar: fp16 pointwise convs ran 2.8x slower than fp32).
#define PXV_VEC_(t, n) t##n
#define PXV_VEC(t, n) PXV_VEC_(t, n)
#if HALF && (OB == 4 || OB == 8 || OB == 16)
#define LOAD_WROW(t, p) PXV_VEC(vstore, OB)(PXV_VEC(vload_half, OB)(0, (p)), 0, (t));
#else
#define LOAD_WROW(t, p) _Pragma("unroll") for (int o_ = 0; o_ < OB; o_++) (t)[o_] = LOAD_W1((p), o_);
#endif

// v (bias included) through the activation, with the residual rv added before it (RES 1) or after it (RES 2;
// RES 0 ignores rv), stored to out whole, or its first n lanes where the map ends inside the vector (n < 16).
inline void finish_store16(float16 v, const float16 rv, __global float* out, const int n, const float a0,
                           const float a1) {
    v = activate_residual16(v, rv, a0, a1);
    if (n >= 16) {
        vstore16(v, 0, out);
    } else {
        float t[16];
        vstore16(v, 0, t);
        for (int l = 0; l < n; l++) out[l] = t[l];
    }
}
