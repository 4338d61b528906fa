/* test_quants.c — tensor type kernels against the gguf-py reference
 * vectors in shared/fixtures/quants: dequantization (bit-exact where the
 * format allows), the Q8_0 quantizer byte for byte, SIMD dots against the
 * scalar reference and a double-precision sum, quantizer round-trip error
 * bounds, row-size arithmetic, f16/bf16 special values, and the matvec /
 * matmul drivers. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "quants.h"
#include "quants_impl.h"

static int failures;
#define CHECK(c) do { if (!(c)) { fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); failures++; } } while (0)
#define CHECKF(c, ...) do { if (!(c)) { fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #c); \
    fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); failures++; } } while (0)

#define FIX DS4J_SHARED_DIR "/fixtures/quants/"

static void *read_file(const char *name, size_t *len) {
    char path[512];
    snprintf(path, sizeof path, FIX "%s", name);
    FILE *f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "cannot open %s\n", path); failures++; return NULL; }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = malloc((size_t)n + 64);
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) { fclose(f); free(buf); failures++; return NULL; }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* xorshift + Box-Muller: deterministic gaussian test data */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static double urand(void) {
    rng_state ^= rng_state << 13; rng_state ^= rng_state >> 7; rng_state ^= rng_state << 17;
    return ((rng_state >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}
static float gauss(void) { return (float)(sqrt(-2.0 * log(urand())) * cos(6.283185307179586 * urand())); }

static const struct { const char *name; int32_t type; int exact; } FIXTURES[] = {
    {"F16", DS4J_TYPE_F16, 1},     {"BF16", DS4J_TYPE_BF16, 1},       {"Q8_0", DS4J_TYPE_Q8_0, 1},
    {"Q4_0", DS4J_TYPE_Q4_0, 1},   {"Q4_K", DS4J_TYPE_Q4_K, 0},       {"Q5_K", DS4J_TYPE_Q5_K, 0},
    {"Q6_K", DS4J_TYPE_Q6_K, 0},   {"Q2_K", DS4J_TYPE_Q2_K, 0},       {"Q3_K", DS4J_TYPE_Q3_K, 0},
    {"IQ2_XXS", DS4J_TYPE_IQ2_XXS, 0}, {"IQ2_XS", DS4J_TYPE_IQ2_XS, 0}, {"IQ4_XS", DS4J_TYPE_IQ4_XS, 0},
};
#define N_FIXTURES (int)(sizeof FIXTURES / sizeof FIXTURES[0])

static void test_fixture_dequant(void) {
    for (int k = 0; k < N_FIXTURES; k++) {
        char rn[64], fn[64];
        snprintf(rn, sizeof rn, "%s.raw", FIXTURES[k].name);
        snprintf(fn, sizeof fn, "%s.f32", FIXTURES[k].name);
        size_t rlen = 0, flen = 0;
        uint8_t *raw = read_file(rn, &rlen);
        float *exp = read_file(fn, &flen);
        const ds4j_type_traits *t = ds4j_type_get(FIXTURES[k].type);
        CHECK(t != NULL && strcmp(t->name, FIXTURES[k].name) == 0);
        if (!raw || !exp || !t) { free(raw); free(exp); continue; }
        int64_t n = (int64_t)(flen / 4);
        CHECKF(ds4j_row_size(FIXTURES[k].type, n) == (int64_t)rlen,
               "%s row size", t->name);
        float *got = malloc((size_t)n * 4);
        t->to_float(raw, got, n);
        int bad = 0, bits_differ = 0;
        double max_rel = 0;
        for (int64_t i = 0; i < n; i++) {
            uint32_t gb, eb;
            memcpy(&gb, &got[i], 4);
            memcpy(&eb, &exp[i], 4);
            if (gb != eb) bits_differ++;
            if (FIXTURES[k].exact) {
                if (!(got[i] == exp[i])) bad++;
            } else if (exp[i] == 0.0f) {
                if (got[i] != 0.0f) bad++;
            } else {
                double rel = fabs((double)got[i] - exp[i]) / fabs((double)exp[i]);
                if (rel > max_rel) max_rel = rel;
                if (!(rel <= 1e-6)) bad++;
            }
        }
        CHECKF(bad == 0, "%s: %d of %lld values out of tolerance", t->name, bad, (long long)n);
        printf("dequant %-8s n=%-6lld max_rel=%.3g bit_differences=%d\n", t->name, (long long)n, max_rel, bits_differ);
        free(got);
        free(raw);
        free(exp);
    }
}

static void test_q8_0_quantizer(void) {
    size_t ilen = 0, elen = 0;
    float *in = read_file("Q8_0.quant-input.f32", &ilen);
    uint8_t *exp = read_file("Q8_0.quant-expected.raw", &elen);
    if (!in || !exp) { free(in); free(exp); return; }
    int64_t n = (int64_t)(ilen / 4);
    CHECK(ds4j_row_size(DS4J_TYPE_Q8_0, n) == (int64_t)elen);
    uint8_t *got = calloc(1, elen);
    ds4j_type_get(DS4J_TYPE_Q8_0)->from_float(in, got, n);
    int diff = 0;
    for (size_t i = 0; i < elen; i++) diff += got[i] != exp[i];
    CHECKF(diff == 0, "Q8_0 quantizer: %d bytes differ", diff);
    free(in);
    free(exp);
    free(got);
}

/* Dot of weights w (type) with activation x: SIMD vs scalar reference vs a
 * double-precision sum over the dequantized operands. */
static void check_dot(int32_t type, const void *w, int64_t n, const float *x, const char *what) {
    const ds4j_type_traits *t = ds4j_type_get(type);
    const ds4j_type_traits *at = ds4j_type_get(t->act_type);
    size_t asz = ds4j_act_size(type, n);
    CHECK(asz > 0);
    void *act = ds4j_alloc(asz);
    CHECK(ds4j_quantize_act(type, x, n, act) == 0);
    float *wf = malloc((size_t)n * 4), *af = malloc((size_t)n * 4);
    t->to_float(w, wf, n);
    at->to_float(act, af, n);
    double exact = 0, mag = 0;
    for (int64_t i = 0; i < n; i++) {
        exact += (double)wf[i] * af[i];
        mag += fabs((double)wf[i] * af[i]);
    }
    float ref = t->vec_dot_ref(w, act, n);
    float fast = t->vec_dot(w, act, n);
    double tol = 1e-5 * mag + 1e-30;
    CHECKF(fabs(ref - exact) <= tol, "%s %s: ref %.9g vs exact %.9g (mag %.3g)", t->name, what, ref, exact, mag);
    CHECKF(fabs(fast - ref) <= tol, "%s %s: simd %.9g vs ref %.9g (mag %.3g)", t->name, what, fast, ref, mag);
    printf("dot %-8s %-10s %s simd-ref=%.2e ref-exact=%.2e (rel. to sum|wa|)\n", t->name, what,
           t->vec_dot == t->vec_dot_ref ? "scalar" : "simd  ", fabs(fast - ref) / (mag + 1e-30), fabs(ref - exact) / (mag + 1e-30));
    ds4j_free(act);
    free(wf);
    free(af);
}

static void test_dots_on_fixtures(void) {
    for (int k = 0; k < N_FIXTURES; k++) {
        char rn[64];
        snprintf(rn, sizeof rn, "%s.raw", FIXTURES[k].name);
        size_t rlen = 0;
        uint8_t *raw = read_file(rn, &rlen);
        if (!raw) continue;
        const ds4j_type_traits *t = ds4j_type_get(FIXTURES[k].type);
        int64_t n = (int64_t)(rlen / t->type_size) * t->block_size;
        float *x = malloc((size_t)n * 4);
        /* the BF16 fixture spans the whole float range: shrink the
         * activation so the products stay finite */
        float xs = FIXTURES[k].type == DS4J_TYPE_BF16 ? 0x1p-40f : 1.0f;
        for (int64_t i = 0; i < n; i++) x[i] = gauss() * xs;
        check_dot(FIXTURES[k].type, raw, n, x, "fixture");
        /* a single block exercises the loop tails */
        check_dot(FIXTURES[k].type, raw, t->block_size == 1 ? 37 : t->block_size, x, "one-block");
        free(x);
        free(raw);
    }
    /* F32 weights have no fixture: random data, odd length */
    int64_t n = 1027;
    float *w = malloc(n * 4), *x = malloc(n * 4);
    for (int64_t i = 0; i < n; i++) { w[i] = gauss(); x[i] = gauss(); }
    check_dot(DS4J_TYPE_F32, w, n, x, "random");
    free(w);
    free(x);
}

/* quantize -> dequantize on gaussian data; returns relative RMS error */
static double roundtrip_rel_rms(int32_t type, int64_t n, int check_dot_too) {
    const ds4j_type_traits *t = ds4j_type_get(type);
    float *x = malloc(n * 4), *y = malloc(n * 4);
    for (int64_t i = 0; i < n; i++) x[i] = gauss() * (1.0f + (float)(i / 256 % 7));  /* scale varies per block */
    void *q = ds4j_alloc((size_t)ds4j_row_size(type, n));
    t->from_float(x, q, n);
    t->to_float(q, y, n);
    double se = 0, sx = 0;
    for (int64_t i = 0; i < n; i++) {
        se += ((double)y[i] - x[i]) * ((double)y[i] - x[i]);
        sx += (double)x[i] * x[i];
    }
    if (check_dot_too) {
        float *a = malloc(n * 4);
        for (int64_t i = 0; i < n; i++) a[i] = gauss();
        check_dot(type, q, n, a, "quantized");
        free(a);
    }
    ds4j_free(q);
    free(x);
    free(y);
    return sqrt(se / sx);
}

static void test_roundtrip(void) {
    static const struct { int32_t type; double bound; int dot; } RT[] = {
        {DS4J_TYPE_F16, 1e-3, 1}, {DS4J_TYPE_BF16, 5e-3, 1}, {DS4J_TYPE_Q8_0, 0.01, 1},
        {DS4J_TYPE_Q8_K, 0.01, 0}, {DS4J_TYPE_Q4_0, 0.12, 1}, {DS4J_TYPE_Q6_K, 0.03, 1},
        {DS4J_TYPE_Q4_K, 0.08, 1}, {DS4J_TYPE_Q2_K, 0.35, 1},
    };
    for (size_t k = 0; k < sizeof RT / sizeof RT[0]; k++) {
        double e = roundtrip_rel_rms(RT[k].type, 8192, RT[k].dot);
        const char *nm = ds4j_type_get(RT[k].type)->name;
        printf("roundtrip %-5s rel_rms=%.5f (bound %.3g)\n", nm, e, RT[k].bound);
        CHECKF(e < RT[k].bound, "%s round trip rel rms %.5f >= %.3g", nm, e, RT[k].bound);
    }
    /* all-zero and constant blocks must not produce NaN */
    static const int32_t Z[] = {DS4J_TYPE_Q8_0, DS4J_TYPE_Q8_K, DS4J_TYPE_Q4_0, DS4J_TYPE_Q4_K, DS4J_TYPE_Q2_K, DS4J_TYPE_Q6_K};
    for (size_t k = 0; k < sizeof Z / sizeof Z[0]; k++) {
        const ds4j_type_traits *t = ds4j_type_get(Z[k]);
        float x[512], y[512];
        for (int i = 0; i < 256; i++) { x[i] = 0.0f; x[256 + i] = 0.75f; }
        void *q = ds4j_alloc((size_t)ds4j_row_size(Z[k], 512));
        t->from_float(x, q, 512);
        t->to_float(q, y, 512);
        int bad = 0;
        for (int i = 0; i < 512; i++) bad += !(fabsf(y[i] - x[i]) <= 0.05f);
        CHECKF(bad == 0, "%s zero/constant blocks: %d bad values", t->name, bad);
        ds4j_free(q);
    }
}

/* quantizers must survive NaN / inf / huge inputs (the model may feed
 * them a diverged activation): no crash, no sanitizer report, and the
 * finite blocks of the same row stay accurate */
static void test_nonfinite_inputs(void) {
    static const int32_t Q[] = {DS4J_TYPE_F16, DS4J_TYPE_BF16, DS4J_TYPE_Q8_0, DS4J_TYPE_Q8_K, DS4J_TYPE_Q4_0,
                                DS4J_TYPE_Q4_K, DS4J_TYPE_Q2_K, DS4J_TYPE_Q6_K};
    float x[512], y[512];
    for (int i = 0; i < 512; i++) x[i] = gauss();
    x[3] = NAN; x[40] = INFINITY; x[100] = -INFINITY; x[200] = 3e38f;
    for (size_t k = 0; k < sizeof Q / sizeof Q[0]; k++) {
        const ds4j_type_traits *t = ds4j_type_get(Q[k]);
        void *q = ds4j_alloc((size_t)ds4j_row_size(Q[k], 512));
        t->from_float(x, q, 512);
        t->to_float(q, y, 512);
        double se = 0, sx = 0;
        for (int i = 256; i < 512; i++) {
            se += ((double)y[i] - x[i]) * ((double)y[i] - x[i]);
            sx += (double)x[i] * x[i];
        }
        double rel = sqrt(se / sx);  /* NaN fails the check too */
        CHECKF(rel < 0.35, "%s: finite block damaged by non-finite neighbour block (rel rms %g)", t->name, rel);
        ds4j_free(q);
    }
}

static void test_row_size(void) {
    CHECK(ds4j_row_size(DS4J_TYPE_Q8_0, 64) == 68);
    CHECK(ds4j_row_size(DS4J_TYPE_Q4_K, 4096) == 16 * 144);
    CHECK(ds4j_row_size(DS4J_TYPE_Q8_K, 256) == 292);
    CHECK(ds4j_row_size(DS4J_TYPE_F32, 3) == 12);
    CHECK(ds4j_row_size(DS4J_TYPE_I32, 5) == 20);
    CHECK(ds4j_row_size(DS4J_TYPE_Q8_0, 33) == -1);
    CHECK(ds4j_row_size(DS4J_TYPE_IQ2_XXS, 128) == -1);
    CHECK(ds4j_row_size(DS4J_TYPE_F16, -2) == -1);
    CHECK(ds4j_row_size(3, 32) == -1);    /* Q4_1: not in this engine */
    CHECK(ds4j_row_size(-1, 32) == -1);
    CHECK(ds4j_row_size(DS4J_TYPE_COUNT, 32) == -1);
    CHECK(ds4j_row_size(1000, 32) == -1);
    CHECK(ds4j_row_size(DS4J_TYPE_F64, INT64_MAX / 4) == -1);          /* bytes overflow */
    CHECK(ds4j_row_size(DS4J_TYPE_Q8_0, (INT64_MAX / 32) * 32) == -1);
    CHECK(ds4j_row_size(DS4J_TYPE_I8, INT64_MAX) == INT64_MAX);
    CHECK(ds4j_type_get(DS4J_TYPE_I32) != NULL && !ds4j_type_get(DS4J_TYPE_I32)->supported);
    CHECK(ds4j_type_get(3) == NULL && ds4j_type_get(-5) == NULL && ds4j_type_get(99) == NULL);
    CHECK(ds4j_act_size(DS4J_TYPE_Q4_K, 4096) == 16 * 292);
    CHECK(ds4j_act_size(DS4J_TYPE_Q8_0, 4096) == 128 * 34);
    CHECK(ds4j_act_size(DS4J_TYPE_F16, 10) == 40);
    CHECK(ds4j_act_size(DS4J_TYPE_Q4_K, 100) == 0);
    CHECK(ds4j_act_size(DS4J_TYPE_I32, 100) == 0);
    /* every computable type has the kernels the engine needs */
    for (int32_t ty = 0; ty < DS4J_TYPE_COUNT; ty++) {
        const ds4j_type_traits *t = ds4j_type_get(ty);
        if (!t || !t->supported) continue;
        CHECKF(t->to_float && t->vec_dot && t->vec_dot_ref, "%s kernels", t->name);
        const ds4j_type_traits *at = ds4j_type_get(t->act_type);
        CHECKF(at && at->from_float && at->to_float, "%s act type", t->name);
    }
}

static uint32_t fbits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

static void test_half_conversions(void) {
    /* f16 decode */
    CHECK(fbits(ds4j_f16_to_f32(0x0000)) == 0x00000000u);
    CHECK(fbits(ds4j_f16_to_f32(0x8000)) == 0x80000000u);
    CHECK(ds4j_f16_to_f32(0x0001) == 0x1p-24f);
    CHECK(ds4j_f16_to_f32(0x8001) == -0x1p-24f);
    CHECK(ds4j_f16_to_f32(0x03FF) == 1023 * 0x1p-24f);
    CHECK(ds4j_f16_to_f32(0x0400) == 0x1p-14f);
    CHECK(ds4j_f16_to_f32(0x3C00) == 1.0f);
    CHECK(ds4j_f16_to_f32(0x7BFF) == 65504.0f);
    CHECK(isinf(ds4j_f16_to_f32(0x7C00)) && ds4j_f16_to_f32(0x7C00) > 0);
    CHECK(isinf(ds4j_f16_to_f32(0xFC00)) && ds4j_f16_to_f32(0xFC00) < 0);
    CHECK(isnan(ds4j_f16_to_f32(0x7E00)) && isnan(ds4j_f16_to_f32(0x7C01)));
    /* f16 encode, round to nearest even */
    CHECK(ds4j_f32_to_f16(0.0f) == 0x0000 && ds4j_f32_to_f16(-0.0f) == 0x8000);
    CHECK(ds4j_f32_to_f16(1.0f) == 0x3C00 && ds4j_f32_to_f16(-2.0f) == 0xC000);
    CHECK(ds4j_f32_to_f16(65504.0f) == 0x7BFF);
    CHECK(ds4j_f32_to_f16(65519.0f) == 0x7BFF);  /* below the halfway point */
    CHECK(ds4j_f32_to_f16(65520.0f) == 0x7C00);  /* tie rounds to even = inf */
    CHECK(ds4j_f32_to_f16(1e10f) == 0x7C00 && ds4j_f32_to_f16(-1e10f) == 0xFC00);
    CHECK(ds4j_f32_to_f16(INFINITY) == 0x7C00 && ds4j_f32_to_f16(-INFINITY) == 0xFC00);
    uint16_t hn = ds4j_f32_to_f16(NAN);
    CHECK((hn & 0x7C00) == 0x7C00 && (hn & 0x03FF) != 0);
    CHECK(ds4j_f32_to_f16(1.0f + 0x1p-11f) == 0x3C00);            /* tie -> even (down) */
    CHECK(ds4j_f32_to_f16(1.0f + 3 * 0x1p-11f) == 0x3C02);        /* tie -> even (up) */
    CHECK(ds4j_f32_to_f16(1.0f + 0x1p-11f + 0x1p-20f) == 0x3C01); /* above the tie */
    CHECK(ds4j_f32_to_f16(0x1p-24f) == 0x0001);
    CHECK(ds4j_f32_to_f16(0x1p-25f) == 0x0000);                   /* tie -> even zero */
    CHECK(ds4j_f32_to_f16(0x1.8p-25f) == 0x0001);
    CHECK(ds4j_f32_to_f16(3 * 0x1p-25f) == 0x0002);               /* 1.5 ulp tie -> 2 */
    CHECK(ds4j_f32_to_f16(-0x1p-30f) == 0x8000);                  /* underflow keeps sign */
    CHECK(ds4j_f32_to_f16(0x1p-14f - 0x1p-25f) == 0x0400);        /* rounds up into normals */
    /* every f16 value survives a round trip */
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = ds4j_f16_to_f32((uint16_t)h);
        if (isnan(f)) { bad += !isnan(ds4j_f16_to_f32(ds4j_f32_to_f16(f))); continue; }
        bad += ds4j_f32_to_f16(f) != h;
    }
    CHECK(bad == 0);
    /* bf16 */
    CHECK(ds4j_bf16_to_f32(0x3F80) == 1.0f);
    CHECK(fbits(ds4j_bf16_to_f32(0x8000)) == 0x80000000u);
    CHECK(ds4j_f32_to_bf16(1.0f) == 0x3F80 && ds4j_f32_to_bf16(-0.0f) == 0x8000);
    CHECK(ds4j_f32_to_bf16(1.0f + 0x1p-8f) == 0x3F80);            /* tie -> even */
    CHECK(ds4j_f32_to_bf16(1.0f + 3 * 0x1p-8f) == 0x3F82);
    CHECK(ds4j_f32_to_bf16(INFINITY) == 0x7F80 && ds4j_f32_to_bf16(-INFINITY) == 0xFF80);
    CHECK(ds4j_f32_to_bf16(3.4e38f) == 0x7F80);                   /* rounds up to inf */
    uint16_t bn = ds4j_f32_to_bf16(NAN);
    CHECK((bn & 0x7F80) == 0x7F80 && (bn & 0x7F) != 0);
    /* a NaN with payload only in the low 16 bits must stay NaN */
    uint32_t lownan = 0x7F800001u;
    float fl;
    memcpy(&fl, &lownan, 4);
    uint16_t bl = ds4j_f32_to_bf16(fl);
    CHECK((bl & 0x7F80) == 0x7F80 && (bl & 0x7F) != 0);
    CHECK(ds4j_bf16_to_f32(0x0001) == 0x1p-133f);                 /* subnormal */
    bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = ds4j_bf16_to_f32((uint16_t)h);
        if (isnan(f)) continue;
        bad += ds4j_f32_to_bf16(f) != h;
    }
    CHECK(bad == 0);
}

static void drivers_case(const int32_t *TYPES, size_t n_types, int64_t cols);

static void test_drivers(void) {
    static const int32_t TYPES[] = {DS4J_TYPE_F32, DS4J_TYPE_F16, DS4J_TYPE_BF16, DS4J_TYPE_Q8_0,
                                    DS4J_TYPE_Q4_K, DS4J_TYPE_Q2_K, DS4J_TYPE_Q6_K};
    drivers_case(TYPES, sizeof TYPES / sizeof TYPES[0], 512);
    /* odd block counts and a float tail shorter than 8 for the multi-token kernels */
    static const int32_t FLOATS[] = {DS4J_TYPE_F16, DS4J_TYPE_F32}, Q8[] = {DS4J_TYPE_Q8_0};
    drivers_case(FLOATS, 2, 556);   /* 17 x 32 + 8 + 4 */
    drivers_case(Q8, 1, 544);       /* 17 blocks */
}

static void drivers_case(const int32_t *TYPES, size_t n_types, int64_t cols) {
    const int64_t rows = 37, toks = 7;  /* toks: token groups of 4 + 3 */
    float *wf = malloc(rows * cols * 4), *x = malloc(toks * cols * 4);
    for (int64_t i = 0; i < rows * cols; i++) wf[i] = gauss();
    for (int64_t i = 0; i < toks * cols; i++) x[i] = gauss();
    for (size_t k = 0; k < n_types; k++) {
        int32_t ty = TYPES[k];
        const ds4j_type_traits *t = ds4j_type_get(ty);
        int64_t rb = ds4j_row_size(ty, cols), stride = rb + 6;  /* padded rows */
        uint8_t *w = ds4j_alloc((size_t)(stride * rows));
        for (int64_t r = 0; r < rows; r++) t->from_float(wf + r * cols, w + r * stride, cols);
        size_t asz = ds4j_act_size(ty, cols);
        uint8_t *act = ds4j_alloc(asz * toks);
        for (int64_t j = 0; j < toks; j++) CHECK(ds4j_quantize_act(ty, x + j * cols, cols, act + j * asz) == 0);
        float mv[37], mm[7 * 40];
        int bad = 0;
        for (int64_t j = 0; j < toks; j++) {
            CHECK(ds4j_matvec(ty, w, stride, rows, cols, act + j * asz, mv) == 0);
            for (int64_t r = 0; r < rows; r++) bad += mv[r] != t->vec_dot(w + r * stride, act + j * asz, cols);
        }
        CHECK(ds4j_matmul(ty, w, stride, rows, cols, act, asz, toks, mm, 40) == 0);
        for (int64_t j = 0; j < toks; j++) {
            ds4j_matvec(ty, w, stride, rows, cols, act + j * asz, mv);
            for (int64_t r = 0; r < rows; r++) bad += mm[j * 40 + r] != mv[r];
        }
        CHECKF(bad == 0, "%s drivers disagree with vec_dot in %d places", t->name, bad);
        /* bad arguments fail cleanly */
        CHECK(ds4j_matvec(ty, w, rb - 1, rows, cols, act, mv) < 0);
        CHECK(ds4j_matvec(ty, w, stride, -1, cols, act, mv) < 0);
        CHECK(ds4j_matmul(ty, w, stride, rows, cols, act, asz - 1, 2, mm, 40) < 0);
        CHECK(ds4j_matmul(ty, w, stride, rows, cols, act, asz, 2, mm, rows - 1) < 0);
        ds4j_free(w);
        ds4j_free(act);
    }
    float o;
    CHECK(ds4j_matvec(DS4J_TYPE_Q4_K, wf, 1 << 20, 1, 100, x, &o) < 0);
    CHECK(strlen(ds4j_last_error()) > 0);
    CHECK(ds4j_matvec(DS4J_TYPE_I32, wf, 1 << 20, 1, 16, x, &o) < 0);
    CHECK(ds4j_matvec(77, wf, 1 << 20, 1, 16, x, &o) < 0);
    CHECK(ds4j_quantize_act(DS4J_TYPE_Q8_0, x, 31, &o) < 0);
    free(wf);
    free(x);
}

/* Every IQ2_XXS SIMD kernel this CPU can run (not only the one dispatch
 * picked) against the scalar reference on random blocks: all grid indices,
 * sign fields and scales occur; rows of 1..9 blocks. */
static void test_iq2_xxs_kernels(void) {
#if defined(DS4J_HAVE_AVX2_KERNELS)
    struct { const char *name; ds4j_vec_dot_fn fn, fn_xs; bool ok; } K[] = {
        {"avx2", ds4j_dot_iq2_xxs_avx2, ds4j_dot_iq2_xs_avx2, __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")},
        {"avx512", ds4j_dot_iq2_xxs_avx512, ds4j_dot_iq2_xs_avx512, ds4j_cpu_has_avx512_iq()},
    };
    const ds4j_type_traits *txs = ds4j_type_get(DS4J_TYPE_IQ2_XS);
    const ds4j_type_traits *t = ds4j_type_get(DS4J_TYPE_IQ2_XXS);
    const int64_t max_blocks = 9;
    uint8_t *w = malloc((size_t)(66 * max_blocks)), *wx = malloc((size_t)(74 * max_blocks));
    float *x = malloc((size_t)(256 * max_blocks) * 4);
    uint8_t *act = malloc((size_t)(292 * max_blocks));
    for (int rep = 0; rep < 200; rep++) {
        int64_t nbk = 1 + rep % max_blocks, n = 256 * nbk;
        for (int64_t i = 0; i < 66 * nbk; i++) w[i] = (uint8_t)(urand() * 256);
        for (int64_t b = 0; b < nbk; b++) {
            uint16_t d = ds4j_f32_to_f16((float)(1e-3 * (0.5 + urand())));
            memcpy(w + 66 * b, &d, 2);
        }
        for (int64_t i = 0; i < 74 * nbk; i++) wx[i] = (uint8_t)(urand() * 256);
        for (int64_t b = 0; b < nbk; b++) {
            uint16_t d = ds4j_f32_to_f16((float)(1e-3 * (0.5 + urand())));
            memcpy(wx + 74 * b, &d, 2);
        }
        for (int64_t i = 0; i < n; i++) x[i] = gauss();
        CHECK(ds4j_quantize_act(DS4J_TYPE_IQ2_XXS, x, n, act) == 0);
        float ref = t->vec_dot_ref(w, act, n), ref_xs = txs->vec_dot_ref(wx, act, n);
        double mag = 0;
        for (int64_t i = 0; i < n; i++) mag += fabs(x[i]) * 1e-3 * 43;
        for (size_t k = 0; k < sizeof K / sizeof K[0]; k++) {
            if (!K[k].ok) continue;
            if (k == 0) ds4j_quants_avx2_init();  /* tables, idempotent (dispatch may not have run it) */
            if (k == 1) ds4j_quants_avx512_init();
            float v = K[k].fn(w, act, n);
            CHECKF(fabs(v - ref) <= 1e-5 * mag + 1e-6 * fabs(ref), "IQ2_XXS %s: %g vs ref %g (%lld blocks)", K[k].name, v,
                   ref, (long long)nbk);
            float vx = K[k].fn_xs(wx, act, n);
            CHECKF(fabs(vx - ref_xs) <= 1e-5 * mag + 1e-6 * fabs(ref_xs), "IQ2_XS %s: %g vs ref %g (%lld blocks)", K[k].name,
                   vx, ref_xs, (long long)nbk);
        }
    }
    /* matmul (multi-token kernels where present) == matvec per token, bit
     * for bit, on an odd row count with token groups 4 + 3 */
    {
        const int64_t rows = 13, nbk = 4, n = 256 * nbk, toks = 7;
        int64_t stride = 66 * nbk + 3;
        uint8_t *wm = malloc((size_t)(stride * rows));
        for (int64_t i = 0; i < stride * rows; i++) wm[i] = (uint8_t)(urand() * 256);
        for (int64_t r = 0; r < rows; r++)
            for (int64_t b = 0; b < nbk; b++) {
                uint16_t d = ds4j_f32_to_f16((float)(1e-3 * (0.5 + urand())));
                memcpy(wm + r * stride + 66 * b, &d, 2);
            }
        size_t asz = ds4j_act_size(DS4J_TYPE_IQ2_XXS, n);
        uint8_t *am = malloc(asz * toks);
        float *xm = malloc((size_t)n * 4), mv[13], mm[7 * 16];
        for (int64_t j = 0; j < toks; j++) {
            for (int64_t i = 0; i < n; i++) xm[i] = gauss();
            CHECK(ds4j_quantize_act(DS4J_TYPE_IQ2_XXS, xm, n, am + j * asz) == 0);
        }
        CHECK(ds4j_matmul(DS4J_TYPE_IQ2_XXS, wm, stride, rows, n, am, (int64_t)asz, toks, mm, 16) == 0);
        int bad = 0;
        for (int64_t j = 0; j < toks; j++) {
            CHECK(ds4j_matvec(DS4J_TYPE_IQ2_XXS, wm, stride, rows, n, am + j * asz, mv) == 0);
            for (int64_t r = 0; r < rows; r++) bad += mm[j * 16 + r] != mv[r];
        }
        CHECKF(bad == 0, "IQ2_XXS matmul differs from matvec in %d places", bad);
        /* each multi-token kernel against its own single-token kernel, every token count */
        struct { const char *name; ds4j_vec_dot_fn one; ds4j_mdot_fn multi; bool ok; } M[] = {
            {"avx2", ds4j_dot_iq2_xxs_avx2, ds4j_mdot_iq2_xxs_avx2, K[0].ok},
            {"avx512", ds4j_dot_iq2_xxs_avx512, ds4j_mdot_iq2_xxs_avx512, K[1].ok},
        };
        for (size_t k = 0; k < sizeof M / sizeof M[0]; k++) {
            if (!M[k].ok) continue;
            int mbad = 0;
            for (int nt = 1; nt <= 4; nt++)
                for (int64_t r = 0; r < rows; r++) {
                    float o[4 * 3];
                    M[k].multi(wm + r * stride, am + (7 - nt) * asz, (int64_t)asz, n, nt, o, 3);
                    for (int t = 0; t < nt; t++) mbad += o[3 * t] != M[k].one(wm + r * stride, am + (7 - nt + t) * asz, n);
                }
            CHECKF(mbad == 0, "IQ2_XXS %s multi-token kernel differs from the single one in %d places", M[k].name, mbad);
        }
        free(wm);
        free(am);
        free(xm);
    }
    for (size_t k = 0; k < sizeof K / sizeof K[0]; k++) printf("IQ2_XXS/IQ2_XS kernels %-6s %s\n", K[k].name, K[k].ok ? "checked" : "not on this CPU");
    free(w);
    free(wx);
    free(x);
    free(act);
#endif
}

int main(void) {
    ds4j_quants_init();
    printf("quants kernels: %s\n", ds4j_quants_kernel_name());
    if (!strncmp(ds4j_quants_kernel_name(), "avx2", 4)) {
        /* the decode-critical types must actually have SIMD kernels */
        static const int32_t SIMD[] = {DS4J_TYPE_F32, DS4J_TYPE_F16, DS4J_TYPE_BF16, DS4J_TYPE_Q8_0, DS4J_TYPE_Q4_0,
                                       DS4J_TYPE_Q2_K, DS4J_TYPE_Q4_K, DS4J_TYPE_Q5_K, DS4J_TYPE_Q6_K,
                                       DS4J_TYPE_IQ2_XXS, DS4J_TYPE_IQ2_XS, DS4J_TYPE_IQ4_XS};
        for (size_t k = 0; k < sizeof SIMD / sizeof SIMD[0]; k++)
            CHECKF(ds4j_type_get(SIMD[k])->vec_dot != ds4j_type_get(SIMD[k])->vec_dot_ref, "%s has no SIMD dot",
                   ds4j_type_get(SIMD[k])->name);
    }
    test_half_conversions();
    test_row_size();
    test_fixture_dequant();
    test_q8_0_quantizer();
    test_dots_on_fixtures();
    test_roundtrip();
    test_drivers();
    test_iq2_xxs_kernels();
    test_nonfinite_inputs();
    if (failures) {
        fprintf(stderr, "test_quants: %d failures\n", failures);
        return 1;
    }
    printf("test_quants: ok\n");
    return 0;
}
