// The register tile of the GPU GEMM kernels (conv_gemm.cl's conv2d_gemm, matmul.cl's gemm_tiled): work-item
// (tx, ty) of a TX x TY work-group accumulates acc[i][j] for row ty + i TY and column tx + j TX of a
// (TY RM) x (TX RN) output tile. Strided ownership: neighbours read neighbouring local words (no bank
// conflicts) and later store neighbouring columns (coalesced). Only in builds with the tile options.
#ifdef TX
inline void tile_zero(float acc[RM][RN]) {
#pragma unroll
    for (int i = 0; i < RM; i++)
#pragma unroll
        for (int j = 0; j < RN; j++) acc[i][j] = 0.0f;
}

// acc += one staged TK-deep slice: for k row r, a[r lda + i] is the left operand at tile row i and
// b[r ldb + j] the right one at tile column j (lda, ldb: the local rows' lengths, padding included).
inline void tile_fma(float acc[RM][RN], __local const float* a, const int lda, __local const float* b,
                     const int ldb, const int tx, const int ty) {
#pragma unroll
    for (int r = 0; r < TK; r++) {
        float av[RM], bv[RN];
#pragma unroll
        for (int i = 0; i < RM; i++) av[i] = a[r * lda + ty + i * TY];
#pragma unroll
        for (int j = 0; j < RN; j++) bv[j] = b[r * ldb + tx + j * TX];
#pragma unroll
        for (int i = 0; i < RM; i++)
#pragma unroll
            for (int j = 0; j < RN; j++) acc[i][j] = fma(av[i], bv[j], acc[i][j]);
    }
}
#endif
