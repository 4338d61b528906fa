/*
 * quants_avx512.c — AVX-512 (F, BW, VBMI) + GFNI kernels for the types
 * whose AVX2 dot is bound by table lookups rather than memory: IQ2_XXS.
 * Functions carry target attributes (no special compile flags) and are only
 * installed by ds4j_quants_init() after a CPUID check for every feature they
 * use; x86-64 AVX2 builds only.
 *
 * IQ2_XXS without scalar lookups: every grid row is 8 magnitudes from
 * {8, 25, 43}, so the 256-entry grid shrinks to 2-bit codes, one 16-bit word
 * per row (512 bytes = 8 registers). The 32 rows of a block are fetched with
 * four two-register word permutes (vpermt2w) selected by index bits 6..7;
 * vpmultishiftqb then spreads the codes to one per byte and vpermb maps
 * them to magnitudes. Signs: the 7-bit fields of a whole block are gathered
 * one per byte (vpmultishiftqb or vpermb) and one GF(2) affine map
 * (gf2p8affineqb) turns each into its 8 sign bits (bit 7 = parity of the
 * others); qword k of the result is then the 64-bit negate mask of chunk k.
 *
 * Q8_0 against several tokens with AVX-512 VNNI (ds4j_mdot_q8_0_vnni, used by
 * ds4j_matmul for multi-row products): vpdpbusd replaces maddubs + madd
 * (the same int32 lane sums: no int16 pair sum can saturate, |w| <= 128 and
 * activations are in [-127, 127]), and the activations' block scales come
 * in already converted to float, once per token group instead of once per
 * weight row. The float steps are those of ds4j_dot_q8_0_avx2 lane by lane,
 * so every result is bit-identical to it.
 */
#include <stdalign.h>
#include <stdint.h>
#include <string.h>

#include "quants.h"
#include "quants_impl.h"
#include "quants_iq_tables.h"

#if defined(DS4J_HAVE_AVX2_KERNELS)
#include <immintrin.h>

#define AVX512_TARGET __attribute__((target("avx512f,avx512bw,avx512vbmi,gfni,f16c,fma")))

/* All constant vectors, filled once by ds4j_quants_avx512_init(). */
static struct {
    alignas(64) uint16_t codes[256];     /* 2-bit codes of the IQ2_XXS grid rows */
    alignas(64) uint8_t gidx[64];        /* word t <- grid index byte of row t */
    alignas(64) uint16_t rowq[4][32];    /* chunk k: qword q <- code of row 8k+q */
    alignas(64) uint8_t ctl_grid[64];    /* byte j of a qword <- bits 2j.. */
    alignas(64) uint8_t mag[64];         /* code (low 2 bits) -> magnitude */
    alignas(64) uint16_t mulw[4][32];    /* chunk k: words of group 2k, then 2k+1 <- their multiplier */
    /* IQ2_XS: 512 grid rows, 9-bit index + 7-bit signs per 16-bit entry */
    alignas(64) uint16_t xs_codes[512];
    alignas(64) uint16_t xs_rowq[4][32];  /* chunk k: qword q <- entry 8k+q (all 4 words) */
    alignas(64) uint16_t xs_mulw[4][32];  /* chunk k: word w <- multiplier of half-group 4k + w/8 */
    alignas(64) uint8_t xs_hi[64];        /* byte t <- high byte of entry t (sign field in bits 1..7) */
} K;

/* Sign bytes of all 8 groups of an IQ2_XXS block: qword k (k < 4) is the
 * negate mask of weights 64k..64k+63. The groups' sign words (odd dwords)
 * are paired per qword, vpmultishiftqb puts field m of each at byte m, and
 * the affine map keeps bits 0..6 and sets bit 7 to their parity. */
AVX512_TARGET static inline __m512i iq2xxs_neg_masks(__m512i q) {
    const __m512i sidx = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 1, 3, 5, 7, 9, 11, 13, 15);
    const __m512i sctl = _mm512_set1_epi64((long long)0x352E2720150E0700ull);   /* 0,7,14,21, 32,39,46,53 */
    const __m512i aff = _mm512_set1_epi64((long long)0x010204081020407Full);
    return _mm512_gf2p8affine_epi64_epi8(_mm512_multishift_epi64_epi8(sctl, _mm512_permutexvar_epi32(sidx, q)), aff, 0);
}

static uint16_t grid_codes(uint64_t row) {
    uint16_t c = 0;
    for (int j = 0; j < 8; j++) {
        unsigned v = (unsigned)(row >> (8 * j)) & 0xFF;
        c |= (uint16_t)((v == 8 ? 0 : v == 25 ? 1 : 2) << (2 * j));
    }
    return c;
}

void ds4j_quants_avx512_init(void) {
    for (int e = 0; e < 256; e++) K.codes[e] = grid_codes(ds4j_iq2xxs_grid[e]);
    for (int e = 0; e < 512; e++) K.xs_codes[e] = grid_codes(ds4j_iq2xs_grid[e]);
    for (int t = 0; t < 32; t++) {
        K.gidx[2 * t] = (uint8_t)(8 * (t / 4) + t % 4);
        K.gidx[2 * t + 1] = 0;
    }
    static const uint8_t MAG[4] = {8, 25, 43, 0};
    for (int b = 0; b < 64; b++) {
        int j = b % 8;
        K.ctl_grid[b] = (uint8_t)(2 * j);
        K.mag[b] = MAG[b & 3];
        K.xs_hi[b] = (uint8_t)(2 * (b % 32) + 1);
    }
    for (int k = 0; k < 4; k++) {
        for (int w = 0; w < 32; w++) {
            K.rowq[k][w] = (uint16_t)(8 * k + w / 4);
            /* multiplier of group g sits in the low word of dword 2g+1 */
            K.mulw[k][w] = (uint16_t)(2 * (2 * (2 * k + w / 16) + 1));
        }
        for (int w = 0; w < 32; w++) {
            K.xs_rowq[k][w] = (uint16_t)(8 * k + w / 4);
            K.xs_mulw[k][w] = (uint16_t)(4 * k + w / 8);
        }
    }
}

AVX512_TARGET
float ds4j_dot_iq2_xxs_avx512(const void *w, const void *a, int64_t n) {
    const blk_iq2_xxs *x = w;
    const blk_q8_K *y = a;
    const int64_t nb = n / QK_K;
    const __m512i T0 = _mm512_load_si512(K.codes), T1 = _mm512_load_si512(K.codes + 32);
    const __m512i T2 = _mm512_load_si512(K.codes + 64), T3 = _mm512_load_si512(K.codes + 96);
    const __m512i T4 = _mm512_load_si512(K.codes + 128), T5 = _mm512_load_si512(K.codes + 160);
    const __m512i T6 = _mm512_load_si512(K.codes + 192), T7 = _mm512_load_si512(K.codes + 224);
    const __m512i gidx = _mm512_load_si512(K.gidx), ctl_grid = _mm512_load_si512(K.ctl_grid);
    const __m512i mag = _mm512_load_si512(K.mag);
    const __m512i b6 = _mm512_set1_epi16(0x40), b7 = _mm512_set1_epi16(0x80);
    const __m512i zero = _mm512_setzero_si512();
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const __m512i q = _mm512_loadu_si512(x[i].qs);
        /* the 32 grid indices as words, then their 2-bit code rows */
        const __m512i idx = _mm512_maskz_permutexvar_epi8(0x5555555555555555ull, gidx, q);
        __m512i c01 = _mm512_mask_mov_epi16(_mm512_permutex2var_epi16(T0, idx, T1), _mm512_test_epi16_mask(idx, b6),
                                            _mm512_permutex2var_epi16(T2, idx, T3));
        __m512i c23 = _mm512_mask_mov_epi16(_mm512_permutex2var_epi16(T4, idx, T5), _mm512_test_epi16_mask(idx, b6),
                                            _mm512_permutex2var_epi16(T6, idx, T7));
        const __m512i codes = _mm512_mask_mov_epi16(c01, _mm512_test_epi16_mask(idx, b7), c23);
        /* 2 * scale + 1 in the low word of every odd dword */
        const __m512i mul = _mm512_or_si512(_mm512_slli_epi32(_mm512_srli_epi32(q, 28), 1), _mm512_set1_epi32(1));
        alignas(64) uint64_t neg_bits[8];
        _mm512_store_si512(neg_bits, iq2xxs_neg_masks(q));
        const int8_t *q8 = y[i].qs;
        __m512i isum = _mm512_setzero_si512();
        for (int k = 0; k < 4; k++) {
            __m512i rows = _mm512_permutexvar_epi16(_mm512_load_si512(K.rowq[k]), codes);
            __m512i gv = _mm512_permutexvar_epi8(_mm512_multishift_epi64_epi8(ctl_grid, rows), mag);
            __mmask64 neg = _cvtu64_mask64(neg_bits[k]);
            __m512i yv = _mm512_loadu_si512(q8 + 64 * k);
            yv = _mm512_mask_sub_epi8(yv, neg, zero, yv);
            __m512i p = _mm512_maddubs_epi16(gv, yv);
            __m512i m = _mm512_permutexvar_epi16(_mm512_load_si512(K.mulw[k]), mul);
            isum = _mm512_add_epi32(isum, _mm512_madd_epi16(p, m));
        }
        acc = _mm512_fmadd_ps(_mm512_set1_ps(y[i].d * _cvtsh_ss(x[i].d) * 0.125f), _mm512_cvtepi32_ps(isum), acc);
    }
    return _mm512_reduce_add_ps(acc);
}

/* IQ2_XS: the same scheme with a 512-row grid (eight vpermt2w, selected by
 * index bits 6..8), signs in bits 9..15 of each entry and a 4-bit scale per
 * 16 weights. */
AVX512_TARGET
float ds4j_dot_iq2_xs_avx512(const void *w, const void *a, int64_t n) {
    const blk_iq2_xs *x = w;
    const blk_q8_K *y = a;
    const int64_t nb = n / QK_K;
    __m512i T[16];
    for (int t = 0; t < 16; t++) T[t] = _mm512_load_si512(K.xs_codes + 32 * t);
    const __m512i ctl_grid = _mm512_load_si512(K.ctl_grid), mag = _mm512_load_si512(K.mag);
    /* signs: the high byte of entry t to byte t; the affine map shifts the
     * field (bits 1..7) down and sets bit 7 to its parity */
    const __m512i hidx = _mm512_load_si512(K.xs_hi);
    const __m512i aff = _mm512_set1_epi64((long long)0x02040810204080FEull);
    const __m512i b6 = _mm512_set1_epi16(0x40), b7 = _mm512_set1_epi16(0x80);
    const __m512i b8 = _mm512_set1_epi16(0x100), zero = _mm512_setzero_si512();
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const __m512i q = _mm512_loadu_si512(x[i].qs);   /* 32 entries */
        const __mmask32 m6 = _mm512_test_epi16_mask(q, b6), m7 = _mm512_test_epi16_mask(q, b7);
        __m512i c0 = _mm512_mask_mov_epi16(_mm512_permutex2var_epi16(T[0], q, T[1]), m6, _mm512_permutex2var_epi16(T[2], q, T[3]));
        __m512i c1 = _mm512_mask_mov_epi16(_mm512_permutex2var_epi16(T[4], q, T[5]), m6, _mm512_permutex2var_epi16(T[6], q, T[7]));
        __m512i c2 = _mm512_mask_mov_epi16(_mm512_permutex2var_epi16(T[8], q, T[9]), m6, _mm512_permutex2var_epi16(T[10], q, T[11]));
        __m512i c3 = _mm512_mask_mov_epi16(_mm512_permutex2var_epi16(T[12], q, T[13]), m6, _mm512_permutex2var_epi16(T[14], q, T[15]));
        c0 = _mm512_mask_mov_epi16(c0, m7, c1);
        c2 = _mm512_mask_mov_epi16(c2, m7, c3);
        const __m512i codes = _mm512_mask_mov_epi16(c0, _mm512_test_epi16_mask(q, b8), c2);
        /* 16 half-group multipliers 2 * s + 1 as words (low nibble first) */
        __m128i sc = _mm_loadl_epi64((const __m128i *)x[i].scales);
        __m128i nib = _mm_unpacklo_epi8(_mm_and_si128(sc, _mm_set1_epi8(0x0F)), _mm_and_si128(_mm_srli_epi16(sc, 4), _mm_set1_epi8(0x0F)));
        __m512i mul = _mm512_castsi256_si512(_mm256_or_si256(_mm256_slli_epi16(_mm256_cvtepu8_epi16(nib), 1), _mm256_set1_epi16(1)));
        alignas(64) uint64_t neg_bits[8];
        _mm512_store_si512(neg_bits, _mm512_gf2p8affine_epi64_epi8(_mm512_permutexvar_epi8(hidx, q), aff, 0));
        const int8_t *q8 = y[i].qs;
        __m512i isum = _mm512_setzero_si512();
        for (int k = 0; k < 4; k++) {
            __m512i rowq = _mm512_load_si512(K.xs_rowq[k]);
            __m512i gv = _mm512_permutexvar_epi8(_mm512_multishift_epi64_epi8(ctl_grid, _mm512_permutexvar_epi16(rowq, codes)), mag);
            __mmask64 neg = _cvtu64_mask64(neg_bits[k]);
            __m512i yv = _mm512_loadu_si512(q8 + 64 * k);
            yv = _mm512_mask_sub_epi8(yv, neg, zero, yv);
            __m512i m = _mm512_permutexvar_epi16(_mm512_load_si512(K.xs_mulw[k]), mul);
            isum = _mm512_add_epi32(isum, _mm512_madd_epi16(_mm512_maddubs_epi16(gv, yv), m));
        }
        acc = _mm512_fmadd_ps(_mm512_set1_ps(y[i].d * _cvtsh_ss(x[i].d) * 0.125f), _mm512_cvtepi32_ps(isum), acc);
    }
    return _mm512_reduce_add_ps(acc);
}

/* Up to 4 tokens per weight row: the grid bytes and sign masks of each
 * 64-weight chunk are built once and reused for every token; per token the
 * arithmetic is the single-token kernel's, so results are bit-identical. */
AVX512_TARGET static inline __attribute__((always_inline)) void
mdot_iq2_xxs_nt(const blk_iq2_xxs *x, const uint8_t *a, int64_t a_stride, int64_t n, const int ntok, float *out,
                int64_t out_stride) {
    const int64_t nb = n / QK_K;
    const __m512i T0 = _mm512_load_si512(K.codes), T1 = _mm512_load_si512(K.codes + 32);
    const __m512i T2 = _mm512_load_si512(K.codes + 64), T3 = _mm512_load_si512(K.codes + 96);
    const __m512i T4 = _mm512_load_si512(K.codes + 128), T5 = _mm512_load_si512(K.codes + 160);
    const __m512i T6 = _mm512_load_si512(K.codes + 192), T7 = _mm512_load_si512(K.codes + 224);
    const __m512i gidx = _mm512_load_si512(K.gidx), ctl_grid = _mm512_load_si512(K.ctl_grid);
    const __m512i mag = _mm512_load_si512(K.mag);
    const __m512i b6 = _mm512_set1_epi16(0x40), b7 = _mm512_set1_epi16(0x80);
    const __m512i zero = _mm512_setzero_si512();
    const blk_q8_K *y[4];
    __m512 acc[4];
    for (int t = 0; t < 4; t++) {
        y[t] = (const blk_q8_K *)(a + (t < ntok ? t : 0) * a_stride);
        acc[t] = _mm512_setzero_ps();
    }
    for (int64_t i = 0; i < nb; i++) {
        const __m512i q = _mm512_loadu_si512(x[i].qs);
        const __m512i idx = _mm512_maskz_permutexvar_epi8(0x5555555555555555ull, gidx, q);
        __m512i c01 = _mm512_mask_mov_epi16(_mm512_permutex2var_epi16(T0, idx, T1), _mm512_test_epi16_mask(idx, b6),
                                            _mm512_permutex2var_epi16(T2, idx, T3));
        __m512i c23 = _mm512_mask_mov_epi16(_mm512_permutex2var_epi16(T4, idx, T5), _mm512_test_epi16_mask(idx, b6),
                                            _mm512_permutex2var_epi16(T6, idx, T7));
        const __m512i codes = _mm512_mask_mov_epi16(c01, _mm512_test_epi16_mask(idx, b7), c23);
        const __m512i mul = _mm512_or_si512(_mm512_slli_epi32(_mm512_srli_epi32(q, 28), 1), _mm512_set1_epi32(1));
        alignas(64) uint64_t neg_bits[8];
        _mm512_store_si512(neg_bits, iq2xxs_neg_masks(q));
        __m512i isum[4] = {zero, zero, zero, zero};
        for (int k = 0; k < 4; k++) {
            __m512i rows = _mm512_permutexvar_epi16(_mm512_load_si512(K.rowq[k]), codes);
            __m512i gv = _mm512_permutexvar_epi8(_mm512_multishift_epi64_epi8(ctl_grid, rows), mag);
            __mmask64 neg = _cvtu64_mask64(neg_bits[k]);
            __m512i m = _mm512_permutexvar_epi16(_mm512_load_si512(K.mulw[k]), mul);
            for (int t = 0; t < 4; t++) {
                if (t >= ntok) break;
                __m512i yv = _mm512_loadu_si512(y[t][i].qs + 64 * k);
                yv = _mm512_mask_sub_epi8(yv, neg, zero, yv);
                isum[t] = _mm512_add_epi32(isum[t], _mm512_madd_epi16(_mm512_maddubs_epi16(gv, yv), m));
            }
        }
        const float dx = _cvtsh_ss(x[i].d);
        for (int t = 0; t < 4; t++) {
            if (t >= ntok) break;
            acc[t] = _mm512_fmadd_ps(_mm512_set1_ps(y[t][i].d * dx * 0.125f), _mm512_cvtepi32_ps(isum[t]), acc[t]);
        }
    }
    for (int t = 0; t < ntok; t++) out[t * out_stride] = _mm512_reduce_add_ps(acc[t]);
}

AVX512_TARGET
void ds4j_mdot_iq2_xxs_avx512(const void *w, const void *a, int64_t a_stride, int64_t n, int ntok, float *out,
                              int64_t out_stride) {
    switch (ntok) {
    case 4: mdot_iq2_xxs_nt(w, a, a_stride, n, 4, out, out_stride); break;
    case 3: mdot_iq2_xxs_nt(w, a, a_stride, n, 3, out, out_stride); break;
    case 2: mdot_iq2_xxs_nt(w, a, a_stride, n, 2, out, out_stride); break;
    default:
        for (int t = 0; t < ntok; t++) out[t * out_stride] = ds4j_dot_iq2_xxs_avx512(w, (const uint8_t *)a + t * a_stride, n);
    }
}

/* ------------------------------------------------------------ Q8_0, VNNI */

#define VNNI_TARGET __attribute__((target("avx2,avx512f,avx512bw,avx512vl,avx512vnni,f16c,fma")))

/* The same horizontal sum as quants_avx2.c's hsum_ps (order matters). */
VNNI_TARGET static inline float hsum_ps_vnni(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

VNNI_TARGET static inline __attribute__((always_inline)) void
mdot_q8_0_vnni_nt(const blk_q8_0 *x, const uint8_t *a, int64_t a_stride, const float *ys, int64_t nb, const int NT,
                  float *out, int64_t out_stride) {
    const blk_q8_0 *y[DS4J_MDOT_MAX];
    const float *d[DS4J_MDOT_MAX];
    __m256 c0[DS4J_MDOT_MAX], c1[DS4J_MDOT_MAX];
    for (int t = 0; t < NT; t++) {
        y[t] = (const blk_q8_0 *)(a + t * a_stride);
        d[t] = ys + t * nb;
        c0[t] = c1[t] = _mm256_setzero_ps();
    }
    const __m256i zero = _mm256_setzero_si256();
    int64_t i = 0;
    /* two blocks per step into alternating accumulators, as the AVX2 kernel */
    for (; i + 2 <= nb; i += 2) {
        __m256i x0 = _mm256_loadu_si256((const __m256i *)x[i].qs), x1 = _mm256_loadu_si256((const __m256i *)x[i + 1].qs);
        __m256i a0 = _mm256_sign_epi8(x0, x0), a1 = _mm256_sign_epi8(x1, x1);
        __m256 dx0 = _mm256_set1_ps(_cvtsh_ss(x[i].d)), dx1 = _mm256_set1_ps(_cvtsh_ss(x[i + 1].d));
        for (int t = 0; t < NT; t++) {
            __m256i p0 = _mm256_dpbusd_epi32(zero, a0, _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)y[t][i].qs), x0));
            __m256i p1 =
                _mm256_dpbusd_epi32(zero, a1, _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)y[t][i + 1].qs), x1));
            c0[t] = _mm256_fmadd_ps(_mm256_mul_ps(dx0, _mm256_set1_ps(d[t][i])), _mm256_cvtepi32_ps(p0), c0[t]);
            c1[t] = _mm256_fmadd_ps(_mm256_mul_ps(dx1, _mm256_set1_ps(d[t][i + 1])), _mm256_cvtepi32_ps(p1), c1[t]);
        }
    }
    for (; i < nb; i++) {
        __m256i x0 = _mm256_loadu_si256((const __m256i *)x[i].qs);
        __m256i a0 = _mm256_sign_epi8(x0, x0);
        __m256 dx0 = _mm256_set1_ps(_cvtsh_ss(x[i].d));
        for (int t = 0; t < NT; t++) {
            __m256i p0 = _mm256_dpbusd_epi32(zero, a0, _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)y[t][i].qs), x0));
            c0[t] = _mm256_fmadd_ps(_mm256_mul_ps(dx0, _mm256_set1_ps(d[t][i])), _mm256_cvtepi32_ps(p0), c0[t]);
        }
    }
    for (int t = 0; t < NT; t++) out[t * out_stride] = hsum_ps_vnni(_mm256_add_ps(c0[t], c1[t]));
}

VNNI_TARGET
void ds4j_mdot_q8_0_vnni(const void *w, const void *a, int64_t a_stride, const float *ys, int64_t n, int ntok,
                         float *out, int64_t out_stride) {
    const blk_q8_0 *x = w;
    const uint8_t *ab = a;
    const int64_t nb = n / QK8_0;
    switch (ntok) {
    case 4: mdot_q8_0_vnni_nt(x, ab, a_stride, ys, nb, 4, out, out_stride); break;
    case 3: mdot_q8_0_vnni_nt(x, ab, a_stride, ys, nb, 3, out, out_stride); break;
    case 2: mdot_q8_0_vnni_nt(x, ab, a_stride, ys, nb, 2, out, out_stride); break;
    default: mdot_q8_0_vnni_nt(x, ab, a_stride, ys, nb, 1, out, out_stride); break;
    }
}

#endif
