/*
 * test_kv_precision.c — kv_precision=fp8 (ds4 / official DeepSeek KV
 * numerics): the E4M3 and E2M1 codecs against a brute-force nearest-value
 * search on known values, ties and saturation; the power-of-two block scale
 * rule; Hadamard orthogonality; the compact row formats against the float
 * round trips; then on both fixtures: logits close to the transformers
 * reference (max |d|, mean KL, top-1), different from f32 mode, chunked
 * equal to token-by-token, prefix reuse / rewind exact, and the reported
 * context memory smaller by the per-row byte ratio.
 */
#include <math.h>

#include "ds4j.h"
#include "kv_quant.h"
#include "kv_state.h"
#include "model_fixture.h"
#include "quants.h"
#include "session.h"

/* ------------------------------------------------------------ codecs */

/* Nearest representable magnitude, ties to the even code: the definition. */
static float brute_nearest(const float *mag, int n, float ax) {
    int best = 0;
    for (int i = 1; i < n; i++) {
        float d = fabsf(ax - mag[i]), bd = fabsf(ax - mag[best]);
        if (d < bd || (d == bd && (i & 1) == 0)) best = i;
    }
    return mag[best];
}

static void test_e4m3(void) {
    CHECK(kvq_e4m3_encode(448.0f) == 0x7e);
    CHECK(kvq_e4m3_decode(0x7e) == 448.0f);
    CHECK(kvq_e4m3_encode(1.0e6f) == 0x7e);            /* saturates */
    CHECK(kvq_e4m3_encode(-448.0f) == 0xfe && kvq_e4m3_decode(0xfe) == -448.0f);
    CHECK(kvq_e4m3_encode(464.0f) == 0x7e);            /* between 448 and the (absent) 480 */
    CHECK(isnan(kvq_e4m3_decode(0x7f)) && isnan(kvq_e4m3_decode(0xff)));
    CHECK(kvq_e4m3_encode(NAN) == 0x7f);
    CHECK(kvq_e4m3_decode(0x01) == 0x1p-9f);           /* smallest subnormal */
    CHECK(kvq_e4m3_decode(0x07) == 7 * 0x1p-9f);       /* largest subnormal */
    CHECK(kvq_e4m3_decode(0x08) == 0x1p-6f);           /* smallest normal */
    CHECK(kvq_e4m3_encode(1.0f) == 0x38);
    CHECK(kvq_e4m3_encode(0x1p-10f) == 0x00);          /* tie 0 | 2^-9 -> even code 0 */
    CHECK(kvq_e4m3_encode(3 * 0x1p-10f) == 0x02);      /* tie code 1 | code 2 -> 2 */
    CHECK(kvq_e4m3_encode(1.0625f) == 0x38);           /* tie 1 | 1.125 -> 1 */
    CHECK(kvq_e4m3_encode(1.1875f) == 0x3a);           /* tie 1.125 | 1.25 -> 1.25 */
    CHECK(kvq_e4m3_encode(15.5f * 0x1p-10f) == 0x08);  /* tie 7*2^-9 | 2^-6 -> 2^-6 */
    CHECK(kvq_e4m3_decode(kvq_e4m3_encode(-3.0f)) == -3.0f);
    float mag[127];
    for (int i = 0; i < 127; i++) mag[i] = kvq_e4m3_decode((uint8_t)i);
    for (int i = 1; i < 127; i++) CHECK(mag[i] > mag[i - 1]);
    int bad = 0;
    uint32_t r = 12345;
    for (int k = 0; k < 200000; k++) {
        r = r * 1664525u + 1013904223u;
        float x = ldexpf((float)(r >> 8) / 16777216.0f, (int)(r % 22) - 12);
        if (k % 3 == 0) x = mag[r % 126] + (mag[r % 126 + 1] - mag[r % 126]) * 0.5f; /* exact ties */
        float got = kvq_e4m3_decode(kvq_e4m3_encode(x));
        float want = brute_nearest(mag, 127, fminf(x, 448.0f));
        if (got != want) bad++;
        if (kvq_e4m3_decode(kvq_e4m3_encode(-x)) != -want) bad++;
    }
    for (int i = 0; i < 256; i++)
        if ((i & 0x7f) != 0x7f && i != 0x80 && kvq_e4m3_encode(kvq_e4m3_decode((uint8_t)i)) != i) bad++;
    printf("e4m3: %d mismatches against brute force\n", bad);
    CHECK(bad == 0);
}

static void test_e2m1(void) {
    const float want[8] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6};
    for (int i = 0; i < 8; i++) {
        CHECK(kvq_e2m1_decode((uint8_t)i) == want[i]);
        CHECK(kvq_e2m1_decode((uint8_t)(i | 8)) == -want[i]);
        CHECK(kvq_e2m1_encode(want[i]) == i);
    }
    /* ties go to the even code */
    CHECK(kvq_e2m1_decode(kvq_e2m1_encode(0.25f)) == 0.0f);
    CHECK(kvq_e2m1_decode(kvq_e2m1_encode(0.75f)) == 1.0f);
    CHECK(kvq_e2m1_decode(kvq_e2m1_encode(1.25f)) == 1.0f);
    CHECK(kvq_e2m1_decode(kvq_e2m1_encode(1.75f)) == 2.0f);
    CHECK(kvq_e2m1_decode(kvq_e2m1_encode(2.5f)) == 2.0f);
    CHECK(kvq_e2m1_decode(kvq_e2m1_encode(3.5f)) == 4.0f);
    CHECK(kvq_e2m1_decode(kvq_e2m1_encode(5.0f)) == 4.0f);
    CHECK(kvq_e2m1_decode(kvq_e2m1_encode(7.0f)) == 6.0f);
    CHECK(kvq_e2m1_decode(kvq_e2m1_encode(-5.5f)) == -6.0f);
    int bad = 0;
    for (int k = 0; k <= 7000; k++) {
        float x = (float)k / 1000.0f;
        if (kvq_e2m1_decode(kvq_e2m1_encode(x)) != brute_nearest(want, 8, fminf(x, 6.0f))) bad++;
    }
    CHECK(bad == 0);
}

static void test_scales(void) {
    CHECK(kvq_block_exp(448.0f, 448.0f, 1e-4f) == 0);
    CHECK(kvq_block_exp(449.0f, 448.0f, 1e-4f) == 1);
    CHECK(kvq_block_exp(224.0f, 448.0f, 1e-4f) == -1);
    CHECK(kvq_block_exp(0.0f, 448.0f, 1e-4f) == -22);  /* floor 1e-4: ceil(log2(1e-4/448)) */
    CHECK(kvq_block_exp(6.0f, 6.0f, 7.052966104933725e-38f) == 0);
    CHECK(kvq_block_exp(0.0f, 6.0f, 7.052966104933725e-38f) == -126);
    /* round trip of a block: the largest element maps into (224, 448] */
    float x[64];
    for (int i = 0; i < 64; i++) x[i] = sinf((float)i) * 3.7f;
    float y[64];
    memcpy(y, x, sizeof x);
    kvq_fp8_roundtrip(y, 64, 0);
    for (int i = 0; i < 64; i++) CHECK(fabsf(y[i] - x[i]) <= 3.7f / 16);
    float s = ldexpf(1.0f, kvq_block_exp(3.7f * 0.99999f, 448.0f, 1e-4f));
    for (int i = 0; i < 64; i++) CHECK(kvq_e4m3_decode(kvq_e4m3_encode(y[i] / s)) * s == y[i]); /* idempotent */
}

static void test_hadamard(void) {
    const int sizes[3] = {128, 16, 24};
    for (int k = 0; k < 3; k++) {
        int n = sizes[k];
        float *H = calloc((size_t)n * n, sizeof(float));
        for (int i = 0; i < n; i++) {
            H[i * n + i] = 1.0f;
            kvq_hadamard(H + i * n, n); /* row i = H e_i (H is symmetric) */
        }
        double worst = 0, entry_err = 0;
        int64_t b = kvq_hadamard_block(n);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) {
                double dot = 0;
                for (int t = 0; t < n; t++) dot += (double)H[i * n + t] * H[j * n + t];
                worst = fmax(worst, fabs(dot - (i == j)));
                int same = i / b == j / b;
                double want = same ? 1.0 / sqrt((double)b) : 0.0;
                entry_err = fmax(entry_err, fabs(fabs(H[i * n + j]) - want));
            }
        printf("hadamard n=%d (blocks of %lld): max |H H^T - I| = %.3g, max ||h_ij| - 1/sqrt(b)| = %.3g\n", n,
               (long long)b, worst, entry_err);
        CHECK(worst < 1e-6 && entry_err < 1e-7);
        free(H);
    }
    CHECK(kvq_hadamard_block(128) == 128 && kvq_hadamard_block(24) == 8);
}

static float f16r(float v) { return ds4j_f16_to_f32(ds4j_f32_to_f16(v)); }

static void test_rows(void) {
    const int64_t dims[3][2] = {{512, 64}, {32, 16}, {48, 16}};
    uint8_t buf[2048];
    float x[512], y[512], z[512];
    uint32_t r = 7;
    for (int k = 0; k < 3; k++) {
        int64_t D = dims[k][0], dr = dims[k][1];
        CHECK(kvq_kv_row_bytes(D, dr) == (D - dr) + (D - dr + 63) / 64 + 2 * dr);
        for (int rep = 0; rep < 50; rep++) {
            for (int64_t i = 0; i < D; i++) {
                r = r * 1664525u + 1013904223u;
                x[i] = ((float)(r >> 8) / 8388608.0f - 1.0f) * ldexpf(1.0f, rep % 12 - 8);
            }
            if (rep == 0) for (int64_t i = 0; i < D; i++) x[i] *= 1e-6f; /* below the amax floor */
            memcpy(y, x, (size_t)D * sizeof(float));
            kvq_fp8_roundtrip(y, D, dr);
            for (int64_t i = 0; i < D; i++) y[i] = f16r(y[i]); /* ds4: FP8 then f16 cache */
            kvq_kv_row_encode(x, D, dr, buf);
            kvq_kv_row_decode(buf, D, dr, z);
            CHECK(memcmp(y, z, (size_t)D * sizeof(float)) == 0);
        }
    }
    for (int64_t DI = 16; DI <= 128; DI += 8) {
        for (int64_t i = 0; i < DI; i++) x[i] = sinf((float)(i * 7 + DI));
        kvq_hadamard(x, DI);
        memcpy(y, x, (size_t)DI * sizeof(float));
        kvq_fp4_roundtrip(y, DI);
        kvq_idx_row_encode(x, DI, buf);
        CHECK(kvq_idx_row_bytes(DI) == (DI + 31) / 32 + (DI + 1) / 2);
        kvq_idx_row_decode(buf, DI, z);
        CHECK(memcmp(y, z, (size_t)DI * sizeof(float)) == 0);
    }
}

/* ------------------------------------------------------------ fixtures */



/* Growth of the decoder state between n1 and n2 tokens predicted from the
 * row formats (entries only; windows are fixed). */
static int64_t predicted_growth(const dsv4_model *m, int fp8, int64_t n1, int64_t n2) {
    const dsv4_hparams *hp = &m->hp;
    int64_t g = 0;
    for (int64_t l = 0; l < hp->n_layer; l++) {
        if (hp->kind[l] == DSV4_SWA) continue;
        int64_t ne = n2 / hp->ratio[l] - n1 / hp->ratio[l];
        g += ne * (fp8 ? kvq_kv_row_bytes(hp->head_dim, hp->n_rot) : hp->head_dim * 4);
        if (hp->kind[l] == DSV4_CSA) g += ne * (fp8 ? kvq_idx_row_bytes(hp->idx_dim) : hp->idx_dim * 4);
    }
    return g;
}

/* Bounds per fixture, set a little above the measured values (see
 * docs/architecture.md, "Numerics: kv_precision"). */
typedef struct bounds { double maxd, kl, top1; } bounds;

static void run_fixture(const char *name, bounds bd) {
    char dir[1024], gguf[1024];
    snprintf(dir, sizeof dir, "%s/fixtures/%s", DS4J_SHARED_DIR, name);
    fx_ref ref;
    if (fx_load_ref(dir, &ref)) { failures++; return; }
    snprintf(gguf, sizeof gguf, "%s/test-kvp-%s-f32.gguf", DS4J_BUILD_DIR, name);
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' convert --hf '%s' --out '%s' --type f32 > /dev/null 2>&1", DS4J_TOOL_PATH, dir, gguf);
    if (system(cmd)) { fprintf(stderr, "conversion failed: %s\n", cmd); failures++; fx_free_ref(&ref); return; }
    ds4j_engine *e32 = ds4j_engine_open(gguf, "threads=2;prefill_chunk=16");
    ds4j_engine *e8 = ds4j_engine_open(gguf, "threads=2;prefill_chunk=16;kv_precision=fp8");
    CHECK(e32 && e8);
    if (!e32 || !e8) { fprintf(stderr, "%s\n", ds4j_last_error()); goto out; }
    CHECK(strstr(ds4j_engine_describe(e8), "\"kv_precision\":\"fp8\"") != NULL);
    int V = ds4j_n_vocab(e8);
    double *lp = malloc((size_t)V * sizeof(double)), *lq = malloc((size_t)V * sizeof(double));
    double worst = 0, kl_sum = 0, vs_f32 = 0, chunk_vs_tok = 0;
    int rows = 0, agree = 0;
    for (int sq = 0; sq < ref.n_seq; sq++) {
        int n = ref.n_tok[sq];
        float *want = fx_load_logits(dir, &ref, sq, V);
        float *g8 = malloc((size_t)n * V * sizeof(float)), *g8t = malloc((size_t)n * V * sizeof(float));
        float *g32 = malloc((size_t)n * V * sizeof(float));
        ds4j_session *s8 = ds4j_session_new(e8, n), *s32 = ds4j_session_new(e32, n);
        CHECK(want && g8 && g8t && g32 && s8 && s32);
        if (want && g8 && g8t && g32 && s8 && s32) {
            CHECK(ds4j_session_eval_batch(s8, ref.tok[sq], n, 16, g8) == DS4J_OK);
            CHECK(ds4j_session_eval_batch(s32, ref.tok[sq], n, 16, g32) == DS4J_OK);
            CHECK(ds4j_session_rewind(s8, 0) == DS4J_OK);
            CHECK(ds4j_session_eval_batch(s8, ref.tok[sq], n, 1, g8t) == DS4J_OK);
            chunk_vs_tok = fmax(chunk_vs_tok, fx_maxdiff(g8, g8t, (int64_t)n * V));
            vs_f32 = fmax(vs_f32, fx_maxdiff(g8, g32, (int64_t)n * V));
            for (int t = 0; t < n; t++) {
                const float *a = want + (size_t)t * V, *b = g8 + (size_t)t * V;
                worst = fmax(worst, fx_maxdiff(a, b, V));
                fx_log_softmax(a, lp, V);
                fx_log_softmax(b, lq, V);
                double kl = 0;
                for (int i = 0; i < V; i++) kl += exp(lp[i]) * (lp[i] - lq[i]);
                kl_sum += kl;
                rows++;
                agree += fx_argmax(a, V) == fx_argmax(b, V);
            }
        }
        ds4j_session_free(s8);
        ds4j_session_free(s32);
        free(want); free(g8); free(g8t); free(g32);
    }
    double mkl = rows ? kl_sum / rows : 1e9, top1 = rows ? (double)agree / rows : 0;
    printf("%s kv_precision=fp8 vs reference: max |d| = %.4g, mean KL = %.3g, top-1 = %.1f%% over %d rows; "
           "vs f32 mode max |d| = %.4g; chunk 16 vs token-by-token %.3g\n",
           name, worst, mkl, 100 * top1, rows, vs_f32, chunk_vs_tok);
    CHECK(worst <= bd.maxd);
    CHECK(mkl <= bd.kl);
    CHECK(top1 >= bd.top1);
    CHECK(vs_f32 > 1e-3);       /* the option really changes the numerics */
    CHECK(chunk_vs_tok <= 1e-4); /* quantisation is per row: chunking does not matter */
    free(lp);
    free(lq);

    /* prefix reuse and rewind stay exact in fp8 mode (longest sequence) */
    {
        int sq = 0;
        for (int i = 1; i < ref.n_seq; i++) if (ref.n_tok[i] > ref.n_tok[sq]) sq = i;
        int n = ref.n_tok[sq];
        const int32_t *tok = ref.tok[sq];
        float *full = malloc((size_t)n * V * sizeof(float));
        ds4j_session *f = ds4j_session_new(e8, n), *s = ds4j_session_new(e8, n);
        CHECK(f && s && full);
        if (f && s && full) {
            CHECK(ds4j_session_eval_batch(f, tok, n, 0, full) == DS4J_OK);
            CHECK(ds4j_session_sync(s, tok, n / 2, NULL, NULL) == 0);
            CHECK(ds4j_session_sync(s, tok, n, NULL, NULL) == n / 2);
            double d = fx_maxdiff(ds4j_session_logits(s), full + (size_t)(n - 1) * V, V);
            int targets[3] = {n - 3, n - 30, 5};
            for (int i = 0; i < 3; i++) {
                int rp = targets[i];
                if (rp <= 0) continue;
                CHECK(ds4j_session_rewind(s, rp) == DS4J_OK);
                d = fmax(d, fx_maxdiff(ds4j_session_logits(s), full + (size_t)(rp - 1) * V, V));
                float *rows2 = malloc((size_t)(n - rp) * V * sizeof(float));
                CHECK(ds4j_session_eval_batch(s, tok + rp, n - rp, 0, rows2) == DS4J_OK);
                d = fmax(d, fx_maxdiff(rows2, full + (size_t)rp * V, (int64_t)(n - rp) * V));
                free(rows2);
            }
            printf("%s fp8 prefix reuse / rewind vs fresh: max |d| = %.3g\n", name, d);
            CHECK(d <= 1e-5);
        }
        ds4j_session_free(f);
        ds4j_session_free(s);
        free(full);
    }

    /* memory: the decoder state grows by the compact row sizes */
    {
        const dsv4_model *m = e8->model;
        int64_t n1 = 4096, n2 = 8192, fx32, fx8;
        int64_t b32a = kv_state_bytes(m, n1, 0, &fx32), b32b = kv_state_bytes(m, n2, 0, NULL);
        int64_t b8a = kv_state_bytes(m, n1, 1, &fx8), b8b = kv_state_bytes(m, n2, 1, NULL);
        int64_t g32 = b32b - b32a, g8 = b8b - b8a;
        int64_t p32 = predicted_growth(m, 0, n1, n2), p8 = predicted_growth(m, 1, n1, n2);
        int n_buf = 0;
        for (int64_t l = 0; l < m->hp.n_layer; l++) n_buf += m->hp.kind[l] == DSV4_CSA ? 2 : m->hp.kind[l] == DSV4_HCA;
        printf("%s state growth %lld..%lld tokens: f32 %lld B (predicted %lld), fp8 %lld B (predicted %lld), ratio %.3f; "
               "fixed part (windows, compressor buffers) f32 %lld B, fp8 %lld B\n",
               name, (long long)n1, (long long)n2, (long long)g32, (long long)p32, (long long)g8, (long long)p8,
               (double)g32 / (double)g8, (long long)fx32, (long long)fx8);
        CHECK(llabs(g32 - p32) <= 64 * n_buf && llabs(g8 - p8) <= 64 * n_buf); /* 64-byte alignment only */
        CHECK(fx8 < fx32);
        int64_t m32 = ds4j_context_memory(e32, 8192), m8 = ds4j_context_memory(e8, 8192);
        printf("%s ds4j_context_memory(8192): f32 %lld B, fp8 %lld B (%.2fx)\n", name, (long long)m32, (long long)m8,
               (double)m32 / (double)m8);
        CHECK(m8 > 0 && m8 < m32);
        /* the reported saving = state + 8 checkpoints of the fixed part, less the fp8 decode buffers */
        int64_t extra = dsv4_scratch_ctx_bytes(m, 8192, 1, e8->n_threads) - dsv4_scratch_ctx_bytes(m, 8192, 0, e8->n_threads);
        CHECK(m32 - m8 == (b32b - b8b) + DS4J_CK_TOTAL * (fx32 - fx8) - extra);
    }
out:
    ds4j_engine_close(e32);
    ds4j_engine_close(e8);
    fx_free_ref(&ref);
}

/* Flash shapes (D 512, dr 64, DI 128; 21 CSA layers m=4, 20 HCA m'=128):
 * per-token growth of the compressed state, reported for the docs. */
static void flash_per_token(void) {
    int64_t kv8 = kvq_kv_row_bytes(512, 64), ix8 = kvq_idx_row_bytes(128);
    CHECK(kv8 == 448 + 7 + 128 && ix8 == 4 + 64);
    double f32 = 21 * (512 + 128) * 4 / 4.0 + 20 * 512 * 4 / 128.0;
    double fp8 = 21 * (kv8 + ix8) / 4.0 + 20 * kv8 / 128.0;
    printf("Flash: KV row %lld B (f32 2048), indexer key %lld B (f32 512); compressed state per token f32 %.1f B, "
           "fp8 %.1f B (%.2fx); window rows 43x128: f32 %lld B, fp8 %lld B\n",
           (long long)kv8, (long long)ix8, f32, fp8, f32 / fp8, 43LL * 128 * 2048, 43LL * 128 * kv8);
}

int main(void) {
    flash_per_token();
    test_e4m3();
    test_e2m1();
    test_scales();
    test_hadamard();
    test_rows();
    /* measured: tiny-a 2.70 / 0.0228 / 68.6%, tiny-b 1.75 / 0.0113 / 78.8% */
    run_fixture("dsv4-tiny-a", (bounds){3.2, 0.03, 0.62});
    run_fixture("dsv4-tiny-b", (bounds){2.2, 0.016, 0.72});
    if (failures) { fprintf(stderr, "test_kv_precision: %d failures\n", failures); return 1; }
    printf("test_kv_precision: ok\n");
    return 0;
}
