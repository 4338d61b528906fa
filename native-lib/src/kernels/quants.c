/*
 * quants.c — type traits for the ggml tensor types, scalar reference
 * kernels (dequantize, dot with a quantized activation, quantize), the
 * matrix-vector / matrix-matrix drivers, and the runtime choice of SIMD
 * kernels. Dequantizers keep ggml's operation order so results are
 * bit-identical to gguf-py; dots accumulate in integers per block so the
 * scalar and SIMD paths differ only by float summation order.
 */
#include "quants.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "quants_impl.h"
#include "quants_iq_tables.h"

/* ---------------------------------------------------------------- scalars */

static inline uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

float ds4j_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1Fu, man = h & 0x3FFu;
    if (exp == 0) {
        /* zero or subnormal: man * 2^-24 is exact in float */
        float v = (float)man * 0x1p-24f;
        return u2f(sign | f2u(v));
    }
    if (exp == 31) return u2f(sign | 0x7F800000u | (man << 13));
    return u2f(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t ds4j_f32_to_f16(float f) {
    uint32_t x = f2u(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7FFFFFFFu;
    if (ax > 0x7F800000u) return sign | 0x7E00u | (uint16_t)((ax >> 13) & 0x3FFu); /* NaN stays NaN */
    if (ax >= 0x477FF000u) return sign | 0x7C00u;  /* >= 65520 rounds to inf */
    if (ax < 0x38800000u) {
        /* below the smallest normal: adding 0.5 puts the f16 subnormal ulp
         * (2^-24) at the float's last mantissa bit, so the FPU rounds RNE */
        float t = u2f(ax) + 0.5f;
        return sign | (uint16_t)(f2u(t) - 0x3F000000u);
    }
    uint32_t odd = (ax >> 13) & 1u;
    ax += 0xC8000FFFu + odd;  /* rebias exponent 127->15, round half to even */
    return sign | (uint16_t)(ax >> 13);
}

float ds4j_bf16_to_f32(uint16_t h) { return u2f((uint32_t)h << 16); }

uint16_t ds4j_f32_to_bf16(float f) {
    uint32_t x = f2u(f);
    if ((x & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((x >> 16) | 0x40u); /* quiet NaN */
    x += 0x7FFFu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

#define F16(h) ds4j_f16_to_f32(h)

/* round half to even in the current (default) rounding mode; NaN and
 * out-of-range values saturate instead of reaching an undefined conversion */
static inline int nearest(float v) {
    if (!(v > -1e9f && v < 1e9f)) return v >= 1e9f ? 1000000000 : v <= -1e9f ? -1000000000 : 0;
    return (int)lrintf(v);
}

/* --------------------------------------------------------- float types */

static void f32_to_float(const void *src, float *dst, int64_t n) { memcpy(dst, src, (size_t)n * 4); }
static void f32_from_float(const float *src, void *dst, int64_t n) { memcpy(dst, src, (size_t)n * 4); }

static void f16_to_float(const void *src, float *dst, int64_t n) {
    const uint16_t *s = src;
    for (int64_t i = 0; i < n; i++) dst[i] = ds4j_f16_to_f32(s[i]);
}
static void f16_from_float(const float *src, void *dst, int64_t n) {
    uint16_t *d = dst;
    for (int64_t i = 0; i < n; i++) d[i] = ds4j_f32_to_f16(src[i]);
}
static void bf16_to_float(const void *src, float *dst, int64_t n) {
    const uint16_t *s = src;
    for (int64_t i = 0; i < n; i++) dst[i] = ds4j_bf16_to_f32(s[i]);
}
static void bf16_from_float(const float *src, void *dst, int64_t n) {
    uint16_t *d = dst;
    for (int64_t i = 0; i < n; i++) d[i] = ds4j_f32_to_bf16(src[i]);
}

static float dot_f32_ref(const void *w, const void *a, int64_t n) {
    const float *x = w, *y = a;
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)x[i] * y[i];
    return (float)s;
}
static float dot_f16_ref(const void *w, const void *a, int64_t n) {
    const uint16_t *x = w;
    const float *y = a;
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)ds4j_f16_to_f32(x[i]) * y[i];
    return (float)s;
}
static float dot_bf16_ref(const void *w, const void *a, int64_t n) {
    const uint16_t *x = w;
    const float *y = a;
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)ds4j_bf16_to_f32(x[i]) * y[i];
    return (float)s;
}

/* ------------------------------------------------------------ Q8_0/Q4_0 */

static void q8_0_to_float(const void *src, float *dst, int64_t n) {
    const blk_q8_0 *b = src;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        float d = F16(b[i].d);
        for (int j = 0; j < QK8_0; j++) dst[i * QK8_0 + j] = b[i].qs[j] * d;
    }
}

/* Matches ggml's quantize_row_q8_0_ref bit for bit: the reciprocal comes
 * from the f32 scale, the stored scale is its f16 rounding. */
static void q8_0_from_float(const float *src, void *dst, int64_t n) {
    blk_q8_0 *b = dst;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        const float *x = src + i * QK8_0;
        float amax = 0;
        for (int j = 0; j < QK8_0; j++) amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = ds4j_f32_to_f16(d);
        for (int j = 0; j < QK8_0; j++) {
            float v = roundf(x[j] * id);
            /* NaN/inf inputs must not reach a float->int conversion */
            b[i].qs[j] = (int8_t)(v >= -128.0f && v <= 127.0f ? v : 0.0f);
        }
    }
}

static float dot_q8_0_ref(const void *w, const void *a, int64_t n) {
    const blk_q8_0 *x = w, *y = a;
    float s = 0;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        int32_t acc = 0;
        for (int j = 0; j < QK8_0; j++) acc += x[i].qs[j] * y[i].qs[j];
        s += (F16(x[i].d) * F16(y[i].d)) * (float)acc;
    }
    return s;
}

static void q4_0_to_float(const void *src, float *dst, int64_t n) {
    const blk_q4_0 *b = src;
    for (int64_t i = 0; i < n / QK4_0; i++) {
        float d = F16(b[i].d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            int lo = (b[i].qs[j] & 0x0F) - 8, hi = (b[i].qs[j] >> 4) - 8;
            dst[i * QK4_0 + j] = lo * d;
            dst[i * QK4_0 + j + 16] = hi * d;
        }
    }
}

static void q4_0_from_float(const float *src, void *dst, int64_t n) {
    blk_q4_0 *b = dst;
    for (int64_t i = 0; i < n / QK4_0; i++) {
        const float *x = src + i * QK4_0;
        /* the signed extreme maps to -8 so the full range [-8, 7] is used */
        float amax = 0, vmax = 0;
        for (int j = 0; j < QK4_0; j++)
            if (fabsf(x[j]) > amax) { amax = fabsf(x[j]); vmax = x[j]; }
        float d = vmax / -8.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = ds4j_f32_to_f16(d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            float vl = x[j] * id + 8.5f, vh = x[j + 16] * id + 8.5f;
            int lo = vl >= 0.0f && vl < 16.0f ? (int)vl : vl >= 16.0f ? 15 : 0;
            int hi = vh >= 0.0f && vh < 16.0f ? (int)vh : vh >= 16.0f ? 15 : 0;
            b[i].qs[j] = (uint8_t)(lo | (hi << 4));
        }
    }
}

static float dot_q4_0_ref(const void *w, const void *a, int64_t n) {
    const blk_q4_0 *x = w;
    const blk_q8_0 *y = a;
    float s = 0;
    for (int64_t i = 0; i < n / QK4_0; i++) {
        int32_t acc = 0;
        for (int j = 0; j < 16; j++) {
            acc += ((x[i].qs[j] & 0x0F) - 8) * y[i].qs[j];
            acc += ((x[i].qs[j] >> 4) - 8) * y[i].qs[j + 16];
        }
        s += (F16(x[i].d) * F16(y[i].d)) * (float)acc;
    }
    return s;
}

/* ----------------------------------------------------------------- Q8_K */

static void q8_K_to_float(const void *src, float *dst, int64_t n) {
    const blk_q8_K *b = src;
    for (int64_t i = 0; i < n / QK_K; i++)
        for (int j = 0; j < QK_K; j++) dst[i * QK_K + j] = b[i].d * b[i].qs[j];
}

/* Symmetric 8-bit activation blocks; quants stay within [-127, 127] so SIMD
 * kernels may flip signs without overflow. bsums hold 16-element sums for
 * the min/offset corrections of the k-quants. */
static void q8_K_from_float(const float *src, void *dst, int64_t n) {
    blk_q8_K *b = dst;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float *x = src + i * QK_K;
        float amax = 0;
        for (int j = 0; j < QK_K; j++) amax = fmaxf(amax, fabsf(x[j]));
        if (!(amax > 0) || !isfinite(amax)) {
            memset(&b[i], 0, sizeof b[i]);
            continue;
        }
        float id = 127.0f / amax;
        for (int j = 0; j < QK_K; j++) {
            int q = nearest(x[j] * id);
            b[i].qs[j] = (int8_t)(q > 127 ? 127 : q < -127 ? -127 : q);
        }
        for (int g = 0; g < QK_K / 16; g++) {
            int s = 0;
            for (int j = 0; j < 16; j++) s += b[i].qs[g * 16 + j];
            b[i].bsums[g] = (int16_t)s;
        }
        b[i].d = amax / 127.0f;
    }
}

/* ------------------------------------------------------------------ Q2_K */

static void q2_K_to_float(const void *src, float *dst, int64_t n) {
    const blk_q2_K *b = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        float d = F16(b[i].d), dmin = F16(b[i].dmin);
        float *y = dst + i * QK_K;
        const uint8_t *q = b[i].qs;
        int is = 0;
        for (int h = 0; h < 2; h++, q += 32) {
            for (int s = 0; s < 8; s += 2) {
                for (int half = 0; half < 2; half++) {
                    uint8_t sc = b[i].scales[is++];
                    float dl = d * (sc & 0x0F), ml = dmin * (sc >> 4);
                    for (int l = 0; l < 16; l++) *y++ = dl * ((q[l + 16 * half] >> s) & 3) - ml;
                }
            }
        }
    }
}

static float dot_q2_K_ref(const void *w, const void *a, int64_t n) {
    const blk_q2_K *x = w;
    const blk_q8_K *y = a;
    float s = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int32_t sumi = 0, summ = 0;
        for (int g = 0; g < 16; g++) {
            int h = g / 8, sh = 2 * ((g % 8) / 2), off = 16 * (g % 2);
            int32_t acc = 0;
            for (int l = 0; l < 16; l++) acc += ((x[i].qs[32 * h + off + l] >> sh) & 3) * y[i].qs[16 * g + l];
            sumi += (x[i].scales[g] & 0x0F) * acc;
            summ += (x[i].scales[g] >> 4) * y[i].bsums[g];
        }
        s += y[i].d * (F16(x[i].d) * (float)sumi - F16(x[i].dmin) * (float)summ);
    }
    return s;
}

/* ------------------------------------------------------------------ Q3_K */

static inline int q3_K_scale(const uint8_t *sc, int j) {
    int lo = j < 8 ? (sc[j] & 0x0F) : (sc[j - 8] >> 4);
    int hi = (sc[8 + (j & 3)] >> (2 * (j / 4))) & 3;
    return (lo | (hi << 4)) - 32;
}

static void q3_K_to_float(const void *src, float *dst, int64_t n) {
    const blk_q3_K *b = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        float d = F16(b[i].d);
        float *y = dst + i * QK_K;
        const uint8_t *q = b[i].qs;
        int is = 0, m = 0;
        for (int h = 0; h < 2; h++, q += 32) {
            for (int s = 0; s < 8; s += 2, m++) {
                for (int half = 0; half < 2; half++) {
                    float dl = d * q3_K_scale(b[i].scales, is++);
                    for (int l = 16 * half; l < 16 * half + 16; l++)
                        *y++ = dl * (((q[l] >> s) & 3) - ((b[i].hmask[l] >> m) & 1 ? 0 : 4));
                }
            }
        }
    }
}

static float dot_q3_K_ref(const void *w, const void *a, int64_t n) {
    const blk_q3_K *x = w;
    const blk_q8_K *y = a;
    float s = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int32_t sumi = 0;
        for (int g = 0; g < 16; g++) {
            int h = g / 8, sh = 2 * ((g % 8) / 2), off = 16 * (g % 2), m = 4 * h + (g % 8) / 2;
            int32_t acc = 0;
            for (int l = off; l < off + 16; l++) {
                int q = ((x[i].qs[32 * h + l] >> sh) & 3) - ((x[i].hmask[l] >> m) & 1 ? 0 : 4);
                acc += q * y[i].qs[16 * g + l - off];
            }
            sumi += q3_K_scale(x[i].scales, g) * acc;
        }
        s += y[i].d * F16(x[i].d) * (float)sumi;
    }
    return s;
}

/* ------------------------------------------------------------------ Q4_K */

static void q4_K_to_float(const void *src, float *dst, int64_t n) {
    const blk_q4_K *b = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        float d = F16(b[i].d), dmin = F16(b[i].dmin);
        float *y = dst + i * QK_K;
        for (int c = 0; c < 4; c++) {
            const uint8_t *q = b[i].qs + 32 * c;
            int sc, m;
            ds4j_k4_scale_min(2 * c, b[i].scales, &sc, &m);
            float d1 = d * sc, m1 = dmin * m;
            ds4j_k4_scale_min(2 * c + 1, b[i].scales, &sc, &m);
            float d2 = d * sc, m2 = dmin * m;
            for (int l = 0; l < 32; l++) *y++ = d1 * (q[l] & 0x0F) - m1;
            for (int l = 0; l < 32; l++) *y++ = d2 * (q[l] >> 4) - m2;
        }
    }
}

static float dot_q4_K_ref(const void *w, const void *a, int64_t n) {
    const blk_q4_K *x = w;
    const blk_q8_K *y = a;
    float s = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int32_t sumi = 0, summ = 0;
        for (int j = 0; j < 8; j++) {
            int sc, m;
            ds4j_k4_scale_min(j, x[i].scales, &sc, &m);
            const uint8_t *q = x[i].qs + 32 * (j / 2);
            int sh = 4 * (j & 1);
            int32_t acc = 0;
            for (int l = 0; l < 32; l++) acc += ((q[l] >> sh) & 0x0F) * y[i].qs[32 * j + l];
            sumi += sc * acc;
            summ += m * (y[i].bsums[2 * j] + y[i].bsums[2 * j + 1]);
        }
        s += y[i].d * (F16(x[i].d) * (float)sumi - F16(x[i].dmin) * (float)summ);
    }
    return s;
}

/* ------------------------------------------------------------------ Q5_K */

static void q5_K_to_float(const void *src, float *dst, int64_t n) {
    const blk_q5_K *b = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        float d = F16(b[i].d), dmin = F16(b[i].dmin);
        float *y = dst + i * QK_K;
        for (int c = 0; c < 4; c++) {
            const uint8_t *q = b[i].qs + 32 * c;
            int sc, m;
            ds4j_k4_scale_min(2 * c, b[i].scales, &sc, &m);
            float d1 = d * sc, m1 = dmin * m;
            ds4j_k4_scale_min(2 * c + 1, b[i].scales, &sc, &m);
            float d2 = d * sc, m2 = dmin * m;
            uint8_t u1 = (uint8_t)(1u << (2 * c)), u2 = (uint8_t)(2u << (2 * c));
            for (int l = 0; l < 32; l++) *y++ = d1 * ((q[l] & 0x0F) + (b[i].qh[l] & u1 ? 16 : 0)) - m1;
            for (int l = 0; l < 32; l++) *y++ = d2 * ((q[l] >> 4) + (b[i].qh[l] & u2 ? 16 : 0)) - m2;
        }
    }
}

static float dot_q5_K_ref(const void *w, const void *a, int64_t n) {
    const blk_q5_K *x = w;
    const blk_q8_K *y = a;
    float s = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int32_t sumi = 0, summ = 0;
        for (int j = 0; j < 8; j++) {
            int sc, m;
            ds4j_k4_scale_min(j, x[i].scales, &sc, &m);
            const uint8_t *q = x[i].qs + 32 * (j / 2);
            int sh = 4 * (j & 1);
            int32_t acc = 0;
            for (int l = 0; l < 32; l++) {
                int v = ((q[l] >> sh) & 0x0F) + (((x[i].qh[l] >> j) & 1) << 4);
                acc += v * y[i].qs[32 * j + l];
            }
            sumi += sc * acc;
            summ += m * (y[i].bsums[2 * j] + y[i].bsums[2 * j + 1]);
        }
        s += y[i].d * (F16(x[i].d) * (float)sumi - F16(x[i].dmin) * (float)summ);
    }
    return s;
}

/* ------------------------------------------------------------------ Q6_K */

/* 6-bit quant of element e (0..255), still offset by +32 */
static inline int q6_K_raw(const blk_q6_K *b, int e) {
    int h = e / 128, r = e % 128, quarter = r / 32, l = r % 32;
    uint8_t lb = b->ql[64 * h + l + 32 * (quarter & 1)];
    int lo = quarter >= 2 ? lb >> 4 : lb & 0x0F;
    int hi = (b->qh[32 * h + l] >> (2 * quarter)) & 3;
    return lo | (hi << 4);
}

static void q6_K_to_float(const void *src, float *dst, int64_t n) {
    const blk_q6_K *b = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        float d = F16(b[i].d);
        for (int e = 0; e < QK_K; e++) {
            int q = q6_K_raw(&b[i], e) - 32;
            dst[i * QK_K + e] = d * b[i].scales[e / 16] * q;
        }
    }
}

static float dot_q6_K_ref(const void *w, const void *a, int64_t n) {
    const blk_q6_K *x = w;
    const blk_q8_K *y = a;
    float s = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int32_t sumi = 0;
        for (int g = 0; g < 16; g++) {
            int32_t acc = 0;
            for (int l = 0; l < 16; l++) acc += (q6_K_raw(&x[i], 16 * g + l) - 32) * y[i].qs[16 * g + l];
            sumi += x[i].scales[g] * acc;
        }
        s += y[i].d * F16(x[i].d) * (float)sumi;
    }
    return s;
}

/* --------------------------------------------------------------- IQ2_XXS */

/* Each 32-element group stores two words: four 8-bit grid indices, then
 * four 7-bit sign fields and a 4-bit scale in the top nibble. */
static void iq2_xxs_to_float(const void *src, float *dst, int64_t n) {
    const blk_iq2_xxs *b = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        float d = F16(b[i].d);
        float *y = dst + i * QK_K;
        for (int g = 0; g < 8; g++) {
            uint32_t w[2];
            memcpy(w, &b[i].qs[4 * g], 8);
            float db = d * (0.5f + (float)(w[1] >> 28)) * 0.25f;
            for (int k = 0; k < 4; k++) {
                uint64_t grid = ds4j_iq2xxs_grid[(w[0] >> (8 * k)) & 0xFF];
                uint8_t signs = ds4j_iq2_signs(w[1] >> (7 * k));
                for (int j = 0; j < 8; j++) {
                    float v = (float)((grid >> (8 * j)) & 0xFF);
                    *y++ = db * v * ((signs >> j) & 1 ? -1.0f : 1.0f);
                }
            }
        }
    }
}

static float dot_iq2_xxs_ref(const void *w, const void *a, int64_t n) {
    const blk_iq2_xxs *x = w;
    const blk_q8_K *y = a;
    float s = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int32_t sumi = 0;
        const int8_t *q8 = y[i].qs;
        for (int g = 0; g < 8; g++) {
            uint32_t wd[2];
            memcpy(wd, &x[i].qs[4 * g], 8);
            int32_t acc = 0;
            for (int k = 0; k < 4; k++) {
                uint64_t grid = ds4j_iq2xxs_grid[(wd[0] >> (8 * k)) & 0xFF];
                uint8_t signs = ds4j_iq2_signs(wd[1] >> (7 * k));
                for (int j = 0; j < 8; j++) {
                    int v = (int)((grid >> (8 * j)) & 0xFF);
                    acc += ((signs >> j) & 1 ? -v : v) * *q8++;
                }
            }
            sumi += (int32_t)(2 * (wd[1] >> 28) + 1) * acc;
        }
        /* (0.5 + ls) / 4 == (2 ls + 1) / 8 */
        s += y[i].d * F16(x[i].d) * (float)sumi * 0.125f;
    }
    return s;
}

/* ---------------------------------------------------------------- IQ2_XS */

static void iq2_xs_to_float(const void *src, float *dst, int64_t n) {
    const blk_iq2_xs *b = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        float d = F16(b[i].d);
        float *y = dst + i * QK_K;
        for (int g = 0; g < 8; g++) {
            float db[2] = {d * (0.5f + (float)(b[i].scales[g] & 0x0F)) * 0.25f,
                           d * (0.5f + (float)(b[i].scales[g] >> 4)) * 0.25f};
            for (int k = 0; k < 4; k++) {
                uint16_t v16 = b[i].qs[4 * g + k];
                uint64_t grid = ds4j_iq2xs_grid[v16 & 511];
                uint8_t signs = ds4j_iq2_signs(v16 >> 9);
                for (int j = 0; j < 8; j++) {
                    float v = (float)((grid >> (8 * j)) & 0xFF);
                    *y++ = db[k / 2] * v * ((signs >> j) & 1 ? -1.0f : 1.0f);
                }
            }
        }
    }
}

static float dot_iq2_xs_ref(const void *w, const void *a, int64_t n) {
    const blk_iq2_xs *x = w;
    const blk_q8_K *y = a;
    float s = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int32_t sumi = 0;
        const int8_t *q8 = y[i].qs;
        for (int g = 0; g < 8; g++) {
            for (int half = 0; half < 2; half++) {
                int32_t acc = 0;
                for (int k = 2 * half; k < 2 * half + 2; k++) {
                    uint16_t v16 = x[i].qs[4 * g + k];
                    uint64_t grid = ds4j_iq2xs_grid[v16 & 511];
                    uint8_t signs = ds4j_iq2_signs(v16 >> 9);
                    for (int j = 0; j < 8; j++) {
                        int v = (int)((grid >> (8 * j)) & 0xFF);
                        acc += ((signs >> j) & 1 ? -v : v) * *q8++;
                    }
                }
                int ls = (x[i].scales[g] >> (4 * half)) & 0x0F;
                sumi += (2 * ls + 1) * acc;
            }
        }
        s += y[i].d * F16(x[i].d) * (float)sumi * 0.125f;
    }
    return s;
}

/* ---------------------------------------------------------------- IQ4_XS */

static inline int iq4_xs_scale(const blk_iq4_xs *b, int g) {
    int lo = (b->scales_l[g / 2] >> (4 * (g % 2))) & 0x0F;
    int hi = (b->scales_h >> (2 * g)) & 3;
    return (lo | (hi << 4)) - 32;
}

static void iq4_xs_to_float(const void *src, float *dst, int64_t n) {
    const blk_iq4_xs *b = src;
    for (int64_t i = 0; i < n / QK_K; i++) {
        float d = F16(b[i].d);
        float *y = dst + i * QK_K;
        for (int g = 0; g < 8; g++, y += 32) {
            float dl = d * iq4_xs_scale(&b[i], g);
            const uint8_t *q = b[i].qs + 16 * g;
            for (int j = 0; j < 16; j++) {
                y[j] = dl * ds4j_kvalues_iq4nl[q[j] & 0x0F];
                y[j + 16] = dl * ds4j_kvalues_iq4nl[q[j] >> 4];
            }
        }
    }
}

static float dot_iq4_xs_ref(const void *w, const void *a, int64_t n) {
    const blk_iq4_xs *x = w;
    const blk_q8_K *y = a;
    float s = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int32_t sumi = 0;
        for (int g = 0; g < 8; g++) {
            const uint8_t *q = x[i].qs + 16 * g;
            const int8_t *q8 = y[i].qs + 32 * g;
            int32_t acc = 0;
            for (int j = 0; j < 16; j++) {
                acc += ds4j_kvalues_iq4nl[q[j] & 0x0F] * q8[j];
                acc += ds4j_kvalues_iq4nl[q[j] >> 4] * q8[j + 16];
            }
            sumi += iq4_xs_scale(&x[i], g) * acc;
        }
        s += y[i].d * F16(x[i].d) * (float)sumi;
    }
    return s;
}

/* ------------------------------------------------- k-quant quantizers */

/*
 * Fit x[i] ~= scale * L[i] - offset with integer L in [0, nmax], offset >= 0,
 * minimising the weighted squared error. Tries a spread of step sizes around
 * the plain (max - min) / nmax one; for each candidate assignment the best
 * (scale, offset) pair is the closed-form weighted least-squares solution.
 * Returns scale; *offset_out receives the offset (a positive number that is
 * subtracted).
 */
static float fit_scale_offset(int n, int nmax, const float *x, const float *wt, uint8_t *L,
                              float *offset_out, float rmin, float rdelta, int nstep) {
    float lo = x[0], hi = x[0];
    double sw = 0, swx = 0;
    for (int i = 0; i < n; i++) {
        if (x[i] < lo) lo = x[i];
        if (x[i] > hi) hi = x[i];
        sw += wt[i];
        swx += (double)wt[i] * x[i];
    }
    if (lo > 0) lo = 0;  /* the offset may only lower values */
    if (hi == lo) {
        memset(L, 0, (size_t)n);
        *offset_out = -lo;
        return 0.0f;
    }
    float best_scale = (hi - lo) / nmax, best_min = lo;
    double best_err = INFINITY;
    uint8_t cand[32];
    for (int step = -1; step <= nstep; step++) {
        /* step -1 is the plain min/max grid with no refit */
        float iscale = step < 0 ? nmax / (hi - lo) : (rmin + rdelta * step + nmax) / (hi - lo);
        double sl = 0, sll = 0, sxl = 0;
        for (int i = 0; i < n; i++) {
            int l = nearest(iscale * (x[i] - lo));
            l = l < 0 ? 0 : l > nmax ? nmax : l;
            cand[i] = (uint8_t)l;
            sl += wt[i] * l;
            sll += (double)wt[i] * l * l;
            sxl += (double)wt[i] * l * x[i];
        }
        float scale, mn;
        if (step < 0) {
            scale = 1.0f / iscale;
            mn = lo;
        } else {
            double det = sw * sll - sl * sl;
            if (!(det > 0)) continue;
            scale = (float)((sw * sxl - swx * sl) / det);
            mn = (float)((sll * swx - sl * sxl) / det);
            if (mn > 0) {  /* offset must stay non-negative: refit scale alone */
                mn = 0;
                scale = sll > 0 ? (float)(sxl / sll) : 0.0f;
            }
        }
        double err = 0;
        for (int i = 0; i < n; i++) {
            double diff = (double)scale * cand[i] + mn - x[i];
            err += wt[i] * diff * diff;
        }
        if (err < best_err) {
            best_err = err;
            best_scale = scale;
            best_min = mn;
            memcpy(L, cand, (size_t)n);
        }
    }
    *offset_out = -best_min;
    return best_scale;
}

static void q4_K_from_float(const float *src, void *dst, int64_t n) {
    blk_q4_K *b = dst;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float *x = src + i * QK_K;
        uint8_t L[QK_K];
        float scales[8], mins[8], wt[32];
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < 8; j++) {
            const float *xs = x + 32 * j;
            float ss = 0;
            for (int l = 0; l < 32; l++) ss += xs[l] * xs[l];
            float rms = sqrtf(ss / 32);
            /* emphasise large magnitudes, but keep every element in play */
            for (int l = 0; l < 32; l++) wt[l] = rms + fabsf(xs[l]);
            scales[j] = fit_scale_offset(32, 15, xs, wt, L + 32 * j, &mins[j], -1.0f, 0.1f, 20);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        float is = max_scale > 0 ? 63.0f / max_scale : 0.0f;
        float im = max_min > 0 ? 63.0f / max_min : 0.0f;
        memset(b[i].scales, 0, sizeof b[i].scales);
        for (int j = 0; j < 8; j++) {
            int ls = nearest(is * scales[j]), lm = nearest(im * mins[j]);
            ls = ls < 0 ? 0 : ls > 63 ? 63 : ls;
            lm = lm < 0 ? 0 : lm > 63 ? 63 : lm;
            if (j < 4) {
                b[i].scales[j] |= (uint8_t)ls;
                b[i].scales[j + 4] |= (uint8_t)lm;
            } else {
                b[i].scales[j + 4] = (uint8_t)((ls & 0x0F) | ((lm & 0x0F) << 4));
                b[i].scales[j - 4] |= (uint8_t)((ls >> 4) << 6);
                b[i].scales[j] |= (uint8_t)((lm >> 4) << 6);
            }
        }
        b[i].d = ds4j_f32_to_f16(max_scale / 63.0f);
        b[i].dmin = ds4j_f32_to_f16(max_min / 63.0f);
        /* re-assign quants against the scales as actually stored */
        float d = F16(b[i].d), dmin = F16(b[i].dmin);
        for (int j = 0; j < 8; j++) {
            int sc, m;
            ds4j_k4_scale_min(j, b[i].scales, &sc, &m);
            float dl = d * sc, ml = dmin * m;
            for (int l = 0; l < 32; l++) {
                int q = dl != 0.0f ? nearest((x[32 * j + l] + ml) / dl) : 0;
                L[32 * j + l] = (uint8_t)(q < 0 ? 0 : q > 15 ? 15 : q);
            }
        }
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++)
                b[i].qs[32 * c + l] = (uint8_t)(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
    }
}

static void q2_K_from_float(const float *src, void *dst, int64_t n) {
    blk_q2_K *b = dst;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float *x = src + i * QK_K;
        uint8_t L[QK_K];
        float scales[16], mins[16], wt[16];
        float max_scale = 0, max_min = 0;
        for (int g = 0; g < 16; g++) {
            const float *xs = x + 16 * g;
            float ss = 0;
            for (int l = 0; l < 16; l++) ss += xs[l] * xs[l];
            float rms = sqrtf(ss / 16);
            for (int l = 0; l < 16; l++) wt[l] = 0.25f * rms + fabsf(xs[l]);
            scales[g] = fit_scale_offset(16, 3, xs, wt, L + 16 * g, &mins[g], -0.5f, 0.1f, 15);
            if (scales[g] > max_scale) max_scale = scales[g];
            if (mins[g] > max_min) max_min = mins[g];
        }
        float is = max_scale > 0 ? 15.0f / max_scale : 0.0f;
        float im = max_min > 0 ? 15.0f / max_min : 0.0f;
        for (int g = 0; g < 16; g++) {
            int ls = nearest(is * scales[g]), lm = nearest(im * mins[g]);
            ls = ls < 0 ? 0 : ls > 15 ? 15 : ls;
            lm = lm < 0 ? 0 : lm > 15 ? 15 : lm;
            b[i].scales[g] = (uint8_t)(ls | (lm << 4));
        }
        b[i].d = ds4j_f32_to_f16(max_scale / 15.0f);
        b[i].dmin = ds4j_f32_to_f16(max_min / 15.0f);
        float d = F16(b[i].d), dmin = F16(b[i].dmin);
        for (int g = 0; g < 16; g++) {
            float dl = d * (b[i].scales[g] & 0x0F), ml = dmin * (b[i].scales[g] >> 4);
            for (int l = 0; l < 16; l++) {
                int q = dl != 0.0f ? nearest((x[16 * g + l] + ml) / dl) : 0;
                L[16 * g + l] = (uint8_t)(q < 0 ? 0 : q > 3 ? 3 : q);
            }
        }
        /* byte l of each 32-byte half holds elements l, l+32, l+64, l+96 */
        for (int h = 0; h < 2; h++)
            for (int l = 0; l < 32; l++) {
                const uint8_t *Lh = L + 128 * h + l;
                b[i].qs[32 * h + l] = (uint8_t)(Lh[0] | (Lh[32] << 2) | (Lh[64] << 4) | (Lh[96] << 6));
            }
    }
}

/* Q6_K: 16 signed 8-bit scales per block, symmetric 6-bit quants. */
static void q6_K_from_float(const float *src, void *dst, int64_t n) {
    blk_q6_K *b = dst;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float *x = src + i * QK_K;
        float scales[16], amax_scale = 0, max_scale = 0;
        for (int g = 0; g < 16; g++) {
            float amax = 0, vmax = 0;
            for (int l = 0; l < 16; l++)
                if (fabsf(x[16 * g + l]) > amax) { amax = fabsf(x[16 * g + l]); vmax = x[16 * g + l]; }
            /* the extreme maps to -32 so the asymmetric range [-32, 31] is used */
            scales[g] = vmax / -32.0f;
            if (fabsf(scales[g]) > amax_scale) { amax_scale = fabsf(scales[g]); max_scale = scales[g]; }
        }
        memset(&b[i], 0, sizeof b[i]);
        if (amax_scale == 0) continue;
        float is = -128.0f / max_scale;
        for (int g = 0; g < 16; g++) {
            int v = nearest(is * scales[g]);
            b[i].scales[g] = (int8_t)(v > 127 ? 127 : v < -128 ? -128 : v);
        }
        b[i].d = ds4j_f32_to_f16(1.0f / is);
        float d = F16(b[i].d);
        for (int e = 0; e < QK_K; e++) {
            float dl = d * b[i].scales[e / 16];
            int q = dl != 0.0f ? nearest(x[e] / dl) : 0;
            q = (q < -32 ? -32 : q > 31 ? 31 : q) + 32;
            int h = e / 128, r = e % 128, quarter = r / 32, l = r % 32;
            uint8_t *lb = &b[i].ql[64 * h + l + 32 * (quarter & 1)];
            *lb |= (uint8_t)(quarter >= 2 ? (q & 0x0F) << 4 : (q & 0x0F));
            b[i].qh[32 * h + l] |= (uint8_t)((q >> 4) << (2 * quarter));
        }
    }
}

/* --------------------------------------------------------------- traits */

#define T_FLOAT(id, nm, bs, ts, tf, ff, dot)                                           \
    [id] = {.name = nm, .block_size = bs, .type_size = ts, .quantized = false, .supported = true, \
            .to_float = tf, .from_float = ff, .act_type = DS4J_TYPE_F32, .vec_dot = dot, .vec_dot_ref = dot}
#define T_QUANT(id, nm, bs, ts, tf, ff, act, dot)                                      \
    [id] = {.name = nm, .block_size = bs, .type_size = ts, .quantized = true, .supported = true, \
            .to_float = tf, .from_float = ff, .act_type = act, .vec_dot = dot, .vec_dot_ref = dot}
#define T_PLAIN(id, nm, ts) \
    [id] = {.name = nm, .block_size = 1, .type_size = ts, .quantized = false, .supported = false, .act_type = -1}

static ds4j_type_traits g_traits[DS4J_TYPE_COUNT] = {
    T_FLOAT(DS4J_TYPE_F32, "F32", 1, 4, f32_to_float, f32_from_float, dot_f32_ref),
    T_FLOAT(DS4J_TYPE_F16, "F16", 1, 2, f16_to_float, f16_from_float, dot_f16_ref),
    T_FLOAT(DS4J_TYPE_BF16, "BF16", 1, 2, bf16_to_float, bf16_from_float, dot_bf16_ref),
    T_QUANT(DS4J_TYPE_Q4_0, "Q4_0", 32, 18, q4_0_to_float, q4_0_from_float, DS4J_TYPE_Q8_0, dot_q4_0_ref),
    T_QUANT(DS4J_TYPE_Q8_0, "Q8_0", 32, 34, q8_0_to_float, q8_0_from_float, DS4J_TYPE_Q8_0, dot_q8_0_ref),
    T_QUANT(DS4J_TYPE_Q2_K, "Q2_K", 256, 84, q2_K_to_float, q2_K_from_float, DS4J_TYPE_Q8_K, dot_q2_K_ref),
    T_QUANT(DS4J_TYPE_Q3_K, "Q3_K", 256, 110, q3_K_to_float, NULL, DS4J_TYPE_Q8_K, dot_q3_K_ref),
    T_QUANT(DS4J_TYPE_Q4_K, "Q4_K", 256, 144, q4_K_to_float, q4_K_from_float, DS4J_TYPE_Q8_K, dot_q4_K_ref),
    T_QUANT(DS4J_TYPE_Q5_K, "Q5_K", 256, 176, q5_K_to_float, NULL, DS4J_TYPE_Q8_K, dot_q5_K_ref),
    T_QUANT(DS4J_TYPE_Q6_K, "Q6_K", 256, 210, q6_K_to_float, q6_K_from_float, DS4J_TYPE_Q8_K, dot_q6_K_ref),
    T_QUANT(DS4J_TYPE_IQ2_XXS, "IQ2_XXS", 256, 66, iq2_xxs_to_float, NULL, DS4J_TYPE_Q8_K, dot_iq2_xxs_ref),
    T_QUANT(DS4J_TYPE_IQ2_XS, "IQ2_XS", 256, 74, iq2_xs_to_float, NULL, DS4J_TYPE_Q8_K, dot_iq2_xs_ref),
    T_QUANT(DS4J_TYPE_IQ4_XS, "IQ4_XS", 256, 136, iq4_xs_to_float, NULL, DS4J_TYPE_Q8_K, dot_iq4_xs_ref),
    /* Q8_K only exists as an activation format: no dot of its own */
    [DS4J_TYPE_Q8_K] = {.name = "Q8_K", .block_size = 256, .type_size = 292, .quantized = true, .supported = false,
                        .to_float = q8_K_to_float, .from_float = q8_K_from_float, .act_type = -1},
    T_PLAIN(DS4J_TYPE_I8, "I8", 1),
    T_PLAIN(DS4J_TYPE_I16, "I16", 2),
    T_PLAIN(DS4J_TYPE_I32, "I32", 4),
    T_PLAIN(DS4J_TYPE_I64, "I64", 8),
    T_PLAIN(DS4J_TYPE_F64, "F64", 8),
};

static pthread_once_t g_init_once = PTHREAD_ONCE_INIT;
static const char *g_kernel_name = "scalar";
/* multi-token kernels (NULL: ds4j_matmul calls vec_dot per token) */
static ds4j_mdot_fn g_mdot[DS4J_TYPE_COUNT];
#if defined(DS4J_HAVE_AVX2_KERNELS)
/* Q8_0 multi-token kernel taking float block scales (VNNI; NULL: g_mdot) */
static ds4j_mdot_scaled_fn g_mdot_q8_0_scaled;
#endif

#if defined(DS4J_HAVE_AVX2_KERNELS)
#include <cpuid.h>
/* F16C via CPUID leaf 1 ECX bit 29: clang 14's __builtin_cpu_supports does
 * not know the "f16c" feature string. */
static bool cpu_has_f16c(void) {
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
}

/* AVX-512 with byte permutes (VBMI) and GF(2) affine bytes (GFNI); GCC's
 * checks include the OS's XCR0 support for the zmm state. */
bool ds4j_cpu_has_avx512_vnni(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
}

bool ds4j_cpu_has_avx512_iq(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("gfni");
}
#endif

static void quants_init_once(void) {
#if defined(DS4J_HAVE_AVX2_KERNELS)
    const char *env = getenv("DS4J_QUANTS_KERNELS");
    bool force_scalar = env && strcmp(env, "scalar") == 0;
    bool no_avx512 = env && strcmp(env, "avx2") == 0;   /* DS4J_QUANTS_KERNELS=avx2: AVX2 only */
    __builtin_cpu_init();
    if (!force_scalar && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
        cpu_has_f16c()) {
        ds4j_quants_avx2_init();
        g_traits[DS4J_TYPE_F32].vec_dot = ds4j_dot_f32_avx2;
        g_traits[DS4J_TYPE_F16].vec_dot = ds4j_dot_f16_avx2;
        g_traits[DS4J_TYPE_F16].to_float = ds4j_f16_to_f32_row_avx2;
        g_traits[DS4J_TYPE_BF16].vec_dot = ds4j_dot_bf16_avx2;
        g_traits[DS4J_TYPE_Q8_0].vec_dot = ds4j_dot_q8_0_avx2;
        g_traits[DS4J_TYPE_Q4_0].vec_dot = ds4j_dot_q4_0_avx2;
        g_traits[DS4J_TYPE_Q2_K].vec_dot = ds4j_dot_q2_K_avx2;
        g_traits[DS4J_TYPE_Q4_K].vec_dot = ds4j_dot_q4_K_avx2;
        g_traits[DS4J_TYPE_Q6_K].vec_dot = ds4j_dot_q6_K_avx2;
        g_traits[DS4J_TYPE_IQ2_XXS].vec_dot = ds4j_dot_iq2_xxs_avx2;
        g_traits[DS4J_TYPE_IQ2_XS].vec_dot = ds4j_dot_iq2_xs_avx2;
        g_traits[DS4J_TYPE_Q5_K].vec_dot = ds4j_dot_q5_K_avx2;
        g_traits[DS4J_TYPE_IQ4_XS].vec_dot = ds4j_dot_iq4_xs_avx2;
        g_mdot[DS4J_TYPE_Q8_0] = ds4j_mdot_q8_0_avx2;
        g_mdot[DS4J_TYPE_F16] = ds4j_mdot_f16_avx2;
        g_mdot[DS4J_TYPE_IQ2_XXS] = ds4j_mdot_iq2_xxs_avx2;
        g_mdot[DS4J_TYPE_Q4_K] = ds4j_mdot_q4_K_avx2;
        g_mdot[DS4J_TYPE_Q2_K] = ds4j_mdot_q2_K_avx2;
        g_kernel_name = "avx2";
        if (!no_avx512 && ds4j_cpu_has_avx512_iq()) {
            ds4j_quants_avx512_init();
            g_traits[DS4J_TYPE_IQ2_XXS].vec_dot = ds4j_dot_iq2_xxs_avx512;
            g_mdot[DS4J_TYPE_IQ2_XXS] = ds4j_mdot_iq2_xxs_avx512;
            g_traits[DS4J_TYPE_IQ2_XS].vec_dot = ds4j_dot_iq2_xs_avx512;
            g_kernel_name = "avx2+avx512";
        }
        if (!no_avx512 && ds4j_cpu_has_avx512_vnni()) g_mdot_q8_0_scaled = ds4j_mdot_q8_0_vnni;
    }
#endif
}

void ds4j_quants_init(void) { pthread_once(&g_init_once, quants_init_once); }

const char *ds4j_quants_kernel_name(void) {
    ds4j_quants_init();
    return g_kernel_name;
}

const ds4j_type_traits *ds4j_type_get(int32_t type) {
    if (type < 0 || type >= DS4J_TYPE_COUNT || g_traits[type].name == NULL) return NULL;
    ds4j_quants_init();
    return &g_traits[type];
}

int64_t ds4j_row_size(int32_t type, int64_t n) {
    if (type < 0 || type >= DS4J_TYPE_COUNT || g_traits[type].name == NULL || n < 0) return -1;
    const ds4j_type_traits *t = &g_traits[type];
    if (n % t->block_size != 0) return -1;
    int64_t bytes;
    if (!ds4j_mul_ok(n / t->block_size, t->type_size, &bytes)) return -1;
    return bytes;
}

/* -------------------------------------------------------------- drivers */

size_t ds4j_act_size(int32_t weight_type, int64_t n_cols) {
    const ds4j_type_traits *t = ds4j_type_get(weight_type);
    if (!t || !t->supported) return 0;
    int64_t wb = ds4j_row_size(weight_type, n_cols);
    int64_t ab = ds4j_row_size(t->act_type, n_cols);
    if (wb < 0 || ab < 0) return 0;
    return (size_t)ab;
}

int ds4j_quantize_act(int32_t weight_type, const float *x, int64_t n, void *act_q) {
    if (ds4j_act_size(weight_type, n) == 0 || !x || !act_q)
        return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "quantize_act: bad type %d or length %lld", (int)weight_type,
                         (long long)n);
    const ds4j_type_traits *t = ds4j_type_get(weight_type);
    g_traits[t->act_type].from_float(x, act_q, n);
    return 0;
}

int ds4j_matvec(int32_t type, const void *w, int64_t row_stride_bytes, int64_t n_rows, int64_t n_cols,
                const void *act_q, float *out) {
    const ds4j_type_traits *t = ds4j_type_get(type);
    int64_t rb = ds4j_row_size(type, n_cols);
    if (!t || !t->supported || !t->vec_dot || rb < 0 || n_rows < 0 || row_stride_bytes < rb || !w || !act_q || !out)
        return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "matvec: bad arguments (type %d, %lld x %lld, stride %lld)",
                         (int)type, (long long)n_rows, (long long)n_cols, (long long)row_stride_bytes);
    ds4j_vec_dot_fn dot = t->vec_dot;
    const uint8_t *wr = w;
    for (int64_t r = 0; r < n_rows; r++) out[r] = dot(wr + r * row_stride_bytes, act_q, n_cols);
    return 0;
}

#if defined(DS4J_HAVE_AVX2_KERNELS)
/* ds4j_matmul for Q8_0 with the VNNI kernel: per weight tile and group of
 * tokens the activations' block scales are converted to float once (not
 * once per weight row); same tiles and groups as the generic driver. */
static int matmul_q8_0_scaled(const uint8_t *wr, int64_t row_stride_bytes, int64_t n_rows, int64_t n_cols,
                              const uint8_t *ar, int64_t act_stride_bytes, int64_t n_tokens, float *out,
                              int64_t out_stride_floats) {
    float ys[DS4J_MDOT_MAX * 1024];
    int64_t nb = n_cols / QK8_0, rb = nb * (int64_t)sizeof(blk_q8_0);
    int64_t tile = (256 * 1024) / (rb > 0 ? rb : 1);
    if (tile < 1) tile = 1;
    if (tile > 64) tile = 64;
    for (int64_t r0 = 0; r0 < n_rows; r0 += tile) {
        int64_t r1 = r0 + tile < n_rows ? r0 + tile : n_rows;
        for (int64_t k = 0; k < n_tokens; k += DS4J_MDOT_MAX) {
            int nt = n_tokens - k < DS4J_MDOT_MAX ? (int)(n_tokens - k) : DS4J_MDOT_MAX;
            const uint8_t *a = ar + k * act_stride_bytes;
            for (int t = 0; t < nt; t++) {
                const blk_q8_0 *y = (const blk_q8_0 *)(a + t * act_stride_bytes);
                for (int64_t i = 0; i < nb; i++) ys[t * nb + i] = F16(y[i].d);
            }
            float *o = out + k * out_stride_floats;
            for (int64_t r = r0; r < r1; r++)
                g_mdot_q8_0_scaled(wr + r * row_stride_bytes, a, act_stride_bytes, ys, n_cols, nt, o + r,
                                   out_stride_floats);
        }
    }
    return 0;
}
#endif

int ds4j_matmul(int32_t type, const void *w, int64_t row_stride_bytes, int64_t n_rows, int64_t n_cols,
                const void *act_q, int64_t act_stride_bytes, int64_t n_tokens, float *out,
                int64_t out_stride_floats) {
    const ds4j_type_traits *t = ds4j_type_get(type);
    int64_t rb = ds4j_row_size(type, n_cols);
    int64_t ab = t && t->supported ? ds4j_row_size(t->act_type, n_cols) : -1;
    if (!t || !t->supported || !t->vec_dot || rb < 0 || ab < 0 || n_rows < 0 || n_tokens < 0 ||
        row_stride_bytes < rb || act_stride_bytes < ab || (n_tokens > 1 && out_stride_floats < n_rows) || !w ||
        !act_q || !out)
        return ds4j_fail(DS4J_ERR_INVALID_ARGUMENT, "matmul: bad arguments (type %d, %lld x %lld, %lld tokens)",
                         (int)type, (long long)n_rows, (long long)n_cols, (long long)n_tokens);
    ds4j_vec_dot_fn dot = t->vec_dot;
    ds4j_mdot_fn mdot = g_mdot[type];
    const uint8_t *wr = w, *ar = act_q;
#if defined(DS4J_HAVE_AVX2_KERNELS)
    if (type == DS4J_TYPE_Q8_0 && g_mdot_q8_0_scaled && n_tokens > 1 && n_cols / QK8_0 <= 1024)
        return matmul_q8_0_scaled(w, row_stride_bytes, n_rows, n_cols, act_q, act_stride_bytes, n_tokens, out,
                                  out_stride_floats);
#endif
    /* A tile of weight rows (~256 KiB) is reused across all tokens while it
     * is hot in L2; activations are small and stay cached anyway. Where a
     * multi-token kernel exists, each row is also unpacked once per group
     * of DS4J_MDOT_MAX tokens instead of once per token. */
    int64_t tile = rb > 0 ? (256 * 1024) / rb : n_rows;
    if (tile < 1) tile = 1;
    if (tile > 64) tile = 64;
    for (int64_t r0 = 0; r0 < n_rows; r0 += tile) {
        int64_t r1 = r0 + tile < n_rows ? r0 + tile : n_rows;
        if (mdot && n_tokens > 1) {
            for (int64_t k = 0; k < n_tokens; k += DS4J_MDOT_MAX) {
                int nt = n_tokens - k < DS4J_MDOT_MAX ? (int)(n_tokens - k) : DS4J_MDOT_MAX;
                const void *a = ar + k * act_stride_bytes;
                float *o = out + k * out_stride_floats;
                for (int64_t r = r0; r < r1; r++)
                    mdot(wr + r * row_stride_bytes, a, act_stride_bytes, n_cols, nt, o + r, out_stride_floats);
            }
            continue;
        }
        for (int64_t k = 0; k < n_tokens; k++) {
            const void *a = ar + k * act_stride_bytes;
            float *o = out + k * out_stride_floats;
            for (int64_t r = r0; r < r1; r++) o[r] = dot(wr + r * row_stride_bytes, a, n_cols);
        }
    }
    return 0;
}
