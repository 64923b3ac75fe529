// int8 × int8 → int32 matrix products for the `--precision int8` linear layers (AffectKernels/Ops/Int8Linear.swift).
//
// Swift cannot reliably make LLVM emit vpmaddubsw / vpmaddwd / vpdpbusd, so these few kernels are C with
// target attributes and a run-time choice between them. Everything else (quantisation policy, threading,
// the layer) stays in Swift.
//
// Both operands are symmetric int8 in [-127, 127] (never -128): weights per output channel, activations per row.
#ifndef AFFECT_INT8_H
#define AFFECT_INT8_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// The kernel families. `AFFECT_INT8_AUTO` asks for the best one the CPU runs.
enum {
    AFFECT_INT8_AUTO = -1,
    AFFECT_INT8_PORTABLE = 0,
    AFFECT_INT8_AVX2 = 1,
    AFFECT_INT8_VNNI = 2,
};

/// Columns per packed panel and k values per group: the packed weight holds, for each panel of 16 output
/// channels, the reduction axis in groups of 4, each group 16 channels × 4 bytes (64 bytes).
#define AFFECT_INT8_PANEL 16
#define AFFECT_INT8_KGROUP 4
/// The longest reduction the int32 sums hold without overflow (255 · 127 · k < 2³¹ with the VNNI offset).
#define AFFECT_INT8_MAX_K 65536

/// Whether this CPU (and this build) can run kernel `kind`.
int affect_int8_supported(int kind);
/// The kernel in use: the `AFFECT_INT8_KERNEL` environment variable (`portable`, `avx2` or `vnni`) when it names
/// one the CPU supports, else the best supported. Read once.
int affect_int8_kernel(void);
/// Forces kernel `kind` (or `AFFECT_INT8_AUTO`); returns 0 and changes nothing when the CPU cannot run it.
int affect_int8_set_kernel(int kind);

/// Bytes `affect_int8_pack` writes for an `n × k` weight.
size_t affect_int8_packed_size(int n, int k);

/// Packs a row-major `[n, k]` int8 weight into panels (zero-padded to a multiple of 16 channels and 4 k values)
/// and writes each channel's sum of weights to `colsum[0 ..< n rounded up to 16]` (the VNNI kernel's offset
/// compensation).
void affect_int8_pack(const int8_t *w, int n, int k, int8_t *packed, int32_t *colsum);

/// Quantises `m` rows of `k` floats symmetrically, one scale per row: `scale = max|x| / 127`,
/// `q = round_half_even(x · (127 / max|x|))`. Writes `q` to rows of `ldq` bytes (bytes `k ..< ldq` are zeroed)
/// and the scales to `scales[0 ..< m]`. An all-zero row gets scale 0 and zeros.
/// With `offset` non-zero each byte is stored as `q + 128` (unsigned; `q ^ 0x80`), the form the VNNI kernel reads.
void affect_int8_quantize_rows(const float *x, size_t ldx, int m, int k, int8_t *q, size_t ldq, float *scales,
                               int offset);

/// The same for the rows `x[i, kk] · mul[kk]` (`mul`: `k` factors, or NULL for none), the products rounded to
/// float first: an input scale (a squeeze-and-excitation) applied while quantising.
void affect_int8_quantize_rows_scaled(const float *x, size_t ldx, int m, int k, const float *mul, int8_t *q,
                                      size_t ldq, float *scales, int offset);

/// Quantises `m` rows asymmetrically to unsigned bytes, for 7-bit weights: per row `lo = min(0, min x)`,
/// `hi = max(0, max x)`, `scale = (hi − lo) / 255`, `zp = rint(−lo · 255 / (hi − lo))` and
/// `u = clamp(rint(x · 255 / (hi − lo)) + zp, 0, 255)` (NaN counts as 0), so `x ≈ scale · (u − zp)`. `mul` as in
/// `affect_int8_quantize_rows_scaled`. Bytes `k ..< ldq` are zeroed. A row without a finite range gets scale 0,
/// zero point 0 and zeros. ONNX Runtime's dynamic quantisation does the same (with 8-bit weights).
void affect_int8_quantize_rows_asymmetric(const float *x, size_t ldx, int m, int k, const float *mul, uint8_t *q,
                                          size_t ldq, float *scales, int32_t *zero_points);

/// Quantises an `[n, k]` weight per output channel to [-limit, limit] (1 ≤ limit ≤ 127): `scale = max|w| / limit`,
/// `q = round_half_even(w · (limit / max|w|))`, as `affect_int8_quantize_rows` with 127. Non-finite values give 0.
void affect_int8_quantize_weights(const float *w, int n, int k, int limit, int8_t *q, float *scales);

/// Whether kernel `kind` reads activations stored with the +128 offset fastest.
int affect_int8_prefers_offset(int kind);

/// The largest |weight| kernel `kind` multiplies at full speed: 63 for AVX2, 127 otherwise. Without VNNI the
/// fast product is `vpmaddubsw` on (a + 128) as unsigned bytes, whose int16 pair sums stay exact only for
/// 7-bit weights (2 · 255 · 63 < 2¹⁵); full int8 weights take the slower sign-trick kernel (also exact).
int affect_int8_weight_limit(int kind);

/// `C = A · Wᵀ` for rows `0 ..< m` and output channels `n0 ..< n1` (`n0` a multiple of 16, `n1 ≤ n`), with
/// kernel `kind` (`AFFECT_INT8_AUTO`: ``affect_int8_kernel``; an unsupported one falls back to portable).
///
/// `a`: `m` rows of `kp` = k rounded up to 4 quantised values (padded with zeros), `lda` bytes apart, stored with
/// the +128 offset when `a_offset` is non-zero. `weight_max`: the largest |weight| in `packed` (every kernel is
/// exact for any weights in [-127, 127]; AVX2 takes its faster kernel when this is at most 63).
/// With `zero_points` (one per row of `a`) the rows are instead the unsigned bytes of
/// `affect_int8_quantize_rows_asymmetric` and the sums are `Σ (u − zero_points[i]) · w` (`a_offset` is ignored).
/// With `c32` non-null the raw int32 sums are written there (`ldc` apart) and the float arguments are ignored.
/// Otherwise `out[i, j] = sum · rowScale[i] · colScale[j] + bias[j] + residual[i, j]` (bias and residual optional).
void affect_int8_gemm(int kind, int a_offset, int m, int n, int n0, int n1, int k, const int8_t *a, size_t lda,
                      const int8_t *packed, const int32_t *colsum, int weight_max, const int32_t *zero_points,
                      int32_t *c32, size_t ldc,
                      const float *rowScale, const float *colScale, const float *bias,
                      const float *residual, size_t ldr, float *out, size_t ldo);

#ifdef __cplusplus
}
#endif

#endif
