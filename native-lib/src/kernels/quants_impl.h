/*
 * quants_impl.h — private to quants.c / quants_*.c: the on-disk block
 * layouts of the ggml types (byte-exact, little-endian) and the prototypes of
 * the SIMD kernels that ds4j_quants_init() may select. Model code must use
 * quants.h instead.
 */
#ifndef DS4J_QUANTS_IMPL_H
#define DS4J_QUANTS_IMPL_H

#include <stdint.h>

#include "quants.h"

#define QK4_0 32
#define QK8_0 32
#define QK_K 256

/* Every block is a sequence of naturally aligned fields, so these structs
 * have no padding; the static asserts below pin the sizes to the format. */
typedef struct { uint16_t d; int8_t qs[QK8_0]; } blk_q8_0;
typedef struct { uint16_t d; uint8_t qs[QK4_0 / 2]; } blk_q4_0;
typedef struct { uint8_t scales[16]; uint8_t qs[64]; uint16_t d, dmin; } blk_q2_K;
typedef struct { uint8_t hmask[32]; uint8_t qs[64]; uint8_t scales[12]; uint16_t d; } blk_q3_K;
typedef struct { uint16_t d, dmin; uint8_t scales[12]; uint8_t qs[128]; } blk_q4_K;
typedef struct { uint16_t d, dmin; uint8_t scales[12]; uint8_t qh[32]; uint8_t qs[128]; } blk_q5_K;
typedef struct { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; uint16_t d; } blk_q6_K;
typedef struct { float d; int8_t qs[QK_K]; int16_t bsums[QK_K / 16]; } blk_q8_K;
typedef struct { uint16_t d; uint16_t qs[32]; } blk_iq2_xxs;
typedef struct { uint16_t d; uint16_t qs[32]; uint8_t scales[8]; } blk_iq2_xs;
typedef struct { uint16_t d; uint16_t scales_h; uint8_t scales_l[4]; uint8_t qs[128]; } blk_iq4_xs;

_Static_assert(sizeof(blk_q8_0) == 34, "q8_0 size");
_Static_assert(sizeof(blk_q4_0) == 18, "q4_0 size");
_Static_assert(sizeof(blk_q2_K) == 84, "q2_K size");
_Static_assert(sizeof(blk_q3_K) == 110, "q3_K size");
_Static_assert(sizeof(blk_q4_K) == 144, "q4_K size");
_Static_assert(sizeof(blk_q5_K) == 176, "q5_K size");
_Static_assert(sizeof(blk_q6_K) == 210, "q6_K size");
_Static_assert(sizeof(blk_q8_K) == 292, "q8_K size");
_Static_assert(sizeof(blk_iq2_xxs) == 66, "iq2_xxs size");
_Static_assert(sizeof(blk_iq2_xs) == 74, "iq2_xs size");
_Static_assert(sizeof(blk_iq4_xs) == 136, "iq4_xs size");

/* Q4_K/Q5_K pack eight 6-bit (scale, min) pairs into 12 bytes: pairs 0..3
 * sit in the low 6 bits of bytes 0..3 / 4..7; pairs 4..7 keep their low
 * nibbles in bytes 8..11 and their top 2 bits in the spare bits 6..7 of
 * bytes 0..7. */
static inline void ds4j_k4_scale_min(int j, const uint8_t *q, int *sc, int *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

/* Sign byte of an IQ2 group: the low 7 bits are stored, the eighth makes
 * the number of negative signs even. */
static inline uint8_t ds4j_iq2_signs(uint32_t s7) {
    s7 &= 127;
    return (uint8_t)(s7 | ((__builtin_popcount(s7) & 1) << 7));
}

/* Multi-token row kernel: out[t * out_stride] = dot(w, a + t * a_stride) for
 * t < ntok (1..DS4J_MDOT_MAX), each bit-identical to the type's vec_dot, so
 * prefill through ds4j_matmul equals token-by-token decode exactly. */
#define DS4J_MDOT_MAX 4
typedef void (*ds4j_mdot_fn)(const void *w, const void *a, int64_t a_stride, int64_t n, int ntok, float *out,
                             int64_t out_stride);

#if defined(DS4J_HAVE_AVX2_KERNELS)
void ds4j_mdot_q8_0_avx2(const void *w, const void *a, int64_t a_stride, int64_t n, int ntok, float *out,
                         int64_t out_stride);
void ds4j_mdot_f16_avx2(const void *w, const void *a, int64_t a_stride, int64_t n, int ntok, float *out,
                        int64_t out_stride);
void ds4j_mdot_iq2_xxs_avx2(const void *w, const void *a, int64_t a_stride, int64_t n, int ntok, float *out,
                            int64_t out_stride);
void ds4j_mdot_q4_K_avx2(const void *w, const void *a, int64_t a_stride, int64_t n, int ntok, float *out,
                         int64_t out_stride);
void ds4j_mdot_q2_K_avx2(const void *w, const void *a, int64_t a_stride, int64_t n, int ntok, float *out,
                         int64_t out_stride);
void ds4j_mdot_iq2_xxs_avx512(const void *w, const void *a, int64_t a_stride, int64_t n, int ntok, float *out,
                              int64_t out_stride);
float ds4j_dot_f32_avx2(const void *w, const void *a, int64_t n);
float ds4j_dot_f16_avx2(const void *w, const void *a, int64_t n);
float ds4j_dot_bf16_avx2(const void *w, const void *a, int64_t n);
float ds4j_dot_q8_0_avx2(const void *w, const void *a, int64_t n);
float ds4j_dot_q4_0_avx2(const void *w, const void *a, int64_t n);
float ds4j_dot_q2_K_avx2(const void *w, const void *a, int64_t n);
float ds4j_dot_q4_K_avx2(const void *w, const void *a, int64_t n);
float ds4j_dot_q6_K_avx2(const void *w, const void *a, int64_t n);
float ds4j_dot_iq2_xxs_avx2(const void *w, const void *a, int64_t n);
float ds4j_dot_iq2_xs_avx2(const void *w, const void *a, int64_t n);
float ds4j_dot_q5_K_avx2(const void *w, const void *a, int64_t n);
float ds4j_dot_iq4_xs_avx2(const void *w, const void *a, int64_t n);
void ds4j_f16_to_f32_row_avx2(const void *src, float *dst, int64_t n);
/* builds the sign-expansion table used by the IQ2 kernels */
void ds4j_quants_avx2_init(void);
/* AVX-512 F/BW/VBMI + GFNI kernels (quants_avx512.c, target attributes);
 * only call after ds4j_cpu_has_avx512_iq() and ds4j_quants_avx512_init(). */
float ds4j_dot_iq2_xxs_avx512(const void *w, const void *a, int64_t n);
float ds4j_dot_iq2_xs_avx512(const void *w, const void *a, int64_t n);
float ds4j_dot_iq2_xxs_avx512g(const void *w, const void *a, int64_t n);
void ds4j_quants_avx512_init(void);
bool ds4j_cpu_has_avx512_iq(void);
/* Q8_0 against up to DS4J_MDOT_MAX tokens whose block scales are given as
 * floats, ys[t * (n / 32) + i] (AVX-512 VL + VNNI; bit-identical to
 * ds4j_dot_q8_0_avx2). Only after ds4j_cpu_has_avx512_vnni(). */
typedef void (*ds4j_mdot_scaled_fn)(const void *w, const void *a, int64_t a_stride, const float *ys, int64_t n,
                                    int ntok, float *out, int64_t out_stride);
void ds4j_mdot_q8_0_vnni(const void *w, const void *a, int64_t a_stride, const float *ys, int64_t n, int ntok,
                         float *out, int64_t out_stride);
bool ds4j_cpu_has_avx512_vnni(void);
#endif

#endif /* DS4J_QUANTS_IMPL_H */
