// Vector instructions the Swift SIMD types cannot ask for, for the float kernels in AffectKernels.
//
// Header-only and `static inline`: Swift imports these and LLVM inlines them into the Swift kernels, built for
// the same target CPU (AVX-512 when the build's CPU has it, AVX2 otherwise; see Package.swift).
#ifndef AFFECT_SIMD_H
#define AFFECT_SIMD_H

#include <immintrin.h>

/// 16 floats, imported into Swift as `SIMD16<Float>`.
typedef float affect_float16 __attribute__((ext_vector_type(16)));

/// An approximation of 1/x in every lane: `vrcp14ps` (relative error < 2⁻¹⁴) with AVX-512, two `vrcpps`
/// (< 1.5·2⁻¹²) with AVX2. One Newton step on the result (in Swift) makes it about as close as a division,
/// at a fraction of a division's cost (`vdivps` issues once every 3.5–5 cycles on Zen 3/4).
static inline __attribute__((always_inline)) affect_float16 affect_rcp16(affect_float16 x) {
#if defined(__AVX512F__)
    return (affect_float16)_mm512_rcp14_ps((__m512)x);
#elif defined(__AVX__)
    __m256 lo = _mm256_rcp_ps((__m256)x.lo), hi = _mm256_rcp_ps((__m256)x.hi);
    return (affect_float16)__builtin_shufflevector((__v8sf)lo, (__v8sf)hi, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
#else
    return 1.0f / x;
#endif
}

/// Asks for the cache line holding `p` to be brought into L2 (`prefetcht1`) without waiting for it: the GEMM
/// fetches the next weight panel this way while the current one is in use.
static inline __attribute__((always_inline)) void affect_prefetch_l2(const void *p) {
    __builtin_prefetch(p, 0, 2);
}

#endif
