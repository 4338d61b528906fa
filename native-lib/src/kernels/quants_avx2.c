/*
 * quants_avx2.c — AVX2/FMA/F16C versions of the hot dot kernels (float
 * rows, Q8_0, Q4_0, Q2_K, Q4_K, Q5_K, Q6_K, IQ2_XXS, IQ2_XS, IQ4_XS).
 * Compiled with -mavx2 -mfma -mf16c and only reached through the pointers
 * that ds4j_quants_init() installs after a CPUID check.
 *
 * Decode is a matrix-vector product, so each kernel reads every weight byte
 * exactly once: weights are unpacked in registers to unsigned bytes,
 * multiplied with the signed activation bytes (maddubs), weighted by the
 * sub-block scales in 16-bit lanes, and accumulated in 32-bit integers for
 * the whole super-block before one float multiply-add.
 */
#include <immintrin.h>
#include <string.h>

#include "quants.h"
#include "quants_impl.h"
#include "quants_iq_tables.h"

static inline float hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline int32_t hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

static inline float f16(uint16_t h) { return _cvtsh_ss(h); }

/* ------------------------------------------------------------ float rows */

float ds4j_dot_f32_avx2(const void *w, const void *a, int64_t n) {
    const float *x = w, *y = a;
    __m256 c0 = _mm256_setzero_ps(), c1 = c0, c2 = c0, c3 = c0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        c0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), c0);
        c1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8), c1);
        c2 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 16), _mm256_loadu_ps(y + i + 16), c2);
        c3 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 24), _mm256_loadu_ps(y + i + 24), c3);
    }
    for (; i + 8 <= n; i += 8) c0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), c0);
    float s = hsum_ps(_mm256_add_ps(_mm256_add_ps(c0, c1), _mm256_add_ps(c2, c3)));
    for (; i < n; i++) s += x[i] * y[i];
    return s;
}

static inline __m256 load_f16x8(const uint16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }
static inline __m256 load_bf16x8(const uint16_t *p) {
    __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

float ds4j_dot_f16_avx2(const void *w, const void *a, int64_t n) {
    const uint16_t *x = w;
    const float *y = a;
    __m256 c0 = _mm256_setzero_ps(), c1 = c0, c2 = c0, c3 = c0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        c0 = _mm256_fmadd_ps(load_f16x8(x + i), _mm256_loadu_ps(y + i), c0);
        c1 = _mm256_fmadd_ps(load_f16x8(x + i + 8), _mm256_loadu_ps(y + i + 8), c1);
        c2 = _mm256_fmadd_ps(load_f16x8(x + i + 16), _mm256_loadu_ps(y + i + 16), c2);
        c3 = _mm256_fmadd_ps(load_f16x8(x + i + 24), _mm256_loadu_ps(y + i + 24), c3);
    }
    for (; i + 8 <= n; i += 8) c0 = _mm256_fmadd_ps(load_f16x8(x + i), _mm256_loadu_ps(y + i), c0);
    float s = hsum_ps(_mm256_add_ps(_mm256_add_ps(c0, c1), _mm256_add_ps(c2, c3)));
    for (; i < n; i++) s += f16(x[i]) * y[i];
    return s;
}

float ds4j_dot_bf16_avx2(const void *w, const void *a, int64_t n) {
    const uint16_t *x = w;
    const float *y = a;
    __m256 c0 = _mm256_setzero_ps(), c1 = c0, c2 = c0, c3 = c0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        c0 = _mm256_fmadd_ps(load_bf16x8(x + i), _mm256_loadu_ps(y + i), c0);
        c1 = _mm256_fmadd_ps(load_bf16x8(x + i + 8), _mm256_loadu_ps(y + i + 8), c1);
        c2 = _mm256_fmadd_ps(load_bf16x8(x + i + 16), _mm256_loadu_ps(y + i + 16), c2);
        c3 = _mm256_fmadd_ps(load_bf16x8(x + i + 24), _mm256_loadu_ps(y + i + 24), c3);
    }
    for (; i + 8 <= n; i += 8) c0 = _mm256_fmadd_ps(load_bf16x8(x + i), _mm256_loadu_ps(y + i), c0);
    float s = hsum_ps(_mm256_add_ps(_mm256_add_ps(c0, c1), _mm256_add_ps(c2, c3)));
    for (; i < n; i++) s += ds4j_bf16_to_f32(x[i]) * y[i];
    return s;
}

void ds4j_f16_to_f32_row_avx2(const void *src, float *dst, int64_t n) {
    const uint16_t *x = src;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, load_f16x8(x + i));
    for (; i < n; i++) dst[i] = f16(x[i]);
}

/* ------------------------------------------------------------ Q8_0/Q4_0 */

/* Sum of 32 signed-byte products as 8 int32 lanes. maddubs needs an
 * unsigned left operand, so move the sign of x onto y first. */
static inline __m256i dot_i8x32(__m256i x, __m256i y) {
    __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

float ds4j_dot_q8_0_avx2(const void *w, const void *a, int64_t n) {
    const blk_q8_0 *x = w, *y = a;
    const int64_t nb = n / QK8_0;
    __m256 c0 = _mm256_setzero_ps(), c1 = c0;
    int64_t i = 0;
    for (; i + 2 <= nb; i += 2) {
        __m256i p0 = dot_i8x32(_mm256_loadu_si256((const __m256i *)x[i].qs), _mm256_loadu_si256((const __m256i *)y[i].qs));
        __m256i p1 = dot_i8x32(_mm256_loadu_si256((const __m256i *)x[i + 1].qs),
                               _mm256_loadu_si256((const __m256i *)y[i + 1].qs));
        c0 = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[i].d) * f16(y[i].d)), _mm256_cvtepi32_ps(p0), c0);
        c1 = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[i + 1].d) * f16(y[i + 1].d)), _mm256_cvtepi32_ps(p1), c1);
    }
    for (; i < nb; i++) {
        __m256i p0 = dot_i8x32(_mm256_loadu_si256((const __m256i *)x[i].qs), _mm256_loadu_si256((const __m256i *)y[i].qs));
        c0 = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[i].d) * f16(y[i].d)), _mm256_cvtepi32_ps(p0), c0);
    }
    return hsum_ps(_mm256_add_ps(c0, c1));
}

/* Q8_0 row against up to 4 tokens: the |w| bytes are computed once per
 * block; each token keeps the two alternating accumulators of the
 * single-token kernel, so every result is bit-identical to it. */
static inline __attribute__((always_inline)) void mdot_q8_0_nt(const blk_q8_0 *x, const uint8_t *a, int64_t a_stride,
                                                               int64_t nb, const int NT, float *out, int64_t out_stride) {
    const blk_q8_0 *y[DS4J_MDOT_MAX];
    __m256 c0[DS4J_MDOT_MAX], c1[DS4J_MDOT_MAX];
    for (int t = 0; t < NT; t++) {
        y[t] = (const blk_q8_0 *)(a + t * a_stride);
        c0[t] = c1[t] = _mm256_setzero_ps();
    }
    const __m256i ones = _mm256_set1_epi16(1);
    int64_t i = 0;
    for (; i + 2 <= nb; i += 2) {
        __m256i x0 = _mm256_loadu_si256((const __m256i *)x[i].qs), x1 = _mm256_loadu_si256((const __m256i *)x[i + 1].qs);
        __m256i a0 = _mm256_sign_epi8(x0, x0), a1 = _mm256_sign_epi8(x1, x1);
        float d0 = f16(x[i].d), d1 = f16(x[i + 1].d);
        for (int t = 0; t < NT; t++) {
            __m256i p0 = _mm256_madd_epi16(
                _mm256_maddubs_epi16(a0, _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)y[t][i].qs), x0)), ones);
            __m256i p1 = _mm256_madd_epi16(
                _mm256_maddubs_epi16(a1, _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)y[t][i + 1].qs), x1)), ones);
            c0[t] = _mm256_fmadd_ps(_mm256_set1_ps(d0 * f16(y[t][i].d)), _mm256_cvtepi32_ps(p0), c0[t]);
            c1[t] = _mm256_fmadd_ps(_mm256_set1_ps(d1 * f16(y[t][i + 1].d)), _mm256_cvtepi32_ps(p1), c1[t]);
        }
    }
    for (; i < nb; i++) {
        __m256i x0 = _mm256_loadu_si256((const __m256i *)x[i].qs);
        for (int t = 0; t < NT; t++) {
            __m256i p0 = dot_i8x32(x0, _mm256_loadu_si256((const __m256i *)y[t][i].qs));
            c0[t] = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[i].d) * f16(y[t][i].d)), _mm256_cvtepi32_ps(p0), c0[t]);
        }
    }
    for (int t = 0; t < NT; t++) out[t * out_stride] = hsum_ps(_mm256_add_ps(c0[t], c1[t]));
}

/* Q8_0 row against up to 4 tokens: the |w| bytes are computed once per
 * block; each token keeps the two alternating accumulators of the
 * single-token kernel, so every result is bit-identical to it. The token
 * count is a compile-time constant in each branch so the per-token state
 * lives in registers. */
void ds4j_mdot_q8_0_avx2(const void *w, const void *a, int64_t a_stride, int64_t n, int ntok, float *out,
                         int64_t out_stride) {
    const blk_q8_0 *x = w;
    const uint8_t *ab = a;
    const int64_t nb = n / QK8_0;
    switch (ntok) {
    case 4: mdot_q8_0_nt(x, ab, a_stride, nb, 4, out, out_stride); break;
    case 3: mdot_q8_0_nt(x, ab, a_stride, nb, 3, out, out_stride); break;
    case 2: mdot_q8_0_nt(x, ab, a_stride, nb, 2, out, out_stride); break;
    default:
        for (int t = 0; t < ntok; t++) out[t * out_stride] = ds4j_dot_q8_0_avx2(w, ab + t * a_stride, n);
    }
}

/* F16 row against up to 2 tokens (4 accumulators each, as in the single
 * kernel): each 8-weight conversion is shared. Bit-identical results. */
void ds4j_mdot_f16_avx2(const void *w, const void *a, int64_t a_stride, int64_t n, int ntok, float *out,
                        int64_t out_stride) {
    const uint16_t *x = w;
    for (int t0 = 0; t0 < ntok; t0 += 2) {
        const float *y0 = (const float *)((const uint8_t *)a + t0 * a_stride);
        if (t0 + 1 >= ntok) {
            out[t0 * out_stride] = ds4j_dot_f16_avx2(w, y0, n);
            break;
        }
        const float *y1 = (const float *)((const uint8_t *)a + (t0 + 1) * a_stride);
        __m256 c0 = _mm256_setzero_ps(), c1 = c0, c2 = c0, c3 = c0, e0 = c0, e1 = c0, e2 = c0, e3 = c0;
        int64_t i = 0;
        for (; i + 32 <= n; i += 32) {
            __m256 w0 = load_f16x8(x + i), w1 = load_f16x8(x + i + 8), w2 = load_f16x8(x + i + 16), w3 = load_f16x8(x + i + 24);
            c0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(y0 + i), c0);
            c1 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(y0 + i + 8), c1);
            c2 = _mm256_fmadd_ps(w2, _mm256_loadu_ps(y0 + i + 16), c2);
            c3 = _mm256_fmadd_ps(w3, _mm256_loadu_ps(y0 + i + 24), c3);
            e0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(y1 + i), e0);
            e1 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(y1 + i + 8), e1);
            e2 = _mm256_fmadd_ps(w2, _mm256_loadu_ps(y1 + i + 16), e2);
            e3 = _mm256_fmadd_ps(w3, _mm256_loadu_ps(y1 + i + 24), e3);
        }
        for (; i + 8 <= n; i += 8) {
            __m256 w0 = load_f16x8(x + i);
            c0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(y0 + i), c0);
            e0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(y1 + i), e0);
        }
        float s0 = hsum_ps(_mm256_add_ps(_mm256_add_ps(c0, c1), _mm256_add_ps(c2, c3)));
        float s1 = hsum_ps(_mm256_add_ps(_mm256_add_ps(e0, e1), _mm256_add_ps(e2, e3)));
        for (; i < n; i++) {
            s0 += f16(x[i]) * y0[i];
            s1 += f16(x[i]) * y1[i];
        }
        out[t0 * out_stride] = s0;
        out[(t0 + 1) * out_stride] = s1;
    }
}

float ds4j_dot_q4_0_avx2(const void *w, const void *a, int64_t n) {
    const blk_q4_0 *x = w;
    const blk_q8_0 *y = a;
    const int64_t nb = n / QK4_0;
    const __m256i m4 = _mm256_set1_epi8(0x0F), off = _mm256_set1_epi8(8);
    __m256 c0 = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        __m128i t = _mm_loadu_si128((const __m128i *)x[i].qs);
        __m256i q = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t), m4);
        q = _mm256_sub_epi8(q, off);
        __m256i p = dot_i8x32(q, _mm256_loadu_si256((const __m256i *)y[i].qs));
        c0 = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[i].d) * f16(y[i].d)), _mm256_cvtepi32_ps(p), c0);
    }
    return hsum_ps(c0);
}

/* ------------------------------------------------------------------ Q4_K */

float ds4j_dot_q4_K_avx2(const void *w, const void *a, int64_t n) {
    const blk_q4_K *x = w;
    const blk_q8_K *y = a;
    const int64_t nb = n / QK_K;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256 acc = _mm256_setzero_ps();
    float acc_m = 0;
    for (int64_t i = 0; i < nb; i++) {
        /* unpack the eight 6-bit scales and mins with word arithmetic */
        uint32_t u[3];
        memcpy(u, x[i].scales, 12);
        uint32_t sc_w[2] = {u[0] & 0x3F3F3F3Fu, (u[2] & 0x0F0F0F0Fu) | ((u[0] >> 2) & 0x30303030u)};
        uint32_t mn_w[2] = {u[1] & 0x3F3F3F3Fu, ((u[2] >> 4) & 0x0F0F0F0Fu) | ((u[1] >> 2) & 0x30303030u)};
        uint8_t sc[8], mn[8];
        memcpy(sc, sc_w, 8);
        memcpy(mn, mn_w, 8);

        /* mins: sum_j mn[j] * (bsums[2j] + bsums[2j+1]) */
        __m128i mn16 = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)mn));
        __m256i mn_pairs = _mm256_set_m128i(_mm_unpackhi_epi16(mn16, mn16), _mm_unpacklo_epi16(mn16, mn16));
        __m256i bs = _mm256_loadu_si256((const __m256i *)y[i].bsums);
        int32_t summ = hsum_epi32(_mm256_madd_epi16(mn_pairs, bs));

        const uint8_t *q4 = x[i].qs;
        const int8_t *q8 = y[i].qs;
        __m256i isum = _mm256_setzero_si256();
        for (int c = 0; c < 4; c++) {
            __m256i q = _mm256_loadu_si256((const __m256i *)(q4 + 32 * c));
            __m256i lo = _mm256_and_si256(q, m4);
            __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
            __m256i p0 = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)(q8 + 64 * c)));
            __m256i p1 = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(q8 + 64 * c + 32)));
            p0 = _mm256_madd_epi16(p0, _mm256_set1_epi16(sc[2 * c]));
            p1 = _mm256_madd_epi16(p1, _mm256_set1_epi16(sc[2 * c + 1]));
            isum = _mm256_add_epi32(isum, _mm256_add_epi32(p0, p1));
        }
        float d = y[i].d * f16(x[i].d);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(isum), acc);
        acc_m += y[i].d * f16(x[i].dmin) * (float)summ;
    }
    return hsum_ps(acc) - acc_m;
}

/* ------------------------------------------------------------------ Q2_K */

/* pshufb masks that spread 16-bit scale g over the low 128-bit lane and
 * scale g+1 over the high lane (g even), from 16 zero-extended bytes. */
static inline __m256i pair_scales_u8(__m256i sc_bytes_both_lanes, int g) {
    const __m256i mask = _mm256_set_epi8(-1, (char)(g + 1), -1, (char)(g + 1), -1, (char)(g + 1), -1, (char)(g + 1),
                                         -1, (char)(g + 1), -1, (char)(g + 1), -1, (char)(g + 1), -1, (char)(g + 1),
                                         -1, (char)g, -1, (char)g, -1, (char)g, -1, (char)g,
                                         -1, (char)g, -1, (char)g, -1, (char)g, -1, (char)g);
    return _mm256_shuffle_epi8(sc_bytes_both_lanes, mask);
}

float ds4j_dot_q2_K_avx2(const void *w, const void *a, int64_t n) {
    const blk_q2_K *x = w;
    const blk_q8_K *y = a;
    const int64_t nb = n / QK_K;
    const __m256i m3 = _mm256_set1_epi8(3);
    const __m128i m4 = _mm_set1_epi8(0x0F);
    __m256 acc = _mm256_setzero_ps();
    float acc_m = 0;
    for (int64_t i = 0; i < nb; i++) {
        __m128i sc8 = _mm_loadu_si128((const __m128i *)x[i].scales);
        __m256i mins16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sc8, 4), m4));
        int32_t summ = hsum_epi32(_mm256_madd_epi16(mins16, _mm256_loadu_si256((const __m256i *)y[i].bsums)));
        __m256i scb = _mm256_broadcastsi128_si256(_mm_and_si128(sc8, m4));

        const int8_t *q8 = y[i].qs;
        __m256i isum = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            __m256i q = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * h));
            for (int s = 0; s < 4; s++) {
                __m256i v = _mm256_and_si256(q, m3);
                q = _mm256_srli_epi16(q, 2);
                __m256i p = _mm256_maddubs_epi16(v, _mm256_loadu_si256((const __m256i *)(q8 + 128 * h + 32 * s)));
                isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p, pair_scales_u8(scb, 8 * h + 2 * s)));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(y[i].d * f16(x[i].d)), _mm256_cvtepi32_ps(isum), acc);
        acc_m += y[i].d * f16(x[i].dmin) * (float)summ;
    }
    return hsum_ps(acc) - acc_m;
}

/* ------------------------------------------------------------------ Q6_K */

/* int16 scale pair (g, g+1) from 8 int16 scales held in both lanes */
static inline __m256i pair_scales_i16(__m256i s16_both_lanes, int g) {
    const char a0 = (char)(2 * g), a1 = (char)(2 * g + 1), b0 = (char)(2 * g + 2), b1 = (char)(2 * g + 3);
    const __m256i mask = _mm256_set_epi8(b1, b0, b1, b0, b1, b0, b1, b0, b1, b0, b1, b0, b1, b0, b1, b0,
                                         a1, a0, a1, a0, a1, a0, a1, a0, a1, a0, a1, a0, a1, a0, a1, a0);
    return _mm256_shuffle_epi8(s16_both_lanes, mask);
}

float ds4j_dot_q6_K_avx2(const void *w, const void *a, int64_t n) {
    const blk_q6_K *x = w;
    const blk_q8_K *y = a;
    const int64_t nb = n / QK_K;
    const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
    float acc = 0;
    for (int64_t i = 0; i < nb; i++) {
        __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x[i].scales));
        /* quants are stored +32: subtract 32 * sum_g sc[g] * bsums[g] */
        int32_t off = hsum_epi32(_mm256_madd_epi16(sc16, _mm256_loadu_si256((const __m256i *)y[i].bsums)));
        const int8_t *q8 = y[i].qs;
        __m256i isum = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            __m256i sch = _mm256_broadcastsi128_si256(h == 0 ? _mm256_castsi256_si128(sc16) : _mm256_extracti128_si256(sc16, 1));
            __m256i l0 = _mm256_loadu_si256((const __m256i *)(x[i].ql + 64 * h));
            __m256i l1 = _mm256_loadu_si256((const __m256i *)(x[i].ql + 64 * h + 32));
            __m256i qh = _mm256_loadu_si256((const __m256i *)(x[i].qh + 32 * h));
            __m256i q0 = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30));
            __m256i q1 = _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30));
            __m256i q2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_and_si256(qh, m30));
            __m256i q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                         _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30));
            const int8_t *yh = q8 + 128 * h;
            __m256i p0 = _mm256_maddubs_epi16(q0, _mm256_loadu_si256((const __m256i *)(yh)));
            __m256i p1 = _mm256_maddubs_epi16(q1, _mm256_loadu_si256((const __m256i *)(yh + 32)));
            __m256i p2 = _mm256_maddubs_epi16(q2, _mm256_loadu_si256((const __m256i *)(yh + 64)));
            __m256i p3 = _mm256_maddubs_epi16(q3, _mm256_loadu_si256((const __m256i *)(yh + 96)));
            p0 = _mm256_madd_epi16(p0, pair_scales_i16(sch, 0));
            p1 = _mm256_madd_epi16(p1, pair_scales_i16(sch, 2));
            p2 = _mm256_madd_epi16(p2, pair_scales_i16(sch, 4));
            p3 = _mm256_madd_epi16(p3, pair_scales_i16(sch, 6));
            isum = _mm256_add_epi32(isum, _mm256_add_epi32(_mm256_add_epi32(p0, p1), _mm256_add_epi32(p2, p3)));
        }
        int32_t total = hsum_epi32(isum) - 32 * off;
        acc += y[i].d * f16(x[i].d) * (float)total;
    }
    return acc;
}

/* ---------------------------------------------------------- IQ2_XXS/XS */

/* For each 7-bit stored sign field, 8 bytes of +1 / -1 (0x01 / 0xFF) to
 * feed _mm256_sign_epi8; the eighth sign is the parity bit. */
static uint64_t g_iq2_sign_bytes[128];

void ds4j_quants_avx2_init(void) {
    for (int s = 0; s < 128; s++) {
        uint8_t bits = ds4j_iq2_signs((uint32_t)s);
        uint64_t v = 0;
        for (int j = 0; j < 8; j++) v |= (uint64_t)((bits >> j) & 1 ? 0xFF : 0x01) << (8 * j);
        g_iq2_sign_bytes[s] = v;
    }
}

static inline __m256i iq2xxs_grid4(const uint8_t *idx) {
    return _mm256_set_epi64x((long long)ds4j_iq2xxs_grid[idx[3]], (long long)ds4j_iq2xxs_grid[idx[2]],
                             (long long)ds4j_iq2xxs_grid[idx[1]], (long long)ds4j_iq2xxs_grid[idx[0]]);
}

/* Two groups (64 weights) per step: the grid indices are read as bytes
 * straight from the block (no shift/mask), the signs come from the 128-entry
 * table. On Zen 5 this lookup-and-insert form measured faster than deriving
 * the signs with SIMD bit tricks, than vpgatherqq, and than assembling the
 * rows through a stack buffer; it is bound by the 32 grid and 32 sign
 * lookups per block, not by memory. */
float ds4j_dot_iq2_xxs_avx2(const void *w, const void *a, int64_t n) {
    const blk_iq2_xxs *x = w;
    const blk_q8_K *y = a;
    const uint64_t *sg = g_iq2_sign_bytes;
    const int64_t nb = n / QK_K;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const int8_t *q8 = y[i].qs;
        const uint8_t *qb = (const uint8_t *)x[i].qs;
        __m256i s0 = _mm256_setzero_si256(), s1 = s0;
        for (int g = 0; g < 8; g += 2) {
            uint32_t u0, u1;
            memcpy(&u0, qb + 8 * g + 4, 4);
            memcpy(&u1, qb + 8 * g + 12, 4);
            __m256i sg0 = _mm256_set_epi64x((long long)sg[(u0 >> 21) & 127], (long long)sg[(u0 >> 14) & 127],
                                            (long long)sg[(u0 >> 7) & 127], (long long)sg[u0 & 127]);
            __m256i sg1 = _mm256_set_epi64x((long long)sg[(u1 >> 21) & 127], (long long)sg[(u1 >> 14) & 127],
                                            (long long)sg[(u1 >> 7) & 127], (long long)sg[u1 & 127]);
            __m256i y0 = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)(q8 + 32 * g)), sg0);
            __m256i y1 = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)(q8 + 32 * g + 32)), sg1);
            __m256i p0 = _mm256_maddubs_epi16(iq2xxs_grid4(qb + 8 * g), y0);
            __m256i p1 = _mm256_maddubs_epi16(iq2xxs_grid4(qb + 8 * g + 8), y1);
            s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(p0, _mm256_set1_epi16((short)(2 * (u0 >> 28) + 1))));
            s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(p1, _mm256_set1_epi16((short)(2 * (u1 >> 28) + 1))));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(y[i].d * f16(x[i].d) * 0.125f),
                              _mm256_cvtepi32_ps(_mm256_add_epi32(s0, s1)), acc);
    }
    return hsum_ps(acc);
}

float ds4j_dot_iq2_xs_avx2(const void *w, const void *a, int64_t n) {
    const blk_iq2_xs *x = w;
    const blk_q8_K *y = a;
    const uint64_t *sg = g_iq2_sign_bytes;
    const int64_t nb = n / QK_K;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const int8_t *q8 = y[i].qs;
        __m256i isum = _mm256_setzero_si256();
        for (int g = 0; g < 8; g++) {
            const uint16_t *v = &x[i].qs[4 * g];
            __m256i grid = _mm256_set_epi64x((long long)ds4j_iq2xs_grid[v[3] & 511], (long long)ds4j_iq2xs_grid[v[2] & 511],
                                             (long long)ds4j_iq2xs_grid[v[1] & 511], (long long)ds4j_iq2xs_grid[v[0] & 511]);
            __m256i sgn = _mm256_set_epi64x((long long)sg[v[3] >> 9], (long long)sg[v[2] >> 9], (long long)sg[v[1] >> 9],
                                            (long long)sg[v[0] >> 9]);
            __m256i yv = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)(q8 + 32 * g)), sgn);
            __m256i p = _mm256_maddubs_epi16(grid, yv);
            int s = x[i].scales[g];
            __m256i scv = _mm256_set_m128i(_mm_set1_epi16((short)(2 * (s >> 4) + 1)), _mm_set1_epi16((short)(2 * (s & 0x0F) + 1)));
            isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p, scv));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(y[i].d * f16(x[i].d) * 0.125f), _mm256_cvtepi32_ps(isum), acc);
    }
    return hsum_ps(acc);
}

/* ------------------------------------------------------------------ Q5_K */

float ds4j_dot_q5_K_avx2(const void *w, const void *a, int64_t n) {
    const blk_q5_K *x = w;
    const blk_q8_K *y = a;
    const int64_t nb = n / QK_K;
    const __m256i m4 = _mm256_set1_epi8(0x0F), b16 = _mm256_set1_epi8(0x10);
    __m256 acc = _mm256_setzero_ps();
    float acc_m = 0;
    for (int64_t i = 0; i < nb; i++) {
        uint32_t u[3];
        memcpy(u, x[i].scales, 12);
        uint32_t sc_w[2] = {u[0] & 0x3F3F3F3Fu, (u[2] & 0x0F0F0F0Fu) | ((u[0] >> 2) & 0x30303030u)};
        uint32_t mn_w[2] = {u[1] & 0x3F3F3F3Fu, ((u[2] >> 4) & 0x0F0F0F0Fu) | ((u[1] >> 2) & 0x30303030u)};
        uint8_t sc[8], mn[8];
        memcpy(sc, sc_w, 8);
        memcpy(mn, mn_w, 8);
        __m128i mn16 = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)mn));
        __m256i mn_pairs = _mm256_set_m128i(_mm_unpackhi_epi16(mn16, mn16), _mm_unpacklo_epi16(mn16, mn16));
        int32_t summ = hsum_epi32(_mm256_madd_epi16(mn_pairs, _mm256_loadu_si256((const __m256i *)y[i].bsums)));

        const __m256i qh = _mm256_loadu_si256((const __m256i *)x[i].qh);
        const int8_t *q8 = y[i].qs;
        __m256i isum = _mm256_setzero_si256();
        for (int c = 0; c < 4; c++) {
            /* the fifth bit of sub-block j is bit j of the qh byte */
            const __m256i mlo = _mm256_set1_epi8((char)(1 << (2 * c))), mhi = _mm256_set1_epi8((char)(2 << (2 * c)));
            __m256i q = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * c));
            __m256i lo = _mm256_or_si256(_mm256_and_si256(q, m4),
                                         _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, mlo), mlo), b16));
            __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4),
                                         _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, mhi), mhi), b16));
            __m256i p0 = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)(q8 + 64 * c)));
            __m256i p1 = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(q8 + 64 * c + 32)));
            p0 = _mm256_madd_epi16(p0, _mm256_set1_epi16(sc[2 * c]));
            p1 = _mm256_madd_epi16(p1, _mm256_set1_epi16(sc[2 * c + 1]));
            isum = _mm256_add_epi32(isum, _mm256_add_epi32(p0, p1));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(y[i].d * f16(x[i].d)), _mm256_cvtepi32_ps(isum), acc);
        acc_m += y[i].d * f16(x[i].dmin) * (float)summ;
    }
    return hsum_ps(acc) - acc_m;
}

/* ---------------------------------------------------------------- IQ4_XS */

float ds4j_dot_iq4_xs_avx2(const void *w, const void *a, int64_t n) {
    const blk_iq4_xs *x = w;
    const blk_q8_K *y = a;
    const int64_t nb = n / QK_K;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i levels = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)ds4j_kvalues_iq4nl));
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        __m256i isum = _mm256_setzero_si256();
        for (int g = 0; g < 8; g++) {
            __m128i t = _mm_loadu_si128((const __m128i *)(x[i].qs + 16 * g));
            __m256i idx = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t), m4);
            __m256i v = _mm256_shuffle_epi8(levels, idx);  /* signed levels, never -128 */
            __m256i yv = _mm256_loadu_si256((const __m256i *)(y[i].qs + 32 * g));
            __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(v, v), _mm256_sign_epi8(yv, v));
            int ls = (((x[i].scales_l[g / 2] >> (4 * (g % 2))) & 0x0F) | (((x[i].scales_h >> (2 * g)) & 3) << 4)) - 32;
            isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p, _mm256_set1_epi16((short)ls)));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(y[i].d * f16(x[i].d)), _mm256_cvtepi32_ps(isum), acc);
    }
    return hsum_ps(acc);
}

/* ------------------------------------------------ multi-token (prefill) */

/* The token count NT is a compile-time constant in each instantiation (the
 * dispatchers below switch on it), so per-token accumulators stay in
 * registers. Integer sums are exact, and every float operation is the
 * single-token kernel's, so results are bit-identical to it. */
#define MDOT_DISPATCH(kernel_nt, single, x, ab, a_stride, n, ntok, out, out_stride)             \
    switch (ntok) {                                                                         \
    case 4: kernel_nt(x, ab, a_stride, n, 4, out, out_stride); break;                       \
    case 3: kernel_nt(x, ab, a_stride, n, 3, out, out_stride); break;                       \
    case 2: kernel_nt(x, ab, a_stride, n, 2, out, out_stride); break;                       \
    default:                                                                                \
        for (int t_ = 0; t_ < (ntok); t_++) (out)[t_ * (out_stride)] = single(x, ab + t_ * (a_stride), n); \
    }

static inline __attribute__((always_inline)) void mdot_iq2_xxs_nt(const void *w, const uint8_t *a, int64_t a_stride,
                                                                  int64_t n, const int NT, float *out,
                                                                  int64_t out_stride) {
    const blk_iq2_xxs *x = w;
    const uint64_t *sg = g_iq2_sign_bytes;
    const int64_t nb = n / QK_K;
    const blk_q8_K *y[DS4J_MDOT_MAX];
    __m256 acc[DS4J_MDOT_MAX];
    for (int t = 0; t < NT; t++) {
        y[t] = (const blk_q8_K *)(a + t * a_stride);
        acc[t] = _mm256_setzero_ps();
    }
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *qb = (const uint8_t *)x[i].qs;
        __m256i s[DS4J_MDOT_MAX];
        for (int t = 0; t < NT; t++) s[t] = _mm256_setzero_si256();
        for (int g = 0; g < 8; g++) {
            uint32_t u;
            memcpy(&u, qb + 8 * g + 4, 4);
            __m256i sgn = _mm256_set_epi64x((long long)sg[(u >> 21) & 127], (long long)sg[(u >> 14) & 127],
                                            (long long)sg[(u >> 7) & 127], (long long)sg[u & 127]);
            __m256i grid = iq2xxs_grid4(qb + 8 * g);
            __m256i mul = _mm256_set1_epi16((short)(2 * (u >> 28) + 1));
            for (int t = 0; t < NT; t++) {
                __m256i yv = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)(y[t][i].qs + 32 * g)), sgn);
                s[t] = _mm256_add_epi32(s[t], _mm256_madd_epi16(_mm256_maddubs_epi16(grid, yv), mul));
            }
        }
        const float dx = f16(x[i].d);
        for (int t = 0; t < NT; t++)
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(y[t][i].d * dx * 0.125f), _mm256_cvtepi32_ps(s[t]), acc[t]);
    }
    for (int t = 0; t < NT; t++) out[t * out_stride] = hsum_ps(acc[t]);
}

void ds4j_mdot_iq2_xxs_avx2(const void *w, const void *a, int64_t a_stride, int64_t n, int ntok, float *out,
                            int64_t out_stride) {
    const uint8_t *ab = a;
    MDOT_DISPATCH(mdot_iq2_xxs_nt, ds4j_dot_iq2_xxs_avx2, w, ab, a_stride, n, ntok, out, out_stride)
}

static inline __attribute__((always_inline)) void mdot_q4_K_nt(const void *w, const uint8_t *a, int64_t a_stride,
                                                               int64_t n, const int NT, float *out, int64_t out_stride) {
    const blk_q4_K *x = w;
    const int64_t nb = n / QK_K;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const blk_q8_K *y[DS4J_MDOT_MAX];
    __m256 acc[DS4J_MDOT_MAX];
    float acc_m[DS4J_MDOT_MAX];
    for (int t = 0; t < NT; t++) {
        y[t] = (const blk_q8_K *)(a + t * a_stride);
        acc[t] = _mm256_setzero_ps();
        acc_m[t] = 0;
    }
    for (int64_t i = 0; i < nb; i++) {
        uint32_t u[3];
        memcpy(u, x[i].scales, 12);
        uint32_t sc_w[2] = {u[0] & 0x3F3F3F3Fu, (u[2] & 0x0F0F0F0Fu) | ((u[0] >> 2) & 0x30303030u)};
        uint32_t mn_w[2] = {u[1] & 0x3F3F3F3Fu, ((u[2] >> 4) & 0x0F0F0F0Fu) | ((u[1] >> 2) & 0x30303030u)};
        uint8_t sc[8], mn[8];
        memcpy(sc, sc_w, 8);
        memcpy(mn, mn_w, 8);
        __m128i mn16 = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)mn));
        __m256i mn_pairs = _mm256_set_m128i(_mm_unpackhi_epi16(mn16, mn16), _mm_unpacklo_epi16(mn16, mn16));
        __m256i isum[DS4J_MDOT_MAX];
        for (int t = 0; t < NT; t++) isum[t] = _mm256_setzero_si256();
        for (int c = 0; c < 4; c++) {
            __m256i q = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * c));
            __m256i lo = _mm256_and_si256(q, m4);
            __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
            __m256i s0 = _mm256_set1_epi16(sc[2 * c]), s1 = _mm256_set1_epi16(sc[2 * c + 1]);
            for (int t = 0; t < NT; t++) {
                const int8_t *q8 = y[t][i].qs;
                __m256i p0 = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)(q8 + 64 * c)));
                __m256i p1 = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(q8 + 64 * c + 32)));
                isum[t] = _mm256_add_epi32(isum[t], _mm256_add_epi32(_mm256_madd_epi16(p0, s0), _mm256_madd_epi16(p1, s1)));
            }
        }
        for (int t = 0; t < NT; t++) {
            int32_t summ = hsum_epi32(_mm256_madd_epi16(mn_pairs, _mm256_loadu_si256((const __m256i *)y[t][i].bsums)));
            float d = y[t][i].d * f16(x[i].d);
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(isum[t]), acc[t]);
            acc_m[t] += y[t][i].d * f16(x[i].dmin) * (float)summ;
        }
    }
    for (int t = 0; t < NT; t++) out[t * out_stride] = hsum_ps(acc[t]) - acc_m[t];
}

void ds4j_mdot_q4_K_avx2(const void *w, const void *a, int64_t a_stride, int64_t n, int ntok, float *out,
                         int64_t out_stride) {
    const uint8_t *ab = a;
    MDOT_DISPATCH(mdot_q4_K_nt, ds4j_dot_q4_K_avx2, w, ab, a_stride, n, ntok, out, out_stride)
}

static inline __attribute__((always_inline)) void mdot_q2_K_nt(const void *w, const uint8_t *a, int64_t a_stride,
                                                               int64_t n, const int NT, float *out, int64_t out_stride) {
    const blk_q2_K *x = w;
    const int64_t nb = n / QK_K;
    const __m256i m3 = _mm256_set1_epi8(3);
    const __m128i m4 = _mm_set1_epi8(0x0F);
    const blk_q8_K *y[DS4J_MDOT_MAX];
    __m256 acc[DS4J_MDOT_MAX];
    float acc_m[DS4J_MDOT_MAX];
    for (int t = 0; t < NT; t++) {
        y[t] = (const blk_q8_K *)(a + t * a_stride);
        acc[t] = _mm256_setzero_ps();
        acc_m[t] = 0;
    }
    for (int64_t i = 0; i < nb; i++) {
        __m128i sc8 = _mm_loadu_si128((const __m128i *)x[i].scales);
        __m256i mins16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sc8, 4), m4));
        __m256i scb = _mm256_broadcastsi128_si256(_mm_and_si128(sc8, m4));
        __m256i isum[DS4J_MDOT_MAX];
        for (int t = 0; t < NT; t++) isum[t] = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            __m256i q = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * h));
            for (int s = 0; s < 4; s++) {
                __m256i v = _mm256_and_si256(q, m3);
                q = _mm256_srli_epi16(q, 2);
                __m256i scl = pair_scales_u8(scb, 8 * h + 2 * s);
                for (int t = 0; t < NT; t++) {
                    __m256i p = _mm256_maddubs_epi16(v, _mm256_loadu_si256((const __m256i *)(y[t][i].qs + 128 * h + 32 * s)));
                    isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(p, scl));
                }
            }
        }
        for (int t = 0; t < NT; t++) {
            int32_t summ = hsum_epi32(_mm256_madd_epi16(mins16, _mm256_loadu_si256((const __m256i *)y[t][i].bsums)));
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(y[t][i].d * f16(x[i].d)), _mm256_cvtepi32_ps(isum[t]), acc[t]);
            acc_m[t] += y[t][i].d * f16(x[i].dmin) * (float)summ;
        }
    }
    for (int t = 0; t < NT; t++) out[t * out_stride] = hsum_ps(acc[t]) - acc_m[t];
}

void ds4j_mdot_q2_K_avx2(const void *w, const void *a, int64_t a_stride, int64_t n, int ntok, float *out,
                         int64_t out_stride) {
    const uint8_t *ab = a;
    MDOT_DISPATCH(mdot_q2_K_nt, ds4j_dot_q2_K_avx2, w, ab, a_stride, n, ntok, out, out_stride)
}
