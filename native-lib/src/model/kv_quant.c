/*
 * kv_quant.c — E4M3 / E2M1 codecs, the normalised Hadamard transform and
 * the compact row formats of kv_precision=fp8 (see kv_quant.h).
 *
 * Rounding is done arithmetically (scale into the binade, rintf in the
 * default round-to-nearest-even mode) rather than by searching the value
 * table: on these grids an even integer multiple is an even code, so rintf's
 * ties-to-even is exactly "ties to the even code".
 */
#include "kv_quant.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "quants.h"

/* E4M3 magnitude of code c (0..127): subnormal m * 2^-9, normal (8+m) * 2^(E-10). */
#define E4V(E, m) ((E) == 0 ? (float)(m) / 512.0f : (8.0f + (float)(m)) * (float)(1 << (E)) / 1024.0f)
#define E4ROW(E) E4V(E, 0), E4V(E, 1), E4V(E, 2), E4V(E, 3), E4V(E, 4), E4V(E, 5), E4V(E, 6), E4V(E, 7)
static const float e4m3_mag[128] = {
    E4ROW(0), E4ROW(1), E4ROW(2), E4ROW(3), E4ROW(4), E4ROW(5), E4ROW(6), E4ROW(7),
    E4ROW(8), E4ROW(9), E4ROW(10), E4ROW(11), E4ROW(12), E4ROW(13), E4ROW(14), E4ROW(15),
};

static const float e2m1_mag[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};

/* Smallest normal f16; below it f16 keeps fewer bits than E4M3/E2M1 values
 * times their scale may carry, so ds4's f16 caches round there. */
#define F16_MIN_NORMAL 6.103515625e-05f

static inline float f16_round(float v) { return ds4j_f16_to_f32(ds4j_f32_to_f16(v)); }

uint8_t kvq_e4m3_encode(float x) {
    if (isnan(x)) return 0x7f;
    uint8_t sign = signbit(x) ? 0x80 : 0;
    float ax = fabsf(x);
    if (ax > KVQ_E4M3_MAX) ax = KVQ_E4M3_MAX;
    int code;
    if (ax < 0x1p-6f) {
        code = (int)rintf(ax * 512.0f); /* 0..8; 8 is the smallest normal */
    } else {
        int e;
        frexpf(ax, &e);
        int k = e - 1;                          /* ax in [2^k, 2^(k+1)), k in -6..8 */
        int q = (int)rintf(ldexpf(ax, 3 - k));  /* 8..16; 16 carries into the next binade */
        code = ((k + 7) << 3) + q - 8;
    }
    return (uint8_t)(sign | code);
}

float kvq_e4m3_decode(uint8_t c) {
    if ((c & 0x7f) == 0x7f) return NAN;
    float v = e4m3_mag[c & 0x7f];
    return (c & 0x80) ? -v : v;
}

uint8_t kvq_e2m1_encode(float x) {
    if (isnan(x)) return 0;
    uint8_t sign = signbit(x) ? 8 : 0;
    float ax = fabsf(x);
    if (ax > KVQ_E2M1_MAX) ax = KVQ_E2M1_MAX;
    int idx;
    if (ax < 2.0f) idx = (int)rintf(ax * 2.0f);          /* grid 0.5 */
    else if (ax < 4.0f) idx = 2 + (int)rintf(ax);        /* grid 1 */
    else idx = 4 + (int)rintf(ax * 0.5f);                /* grid 2 */
    return (uint8_t)(sign | idx);
}

float kvq_e2m1_decode(uint8_t c) {
    float v = e2m1_mag[c & 7];
    return (c & 8) ? -v : v;
}

int kvq_block_exp(float amax, float qmax, float floor) {
    if (!(amax >= floor)) amax = floor;
    if (amax > FLT_MAX) amax = FLT_MAX;
    int e;
    float f = frexpf(amax / qmax, &e); /* exact ceil(log2): no log2f rounding near powers of two */
    return f == 0.5f ? e - 1 : e;
}

int64_t kvq_hadamard_block(int64_t n) { return n & -n; }

void kvq_hadamard(float *x, int64_t n) {
    int64_t b = kvq_hadamard_block(n);
    if (b < 2) return;
    float norm = (float)(1.0 / sqrt((double)b));
    for (int64_t base = 0; base < n; base += b) {
        float *y = x + base;
        for (int64_t h = 1; h < b; h <<= 1)
            for (int64_t i = 0; i < b; i += 2 * h)
                for (int64_t j = i; j < i + h; j++) {
                    float a = y[j], c = y[j + h];
                    y[j] = a + c;
                    y[j + h] = a - c;
                }
        for (int64_t i = 0; i < b; i++) y[i] *= norm;
    }
}

static float block_amax(const float *x, int64_t n) {
    float a = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        float v = fabsf(x[i]);
        if (v > a) a = v;
    }
    return a;
}

#define FP8_AMAX_FLOOR 1.0e-4f
#define FP4_AMAX_FLOOR 7.052966104933725e-38f /* 6 * 2^-126: smallest scale 2^-126 */

void kvq_fp8_roundtrip(float *x, int64_t D, int64_t n_rot) {
    int64_t nn = D - n_rot;
    for (int64_t off = 0; off < nn; off += KVQ_FP8_BLOCK) {
        int64_t len = nn - off < KVQ_FP8_BLOCK ? nn - off : KVQ_FP8_BLOCK;
        int e = kvq_block_exp(block_amax(x + off, len), KVQ_E4M3_MAX, FP8_AMAX_FLOOR);
        float s = ldexpf(1.0f, e), inv = ldexpf(1.0f, -e);
        for (int64_t i = 0; i < len; i++) x[off + i] = kvq_e4m3_decode(kvq_e4m3_encode(x[off + i] * inv)) * s;
    }
}

void kvq_fp4_roundtrip(float *x, int64_t n) {
    for (int64_t off = 0; off < n; off += KVQ_FP4_BLOCK) {
        int64_t len = n - off < KVQ_FP4_BLOCK ? n - off : KVQ_FP4_BLOCK;
        int e = kvq_block_exp(block_amax(x + off, len), KVQ_E2M1_MAX, FP4_AMAX_FLOOR);
        float s = ldexpf(1.0f, e), inv = ldexpf(1.0f, -e);
        for (int64_t i = 0; i < len; i++) x[off + i] = kvq_e2m1_decode(kvq_e2m1_encode(x[off + i] * inv)) * s;
    }
}

void kvq_indexer_qat(float *x, int64_t n) {
    kvq_hadamard(x, n);
    kvq_fp4_roundtrip(x, n);
}

/* ------------------------------------------------------------ KV rows */
/* layout: [D-dr E4M3 codes][nblocks int8 exponents][dr f16] */

static int64_t nblocks(int64_t n, int64_t b) { return (n + b - 1) / b; }

int64_t kvq_kv_row_bytes(int64_t D, int64_t n_rot) {
    int64_t nn = D - n_rot;
    return nn + nblocks(nn, KVQ_FP8_BLOCK) + 2 * n_rot;
}

void kvq_kv_row_encode(const float *x, int64_t D, int64_t n_rot, uint8_t *dst) {
    int64_t nn = D - n_rot, nb = nblocks(nn, KVQ_FP8_BLOCK);
    int8_t *ex = (int8_t *)(dst + nn);
    uint8_t *tail = dst + nn + nb;
    for (int64_t b = 0; b < nb; b++) {
        int64_t off = b * KVQ_FP8_BLOCK, len = nn - off < KVQ_FP8_BLOCK ? nn - off : KVQ_FP8_BLOCK;
        int e = kvq_block_exp(block_amax(x + off, len), KVQ_E4M3_MAX, FP8_AMAX_FLOOR);
        ex[b] = (int8_t)e; /* e in [-22, 121]: amax floor 1e-4 and FLT_MAX / 448 */
        float inv = ldexpf(1.0f, -e);
        for (int64_t i = 0; i < len; i++) dst[off + i] = kvq_e4m3_encode(x[off + i] * inv);
    }
    for (int64_t i = 0; i < n_rot; i++) {
        uint16_t h = ds4j_f32_to_f16(x[nn + i]);
        memcpy(tail + 2 * i, &h, 2);
    }
}

void kvq_kv_row_decode(const uint8_t *src, int64_t D, int64_t n_rot, float *out) {
    int64_t nn = D - n_rot, nb = nblocks(nn, KVQ_FP8_BLOCK);
    const int8_t *ex = (const int8_t *)(src + nn);
    const uint8_t *tail = src + nn + nb;
    for (int64_t b = 0; b < nb; b++) {
        int64_t off = b * KVQ_FP8_BLOCK, len = nn - off < KVQ_FP8_BLOCK ? nn - off : KVQ_FP8_BLOCK;
        float s = ldexpf(1.0f, ex[b]);
        for (int64_t i = 0; i < len; i++) {
            float v = kvq_e4m3_decode(src[off + i]) * s;
            if (fabsf(v) < F16_MIN_NORMAL) v = f16_round(v);
            out[off + i] = v;
        }
    }
    for (int64_t i = 0; i < n_rot; i++) {
        uint16_t h;
        memcpy(&h, tail + 2 * i, 2);
        out[nn + i] = ds4j_f16_to_f32(h);
    }
}

/* ------------------------------------------------------------ indexer keys */
/* layout: [nblocks int8 exponents][ceil(DI/2) bytes, two E2M1 codes each, low nibble first] */

int64_t kvq_idx_row_bytes(int64_t DI) { return nblocks(DI, KVQ_FP4_BLOCK) + (DI + 1) / 2; }

void kvq_idx_row_encode(const float *x, int64_t DI, uint8_t *dst) {
    int64_t nb = nblocks(DI, KVQ_FP4_BLOCK);
    int8_t *ex = (int8_t *)dst;
    uint8_t *codes = dst + nb;
    memset(codes, 0, (size_t)((DI + 1) / 2));
    for (int64_t b = 0; b < nb; b++) {
        int64_t off = b * KVQ_FP4_BLOCK, len = DI - off < KVQ_FP4_BLOCK ? DI - off : KVQ_FP4_BLOCK;
        int e = kvq_block_exp(block_amax(x + off, len), KVQ_E2M1_MAX, FP4_AMAX_FLOOR);
        ex[b] = (int8_t)e; /* e in [-126, 126] */
        float inv = ldexpf(1.0f, -e);
        for (int64_t i = off; i < off + len; i++) codes[i / 2] |= (uint8_t)(kvq_e2m1_encode(x[i] * inv) << (4 * (i & 1)));
    }
}

void kvq_idx_row_decode(const uint8_t *src, int64_t DI, float *out) {
    int64_t nb = nblocks(DI, KVQ_FP4_BLOCK);
    const int8_t *ex = (const int8_t *)src;
    const uint8_t *codes = src + nb;
    for (int64_t b = 0; b < nb; b++) {
        int64_t off = b * KVQ_FP4_BLOCK, len = DI - off < KVQ_FP4_BLOCK ? DI - off : KVQ_FP4_BLOCK;
        float s = ldexpf(1.0f, ex[b]);
        for (int64_t i = off; i < off + len; i++) {
            float v = kvq_e2m1_decode((uint8_t)(codes[i / 2] >> (4 * (i & 1)))) * s;
            if (fabsf(v) < F16_MIN_NORMAL) v = f16_round(v);
            out[i] = v;
        }
    }
}
