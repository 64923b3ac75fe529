// int8 GEMM kernels: portable C, AVX2 (vpmaddubsw / vpmaddwd: offset activations for 7-bit weights, the sign
// trick for full int8 weights) and AVX-512 VNNI (vpdpbusd), chosen at run time. See include/affect_int8.h for the contract; the plain Swift statement of the same
// product is `Reference.int8GEMM` (AffectKernels/Reference/ReferenceInt8.swift).
//
// Built with -ffp-contract=off: the float epilogue is `((float)sum · rowScale) · colScale + bias + residual`
// as separate roundings in every kernel, so all kernels (and every thread count) give identical outputs.
#include "affect_int8.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define AFFECT_X86 1
#endif

static inline int round_up(int v, int m) { return (v + m - 1) / m * m; }
static inline int min_int(int a, int b) { return a < b ? a : b; }

// MARK: - Kernel choice

int affect_int8_supported(int kind) {
    switch (kind) {
    case AFFECT_INT8_PORTABLE: return 1;
#if AFFECT_X86
    case AFFECT_INT8_AVX2: return __builtin_cpu_supports("avx2") ? 1 : 0;
    case AFFECT_INT8_VNNI:
#if defined(AFFECT_INT8_NO_VNNI)
        // A build for an AVX2 target (AFFECT_TARGET_CPU=haswell) keeps to the AVX2 kernel, so its test pass
        // covers that kernel on any host.
        return 0;
#else
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
            && __builtin_cpu_supports("avx512vnni") ? 1 : 0;
#endif
#endif
    default: return 0;
    }
}

static int best_kernel(void) {
    const char *env = getenv("AFFECT_INT8_KERNEL");
    if (env) {
        int want = -1;
        if (strcmp(env, "portable") == 0) want = AFFECT_INT8_PORTABLE;
        else if (strcmp(env, "avx2") == 0) want = AFFECT_INT8_AVX2;
        else if (strcmp(env, "vnni") == 0) want = AFFECT_INT8_VNNI;
        if (want >= 0 && affect_int8_supported(want)) return want;
    }
    if (affect_int8_supported(AFFECT_INT8_VNNI)) return AFFECT_INT8_VNNI;
    if (affect_int8_supported(AFFECT_INT8_AVX2)) return AFFECT_INT8_AVX2;
    return AFFECT_INT8_PORTABLE;
}

// -2: not chosen yet. Choosing twice at once is harmless (both threads compute the same value).
static _Atomic int chosen_kernel = -2;

int affect_int8_kernel(void) {
    int k = atomic_load(&chosen_kernel);
    if (k == -2) { k = best_kernel(); atomic_store(&chosen_kernel, k); }
    return k;
}

int affect_int8_set_kernel(int kind) {
    if (kind == AFFECT_INT8_AUTO) { atomic_store(&chosen_kernel, best_kernel()); return 1; }
    if (!affect_int8_supported(kind)) return 0;
    atomic_store(&chosen_kernel, kind);
    return 1;
}

// MARK: - Packing and quantisation

size_t affect_int8_packed_size(int n, int k) {
    return (size_t)round_up(n, AFFECT_INT8_PANEL) * (size_t)round_up(k, AFFECT_INT8_KGROUP);
}

void affect_int8_pack(const int8_t *w, int n, int k, int8_t *packed, int32_t *colsum) {
    const int kp = round_up(k, 4), np = round_up(n, 16);
    for (int p = 0; p < np / 16; p++) {
        int8_t *dst = packed + (size_t)p * 16 * kp;
        for (int g = 0; g < kp / 4; g++)
            for (int c = 0; c < 16; c++)
                for (int t = 0; t < 4; t++) {
                    const int col = p * 16 + c, kk = g * 4 + t;
                    dst[g * 64 + c * 4 + t] = (col < n && kk < k) ? w[(size_t)col * k + kk] : 0;
                }
    }
    for (int j = 0; j < np; j++) {
        int32_t s = 0;
        if (j < n) for (int kk = 0; kk < k; kk++) s += w[(size_t)j * k + kk];
        colsum[j] = s;
    }
}

// AVX2 too: its kernel for 7-bit weights reads (a + 128) as unsigned bytes, and the sign-trick kernel for full
// int8 weights undoes the offset with one xor per broadcast.
int affect_int8_prefers_offset(int kind) { return kind == AFFECT_INT8_VNNI || kind == AFFECT_INT8_AVX2; }

int affect_int8_weight_limit(int kind) { return kind == AFFECT_INT8_AVX2 ? 63 : 127; }

// One row: `x[kk] · mul[kk]` (mul optional) quantised by `inv`, written from column `from` on. The scalar statement of
// the contract, and the tail of the vector version.
// Every caller tests `mul` once and passes NULL or not as a constant, so each loop is compiled without the branch
// (a conditional load of `mul[kk]` became a masked load from address 0: a microcode assist per vector).
static inline __attribute__((always_inline))
void quantize_tail(const float *row, const float *mul, int from, int k, float inv, uint8_t flip, int8_t *qr) {
    for (int kk = from; kk < k; kk++) {
        float v = row[kk];
        if (mul) v = v * mul[kk];
        v = rintf(v * inv);
        v = v > 127.0f ? 127.0f : v;
        v = v < -127.0f ? -127.0f : v;
        v = v == v ? v : 0.0f;
        qr[kk] = (int8_t)((uint8_t)(int8_t)(int)v ^ flip);
    }
}

static inline float inverse_step(float mx) { return mx > 0 && isfinite(mx) ? 127.0f / mx : 0.0f; }
static inline float row_scale(float mx) { return mx > 0 && isfinite(mx) ? mx / 127.0f : 0.0f; }

static inline __attribute__((always_inline))
void quantize_rows_body(const float *x, size_t ldx, int m, int k, const float *mul, int8_t *q, size_t ldq,
                        float *scales, int offset) {
    const uint8_t flip = offset ? 0x80 : 0;
    for (int i = 0; i < m; i++) {
        const float *row = x + (size_t)i * ldx;
        int8_t *qr = q + (size_t)i * ldq;
        float mx = 0;
        for (int kk = 0; kk < k; kk++) { const float v = fabsf(mul ? row[kk] * mul[kk] : row[kk]); mx = v > mx ? v : mx; }
        quantize_tail(row, mul, 0, k, inverse_step(mx), flip, qr);
        if (ldq > (size_t)k) memset(qr + k, flip, ldq - (size_t)k);
        scales[i] = row_scale(mx);
    }
}

#if AFFECT_X86
// Eight values of a row, times their factors (if any) and the inverse step, rounded half to even, NaN → 0: the
// common first steps of both vector quantisers.
__attribute__((target("avx2,fma"))) static inline __attribute__((always_inline))
__m256 scaled_rounded8(const float *row, const float *mul, int kk, __m256 vinv) {
    __m256 v = _mm256_loadu_ps(row + kk);
    if (mul) v = _mm256_mul_ps(v, _mm256_loadu_ps(mul + kk));
    v = _mm256_round_ps(_mm256_mul_ps(v, vinv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    return _mm256_and_ps(v, _mm256_cmp_ps(v, v, _CMP_ORD_Q));
}

// Eight lanes at a time, the same bytes as the portable loop: the maximum ignores NaN (vmaxps returns its second
// operand when either is NaN), products round half to even (vroundps), NaN becomes 0 before the clamp, and four
// vectors of int32 pack to 32 bytes (vpackssdw, vpacksswb, then vpermd to undo the 128-bit lane interleave).
__attribute__((target("avx2,fma"))) static inline __attribute__((always_inline))
void quantize_rows_avx2_body(const float *x, size_t ldx, int m, int k, const float *mul, int8_t *q, size_t ldq,
                             float *scales, int offset) {
    const uint8_t flip = offset ? 0x80 : 0;
    const __m256 absMask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256 hi = _mm256_set1_ps(127.0f), lo = _mm256_set1_ps(-127.0f);
    const __m256i flipBytes = _mm256_set1_epi8((char)flip);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int i = 0; i < m; i++) {
        const float *row = x + (size_t)i * ldx;
        int8_t *qr = q + (size_t)i * ldq;
        __m256 vmx = _mm256_setzero_ps();
        int kk = 0;
        for (; kk + 8 <= k; kk += 8) {
            __m256 v = _mm256_loadu_ps(row + kk);
            if (mul) v = _mm256_mul_ps(v, _mm256_loadu_ps(mul + kk));
            vmx = _mm256_max_ps(_mm256_and_ps(v, absMask), vmx);
        }
        float lanes[8], mx = 0;
        _mm256_storeu_ps(lanes, vmx);
        for (int l = 0; l < 8; l++) mx = lanes[l] > mx ? lanes[l] : mx;
        for (; kk < k; kk++) { const float v = fabsf(mul ? row[kk] * mul[kk] : row[kk]); mx = v > mx ? v : mx; }
        const float inv = inverse_step(mx);
        const __m256 vinv = _mm256_set1_ps(inv);
        kk = 0;
        for (; kk + 32 <= k; kk += 32) {
            __m256i r[4];
            for (int t = 0; t < 4; t++) {
                const __m256 v = _mm256_min_ps(_mm256_max_ps(scaled_rounded8(row, mul, kk + 8 * t, vinv), lo), hi);
                r[t] = _mm256_cvtps_epi32(v);
            }
            __m256i b = _mm256_packs_epi16(_mm256_packs_epi32(r[0], r[1]), _mm256_packs_epi32(r[2], r[3]));
            b = _mm256_xor_si256(_mm256_permutevar8x32_epi32(b, order), flipBytes);
            _mm256_storeu_si256((__m256i *)(void *)(qr + kk), b);
        }
        quantize_tail(row, mul, kk, k, inv, flip, qr);
        if (ldq > (size_t)k) memset(qr + k, flip, ldq - (size_t)k);
        scales[i] = row_scale(mx);
    }
}

__attribute__((target("avx2,fma")))
static void quantize_rows_avx2(const float *x, size_t ldx, int m, int k, const float *mul, int8_t *q, size_t ldq,
                               float *scales, int offset) {
    if (mul) quantize_rows_avx2_body(x, ldx, m, k, mul, q, ldq, scales, offset);
    else quantize_rows_avx2_body(x, ldx, m, k, NULL, q, ldq, scales, offset);
}
#endif

static void quantize_rows_portable(const float *x, size_t ldx, int m, int k, const float *mul, int8_t *q, size_t ldq,
                                   float *scales, int offset) {
    if (mul) quantize_rows_body(x, ldx, m, k, mul, q, ldq, scales, offset);
    else quantize_rows_body(x, ldx, m, k, NULL, q, ldq, scales, offset);
}

void affect_int8_quantize_rows_scaled(const float *x, size_t ldx, int m, int k, const float *mul, int8_t *q,
                                      size_t ldq, float *scales, int offset) {
#if AFFECT_X86
    if (affect_int8_supported(AFFECT_INT8_AVX2)) { quantize_rows_avx2(x, ldx, m, k, mul, q, ldq, scales, offset); return; }
#endif
    quantize_rows_portable(x, ldx, m, k, mul, q, ldq, scales, offset);
}

void affect_int8_quantize_rows(const float *x, size_t ldx, int m, int k, int8_t *q, size_t ldq, float *scales,
                               int offset) {
    affect_int8_quantize_rows_scaled(x, ldx, m, k, NULL, q, ldq, scales, offset);
}

// MARK: - Asymmetric rows (for 7-bit weights)

// One row's range [lo, hi] ∋ 0 → the step's inverse 255 / (hi − lo) and the zero point rint(−lo · inv); a row
// without a usable range (all zeros, or an infinity) gets inv 0 and zero point 0: all its bytes are 0.
static inline void asymmetric_range(float lo, float hi, float *inv, float *scale, int32_t *zp) {
    const float span = hi - lo;
    if (!(span > 0) || !isfinite(span)) { *inv = 0; *scale = 0; *zp = 0; return; }
    *inv = 255.0f / span;
    *scale = span / 255.0f;
    float z = rintf(-lo * *inv);
    z = z > 255.0f ? 255.0f : z;
    z = z < 0.0f ? 0.0f : z;
    *zp = (int32_t)z;
}

static inline __attribute__((always_inline))
void asymmetric_tail(const float *row, const float *mul, int from, int k, float inv, float zp, uint8_t *qr) {
    for (int kk = from; kk < k; kk++) {
        float v = row[kk];
        if (mul) v = v * mul[kk];
        v = rintf(v * inv);
        v = v == v ? v : 0.0f;
        v = v + zp;
        v = v > 255.0f ? 255.0f : v;
        v = v < 0.0f ? 0.0f : v;
        qr[kk] = (uint8_t)(int)v;
    }
}

static inline __attribute__((always_inline))
void asymmetric_rows_body(const float *x, size_t ldx, int m, int k, const float *mul, uint8_t *q, size_t ldq,
                          float *scales, int32_t *zps) {
    for (int i = 0; i < m; i++) {
        const float *row = x + (size_t)i * ldx;
        float lo = 0, hi = 0;
        for (int kk = 0; kk < k; kk++) {
            const float v = mul ? row[kk] * mul[kk] : row[kk];
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        float inv, scale; int32_t zp;
        asymmetric_range(lo, hi, &inv, &scale, &zp);
        asymmetric_tail(row, mul, 0, k, inv, (float)zp, q + (size_t)i * ldq);
        if (ldq > (size_t)k) memset(q + (size_t)i * ldq + k, 0, ldq - (size_t)k);
        scales[i] = scale; zps[i] = zp;
    }
}

#if AFFECT_X86
// The same bytes eight lanes at a time: min/max ignore NaN (vminps/vmaxps return the second operand), the
// products round half to even, and 32 int32 lanes pack to unsigned bytes (vpackssdw, vpackuswb, vpermd).
__attribute__((target("avx2,fma"))) static inline __attribute__((always_inline))
void asymmetric_rows_avx2_body(const float *x, size_t ldx, int m, int k, const float *mul, uint8_t *q, size_t ldq,
                               float *scales, int32_t *zps) {
    const __m256 top = _mm256_set1_ps(255.0f), zero = _mm256_setzero_ps();
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int i = 0; i < m; i++) {
        const float *row = x + (size_t)i * ldx;
        uint8_t *qr = q + (size_t)i * ldq;
        __m256 vlo = zero, vhi = zero;
        int kk = 0;
        for (; kk + 8 <= k; kk += 8) {
            __m256 v = _mm256_loadu_ps(row + kk);
            if (mul) v = _mm256_mul_ps(v, _mm256_loadu_ps(mul + kk));
            vlo = _mm256_min_ps(v, vlo);
            vhi = _mm256_max_ps(v, vhi);
        }
        float ls[8], hs[8], lo = 0, hi = 0;
        _mm256_storeu_ps(ls, vlo); _mm256_storeu_ps(hs, vhi);
        for (int l = 0; l < 8; l++) { lo = ls[l] < lo ? ls[l] : lo; hi = hs[l] > hi ? hs[l] : hi; }
        for (; kk < k; kk++) {
            const float v = mul ? row[kk] * mul[kk] : row[kk];
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        float inv, scale; int32_t zp;
        asymmetric_range(lo, hi, &inv, &scale, &zp);
        const __m256 vinv = _mm256_set1_ps(inv), vzp = _mm256_set1_ps((float)zp);
        kk = 0;
        for (; kk + 32 <= k; kk += 32) {
            __m256i r[4];
            for (int t = 0; t < 4; t++) {
                __m256 v = _mm256_add_ps(scaled_rounded8(row, mul, kk + 8 * t, vinv), vzp);
                v = _mm256_max_ps(_mm256_min_ps(v, top), zero);
                r[t] = _mm256_cvtps_epi32(v);
            }
            __m256i b = _mm256_packus_epi16(_mm256_packs_epi32(r[0], r[1]), _mm256_packs_epi32(r[2], r[3]));
            _mm256_storeu_si256((__m256i *)(void *)(qr + kk), _mm256_permutevar8x32_epi32(b, order));
        }
        asymmetric_tail(row, mul, kk, k, inv, (float)zp, qr);
        if (ldq > (size_t)k) memset(qr + k, 0, ldq - (size_t)k);
        scales[i] = scale; zps[i] = zp;
    }
}

__attribute__((target("avx2,fma")))
static void asymmetric_rows_avx2(const float *x, size_t ldx, int m, int k, const float *mul, uint8_t *q, size_t ldq,
                                 float *scales, int32_t *zps) {
    if (mul) asymmetric_rows_avx2_body(x, ldx, m, k, mul, q, ldq, scales, zps);
    else asymmetric_rows_avx2_body(x, ldx, m, k, NULL, q, ldq, scales, zps);
}
#endif

void affect_int8_quantize_rows_asymmetric(const float *x, size_t ldx, int m, int k, const float *mul, uint8_t *q,
                                          size_t ldq, float *scales, int32_t *zero_points) {
#if AFFECT_X86
    if (affect_int8_supported(AFFECT_INT8_AVX2)) { asymmetric_rows_avx2(x, ldx, m, k, mul, q, ldq, scales, zero_points); return; }
#endif
    if (mul) asymmetric_rows_body(x, ldx, m, k, mul, q, ldq, scales, zero_points);
    else asymmetric_rows_body(x, ldx, m, k, NULL, q, ldq, scales, zero_points);
}

// Weights, once at load: the same rounding as the rows, to `limit` steps either side of zero.
void affect_int8_quantize_weights(const float *w, int n, int k, int limit, int8_t *q, float *scales) {
    const float l = (float)limit;
    for (int i = 0; i < n; i++) {
        const float *row = w + (size_t)i * k;
        int8_t *qr = q + (size_t)i * k;
        float mx = 0;
        for (int kk = 0; kk < k; kk++) { const float v = fabsf(row[kk]); mx = v > mx ? v : mx; }
        const int usable = mx > 0 && isfinite(mx);
        const float inv = usable ? l / mx : 0.0f;
        for (int kk = 0; kk < k; kk++) {
            float v = rintf(row[kk] * inv);
            v = v > l ? l : v;
            v = v < -l ? -l : v;
            v = v == v ? v : 0.0f;
            qr[kk] = (int8_t)(int)v;
        }
        scales[i] = usable ? mx / l : 0.0f;
    }
}

// MARK: - Epilogue

typedef struct {
    int32_t *c32; size_t ldc;
    const float *rowScale, *colScale, *bias, *residual; size_t ldr;
    float *out; size_t ldo;
} Epilogue;

static inline float dequantize(const Epilogue *e, int32_t s, int i, int j) {
    float f = (float)s * e->rowScale[i];
    f = f * e->colScale[j];
    if (e->bias) f = f + e->bias[j];
    if (e->residual) f = f + e->residual[(size_t)i * e->ldr + j];
    return f;
}

static inline void store_scalar(const Epilogue *e, const int32_t *sums, int count, int i, int j) {
    if (e->c32) { for (int c = 0; c < count; c++) e->c32[(size_t)i * e->ldc + j + c] = sums[c]; return; }
    for (int c = 0; c < count; c++) e->out[(size_t)i * e->ldo + j + c] = dequantize(e, sums[c], i, j + c);
}

// MARK: - Portable

// With zero points, `a` holds unsigned bytes u and the product is Σ (u − zp[i]) · w = Σ u · w − zp[i] · Σ w.
static void gemm_portable(int m, int n0, int n1, int kp, const int8_t *a, size_t lda, uint8_t flip,
                          const int32_t *zero_points, const int32_t *colsum, const int8_t *packed, const Epilogue *e) {
    for (int j0 = n0; j0 < n1; j0 += 16) {
        const int8_t *bp = packed + (size_t)(j0 / 16) * 16 * kp;
        const int cols = min_int(16, n1 - j0);
        for (int i = 0; i < m; i++) {
            int32_t acc[16] = {0};
            const int8_t *ar = a + (size_t)i * lda;
            for (int g = 0; g < kp / 4; g++) {
                const int8_t *bg = bp + (size_t)g * 64;
                for (int c = 0; c < 16; c++)
                    for (int t = 0; t < 4; t++) {
                        const uint8_t byte = (uint8_t)ar[g * 4 + t];
                        const int32_t v = zero_points ? (int32_t)byte : (int32_t)(int8_t)(byte ^ flip);
                        acc[c] += v * (int32_t)bg[c * 4 + t];
                    }
            }
            if (zero_points) for (int c = 0; c < 16; c++) acc[c] -= zero_points[i] * colsum[j0 + c];
            store_scalar(e, acc, cols, i, j0);
        }
    }
}

#if AFFECT_X86

static inline int32_t load_group(const int8_t *p) { int32_t v; memcpy(&v, p, 4); return v; }

// MARK: - AVX2: |a| · sign(b, a) with vpmaddubsw (pairs ≤ 2 · 127 · 127, no int16 saturation), vpmaddwd by ones.

#define AVX2_FN __attribute__((target("avx2,fma")))

AVX2_FN static inline __attribute__((always_inline))
void avx2_store(const Epilogue *e, __m256i s, int i, int j, int cols) {
    if (cols == 8) {
        if (e->c32) { _mm256_storeu_si256((__m256i *)(e->c32 + (size_t)i * e->ldc + j), s); return; }
        __m256 f = _mm256_mul_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(e->rowScale[i]));
        f = _mm256_mul_ps(f, _mm256_loadu_ps(e->colScale + j));
        if (e->bias) f = _mm256_add_ps(f, _mm256_loadu_ps(e->bias + j));
        if (e->residual) f = _mm256_add_ps(f, _mm256_loadu_ps(e->residual + (size_t)i * e->ldr + j));
        _mm256_storeu_ps(e->out + (size_t)i * e->ldo + j, f);
    } else if (cols > 0) {
        int32_t tmp[8];
        _mm256_storeu_si256((__m256i *)tmp, s);
        store_scalar(e, tmp, cols, i, j);
    }
}

AVX2_FN static inline __attribute__((always_inline))
void avx2_tile(const int R, int kp, const int8_t *a, size_t lda, int32_t flip, const int8_t *b, int i0, int j0,
               int jend, const Epilogue *e) {
    __m256i acc[4][2];
    for (int r = 0; r < R; r++) { acc[r][0] = _mm256_setzero_si256(); acc[r][1] = _mm256_setzero_si256(); }
    const __m256i ones = _mm256_set1_epi16(1);
    for (int g = 0; g < kp / 4; g++) {
        const __m256i b0 = _mm256_loadu_si256((const __m256i *)(b + (size_t)g * 64));
        const __m256i b1 = _mm256_loadu_si256((const __m256i *)(b + (size_t)g * 64 + 32));
        for (int r = 0; r < R; r++) {
            const __m256i va = _mm256_set1_epi32(load_group(a + (size_t)r * lda + g * 4) ^ flip);
            const __m256i aa = _mm256_abs_epi8(va);
            acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(_mm256_maddubs_epi16(aa, _mm256_sign_epi8(b0, va)), ones));
            acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(_mm256_maddubs_epi16(aa, _mm256_sign_epi8(b1, va)), ones));
        }
    }
    const int cols = jend - j0;
    for (int r = 0; r < R; r++) {
        avx2_store(e, acc[r][0], i0 + r, j0, min_int(8, cols));
        avx2_store(e, acc[r][1], i0 + r, j0 + 8, min_int(8, cols - 8));
    }
}

// MARK: - AVX2, weights in [-63, 63]: vpmaddubsw on (a + 128) as unsigned bytes, minus 128 · Σw per channel.
//
// A pair (a₁ + 128)·w₁ + (a₂ + 128)·w₂ is at most 2 · 255 · 63 = 32130 in magnitude: vpmaddubsw never saturates,
// and the sums are exact, as in the VNNI kernel. Per row and 4 × 16 multiply-adds: one broadcast, vpmaddubsw,
// vpmaddwd and vpaddd per 8 channels, against the sign trick's extra vpabsb and vpsignb (and ONNX Runtime's
// U8S8 kernel does the same three, on full 8-bit weights, saturating).

AVX2_FN static inline __attribute__((always_inline))
void avx2_tile_narrow(const int R, const int offset, int kp, const int8_t *a, size_t lda, const int8_t *b,
                      const int32_t *colsum, const int32_t *zero_points, int i0, int j0, int jend, const Epilogue *e) {
    __m256i acc[4][2];
    for (int r = 0; r < R; r++) { acc[r][0] = _mm256_setzero_si256(); acc[r][1] = _mm256_setzero_si256(); }
    const __m256i ones = _mm256_set1_epi16(1);
    for (int g = 0; g < kp / 4; g++) {
        const __m256i b0 = _mm256_loadu_si256((const __m256i *)(b + (size_t)g * 64));
        const __m256i b1 = _mm256_loadu_si256((const __m256i *)(b + (size_t)g * 64 + 32));
        for (int r = 0; r < R; r++) {
            const int32_t group = load_group(a + (size_t)r * lda + g * 4);
            const __m256i va = _mm256_set1_epi32(offset ? group : group ^ (int32_t)0x80808080u);
            acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(_mm256_maddubs_epi16(va, b0), ones));
            acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(_mm256_maddubs_epi16(va, b1), ones));
        }
    }
    // colsum is padded to whole panels: both loads are in bounds. The offset is 128, or each row's zero point.
    const __m256i cs0 = _mm256_loadu_si256((const __m256i *)(colsum + j0));
    const __m256i cs1 = _mm256_loadu_si256((const __m256i *)(colsum + j0 + 8));
    const int cols = jend - j0;
    for (int r = 0; r < R; r++) {
        const __m256i z = _mm256_set1_epi32(zero_points ? zero_points[r] : 128);
        avx2_store(e, _mm256_sub_epi32(acc[r][0], _mm256_mullo_epi32(cs0, z)), i0 + r, j0, min_int(8, cols));
        avx2_store(e, _mm256_sub_epi32(acc[r][1], _mm256_mullo_epi32(cs1, z)), i0 + r, j0 + 8, min_int(8, cols - 8));
    }
}

#define AVX2_NARROW(R) { const int32_t *zr = zero_points ? zero_points + i : NULL; \
    if (a_offset || zr) avx2_tile_narrow(R, 1, kp, a + (size_t)i * lda, lda, b, colsum, zr, i, j0, jend, e); \
    else avx2_tile_narrow(R, 0, kp, a + (size_t)i * lda, lda, b, colsum, NULL, i, j0, jend, e); }

AVX2_FN static void gemm_avx2(int m, int n0, int n1, int kp, const int8_t *a, size_t lda, int a_offset, int narrow,
                              const int32_t *zero_points, const int8_t *packed, const int32_t *colsum,
                              const Epilogue *e) {
    const int32_t flip = a_offset ? (int32_t)0x80808080u : 0;
    for (int j0 = n0; j0 < n1; j0 += 16) {
        const int8_t *b = packed + (size_t)(j0 / 16) * 16 * kp;
        const int jend = min_int(j0 + 16, n1);
        int i = 0;
        if (narrow) {
            for (; i + 4 <= m; i += 4) { AVX2_NARROW(4) }
            switch (m - i) {
            case 3: AVX2_NARROW(3) break;
            case 2: AVX2_NARROW(2) break;
            case 1: AVX2_NARROW(1) break;
            default: break;
            }
            continue;
        }
        for (; i + 4 <= m; i += 4) avx2_tile(4, kp, a + (size_t)i * lda, lda, flip, b, i, j0, jend, e);
        switch (m - i) {
        case 3: avx2_tile(3, kp, a + (size_t)i * lda, lda, flip, b, i, j0, jend, e); break;
        case 2: avx2_tile(2, kp, a + (size_t)i * lda, lda, flip, b, i, j0, jend, e); break;
        case 1: avx2_tile(1, kp, a + (size_t)i * lda, lda, flip, b, i, j0, jend, e); break;
        default: break;
        }
    }
}

// MARK: - AVX-512 VNNI: vpdpbusd on (a + 128) as unsigned bytes, minus 128 · Σw per channel.

#if !defined(AFFECT_INT8_NO_VNNI)
#define VNNI_FN __attribute__((target("avx512f,avx512bw,avx512vnni")))

VNNI_FN static inline __attribute__((always_inline))
void vnni_tile(const int R, const int P, const int offset, int kp, const int8_t *a, size_t lda, const int8_t *b,
               size_t pstride, const int32_t *colsum, const int32_t *zero_points, int i0, int j0, int jend,
               const Epilogue *e) {
    __m512i acc[6][4];
    for (int r = 0; r < R; r++) for (int p = 0; p < P; p++) acc[r][p] = _mm512_setzero_si512();
    for (int g = 0; g < kp / 4; g++) {
        __m512i bv[4];
        for (int p = 0; p < P; p++) bv[p] = _mm512_loadu_si512((const void *)(b + p * pstride + (size_t)g * 64));
        for (int r = 0; r < R; r++) {
            // a + 128 ∈ [1, 255]: stored so by the quantiser (a broadcast straight from memory), or flipped here.
            const int32_t group = load_group(a + (size_t)r * lda + g * 4);
            const __m512i va = _mm512_set1_epi32(offset ? group : group ^ (int32_t)0x80808080u);
            for (int p = 0; p < P; p++) acc[r][p] = _mm512_dpbusd_epi32(acc[r][p], va, bv[p]);
        }
    }
    for (int p = 0; p < P; p++) {
        const int j = j0 + p * 16;
        const int cols = min_int(16, jend - j);
        if (cols <= 0) break;
        const __mmask16 mask = cols == 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << cols) - 1);
        // colsum is padded to whole panels: a full load is in bounds.
        const __m512i wsum = _mm512_loadu_si512((const void *)(colsum + j));
        const __m512i comp = _mm512_slli_epi32(wsum, 7);
        __m512 cs = _mm512_setzero_ps(), bias = _mm512_setzero_ps();
        if (!e->c32) {
            cs = _mm512_maskz_loadu_ps(mask, e->colScale + j);
            if (e->bias) bias = _mm512_maskz_loadu_ps(mask, e->bias + j);
        }
        for (int r = 0; r < R; r++) {
            const int i = i0 + r;
            // The offset is 128, or the row's zero point (unsigned bytes u: Σ (u − zp) · w).
            const __m512i s = _mm512_sub_epi32(acc[r][p], zero_points
                ? _mm512_mullo_epi32(wsum, _mm512_set1_epi32(zero_points[r])) : comp);
            if (e->c32) { _mm512_mask_storeu_epi32(e->c32 + (size_t)i * e->ldc + j, mask, s); continue; }
            __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(s), _mm512_set1_ps(e->rowScale[i]));
            f = _mm512_mul_ps(f, cs);
            if (e->bias) f = _mm512_add_ps(f, bias);
            if (e->residual) f = _mm512_add_ps(f, _mm512_maskz_loadu_ps(mask, e->residual + (size_t)i * e->ldr + j));
            _mm512_mask_storeu_ps(e->out + (size_t)i * e->ldo + j, mask, f);
        }
    }
}

#define VNNI_CASE(R, P) case (R) * 8 + (P): \
    if (zero_points) vnni_tile(R, P, 1, kp, ar, lda, b, pstride, colsum, zero_points + i, i, j0, jend, e); \
    else if (a_offset) vnni_tile(R, P, 1, kp, ar, lda, b, pstride, colsum, NULL, i, j0, jend, e); \
    else vnni_tile(R, P, 0, kp, ar, lda, b, pstride, colsum, NULL, i, j0, jend, e); \
    break;
#define VNNI_ROW(R) VNNI_CASE(R, 1) VNNI_CASE(R, 2) VNNI_CASE(R, 3) VNNI_CASE(R, 4)

VNNI_FN static void gemm_vnni(int m, int n0, int n1, int kp, const int8_t *a, size_t lda, int a_offset,
                              const int32_t *zero_points, const int8_t *packed, const int32_t *colsum,
                              const Epilogue *e) {
    const size_t pstride = (size_t)16 * kp;
    // 6 rows × 4 panels (64 channels): 24 accumulators, 4 weight vectors and the broadcast in 32 registers.
    for (int j0 = n0; j0 < n1; j0 += 64) {
        const int jend = min_int(j0 + 64, n1);
        const int P = (jend - j0 + 15) / 16;
        const int8_t *b = packed + (size_t)(j0 / 16) * pstride;
        for (int i = 0; i < m; i += 6) {
            const int R = min_int(6, m - i);
            const int8_t *ar = a + (size_t)i * lda;
            switch (R * 8 + P) {
            VNNI_ROW(1) VNNI_ROW(2) VNNI_ROW(3) VNNI_ROW(4) VNNI_ROW(5) VNNI_ROW(6)
            default: break;
            }
        }
    }
}
#endif
#endif

void affect_int8_gemm(int kind, int a_offset, int m, int n, int n0, int n1, int k, const int8_t *a, size_t lda,
                      const int8_t *packed, const int32_t *colsum, int weight_max, const int32_t *zero_points,
                      int32_t *c32, size_t ldc,
                      const float *rowScale, const float *colScale, const float *bias,
                      const float *residual, size_t ldr, float *out, size_t ldo) {
    if (m <= 0 || n1 <= n0 || n0 % 16 != 0 || n1 > n) return;
    const int kp = round_up(k, 4);
    const Epilogue e = { c32, ldc, rowScale, colScale, bias, residual, ldr, out, ldo };
    if (kind == AFFECT_INT8_AUTO) kind = affect_int8_kernel();
    if (!affect_int8_supported(kind)) kind = AFFECT_INT8_PORTABLE;
    switch (kind) {
#if AFFECT_X86
#if !defined(AFFECT_INT8_NO_VNNI)
    case AFFECT_INT8_VNNI: gemm_vnni(m, n0, n1, kp, a, lda, a_offset, zero_points, packed, colsum, &e); return;
#endif
    case AFFECT_INT8_AVX2:
        // Unsigned bytes times full int8 weights can saturate vpmaddubsw: that pairing runs portable.
        if (zero_points && weight_max > 63) break;
        gemm_avx2(m, n0, n1, kp, a, lda, a_offset, weight_max <= 63, zero_points, packed, colsum, &e);
        return;
#endif
    default: break;
    }
    gemm_portable(m, n0, n1, kp, a, lda, a_offset ? 0x80 : 0, zero_points, colsum, packed, &e);
}
