/*
 * test_session_copy.c — ds4j_session_copy / ds4j_session_state_at on the
 * tiny fixture, f32 and fp8 state on the CPU and, where a CUDA device is
 * visible, on the GPU (device-to-device copies): a session that read a
 * 150-token prompt and decoded 10 tokens (checkpoints at 64 and 128, the
 * mark at 149, its current state at 160) is copied at its current state,
 * at the mark and at a ring checkpoint, into sessions of other sizes that
 * held other tokens before; each copy then continues exactly (max|d| 0 on
 * the CPU) as the source session itself does from that position, and within
 * 1e-5 of a fresh evaluation; the copy diverges without touching the source
 * (which continues bit for bit as an untouched twin); the copied position is
 * a checkpoint of the copy (a later sync diverging there reuses it) and the
 * copy's old checkpoints are gone; errors (NULL, itself, another engine, a
 * too small destination, max_pos < 0) change nothing.
 */
#include <math.h>

#include "ds4j.h"
#include "model_fixture.h"
#include "cuda_backend.h"

#define N_PROMPT 150
#define N_DECODE 10
#define N_TOK 200

/* The source's history: a prompt read by sync (so the engine marks 149),
 * then decode steps one token at a time. The same calls give a twin with
 * bit-identical state. */
static ds4j_session *make_source(ds4j_engine *e, const int32_t *tok) {
    ds4j_session *s = ds4j_session_new(e, 256);
    if (!s) return NULL;
    CHECK(ds4j_session_sync(s, tok, N_PROMPT, NULL, NULL) == 0);
    for (int i = N_PROMPT; i < N_PROMPT + N_DECODE; i++) CHECK(ds4j_session_eval(s, tok[i]) == DS4J_OK);
    return s;
}

/* rows of next-token logits while evaluating toks[0..n) after the session's position */
static float *continue_rows(ds4j_session *s, const int32_t *toks, int n, int V) {
    float *rows = malloc((size_t)n * V * sizeof(float));
    if (!rows) exit(1);
    CHECK(ds4j_session_eval_batch(s, toks, n, 0, rows) == DS4J_OK);
    return rows;
}

static int same_tokens(const ds4j_session *s, const int32_t *want, int n) {
    int32_t got[N_TOK];
    return ds4j_session_pos(s) == n && ds4j_session_tokens(s, got, N_TOK) == n && memcmp(got, want, (size_t)n * 4) == 0;
}

/* exact: the bound for "bit for bit" (0 on the CPU) */
static void run(const char *gguf, const char *opts, double exact) {
    ds4j_engine *e = ds4j_engine_open(gguf, opts);
    if (!e) { fprintf(stderr, "[%s] %s\n", opts, ds4j_last_error()); failures++; return; }
    int V = ds4j_n_vocab(e);
    int32_t tok[N_TOK], other[N_TOK];
    for (int i = 0; i < N_TOK; i++) {
        tok[i] = (int32_t)((i * 37 + 11) % V);
        other[i] = (int32_t)((i * 53 + 5) % V);
    }
    /* a fresh evaluation of all N_TOK tokens, for the "within 1e-5" checks */
    ds4j_session *f = ds4j_session_new(e, 256);
    float *fresh = f ? continue_rows(f, tok, N_TOK, V) : NULL;
    ds4j_session_free(f);
    ds4j_session *src = make_source(e, tok);
    CHECK(src && fresh);
    if (!src || !fresh) { ds4j_session_free(src); free(fresh); ds4j_engine_close(e); return; }
    const int cur = N_PROMPT + N_DECODE;

    /* which states the source holds */
    CHECK(ds4j_session_state_at(src, 1000) == cur);
    CHECK(ds4j_session_state_at(src, cur) == cur);
    CHECK(ds4j_session_state_at(src, cur - 1) == N_PROMPT - 1); /* the mark */
    CHECK(ds4j_session_state_at(src, N_PROMPT - 2) == 128);
    CHECK(ds4j_session_state_at(src, 127) == 64);
    CHECK(ds4j_session_state_at(src, 63) == 0);
    CHECK(ds4j_session_state_at(src, -1) == DS4J_ERR_INVALID_ARGUMENT);
    CHECK(ds4j_session_state_at(NULL, 5) == DS4J_ERR_INVALID_ARGUMENT);

    /* 1. at the mark (149), into a session that held 130 other tokens (its checkpoints at 64 and 128 must go) */
    ds4j_session *a = ds4j_session_new(e, 200);
    CHECK(a && ds4j_session_sync(a, other, 130, NULL, NULL) == 0);
    CHECK(ds4j_session_copy(a, src, 155) == N_PROMPT - 1);
    CHECK(same_tokens(a, tok, N_PROMPT - 1) && ds4j_session_logits(a) == NULL);
    CHECK(same_tokens(src, tok, cur) && ds4j_session_logits(src) != NULL); /* the source is unchanged */
    ds4j_session *twin = make_source(e, tok);
    CHECK(twin && ds4j_session_rewind(twin, N_PROMPT - 1) == DS4J_OK);
    int k = N_TOK - (N_PROMPT - 1);
    float *want = continue_rows(twin, tok + N_PROMPT - 1, k, V);
    float *got = continue_rows(a, tok + N_PROMPT - 1, k, V);
    double d_same = fx_maxdiff(got, want, (int64_t)k * V);
    double d_fresh = fx_maxdiff(got, fresh + (size_t)(N_PROMPT - 1) * V, (int64_t)k * V);
    printf("[%s] copy at the mark (149) + %d tokens: max|d| vs the source rewound there %.3g, vs fresh %.3g\n", opts, k,
           d_same, d_fresh);
    CHECK(d_same <= exact);
    CHECK(d_fresh <= 1e-5);
    free(want);
    free(got);
    ds4j_session_free(twin);
    /* the copied position is a checkpoint of the copy: a prompt diverging at 149 reuses all 149 tokens ... */
    int32_t alt[N_TOK];
    memcpy(alt, tok, sizeof alt);
    for (int i = N_PROMPT - 1; i < N_TOK; i++) alt[i] = other[i];
    CHECK(ds4j_session_sync(a, alt, 170, NULL, NULL) == N_PROMPT - 1);
    /* ... and its old checkpoints are gone: diverging at 70 (where the old 64 of `other` sat) starts from scratch,
     * and still gives the fresh logits */
    memcpy(alt, tok, 70 * 4);
    for (int i = 70; i < N_TOK; i++) alt[i] = other[i];
    CHECK(ds4j_session_sync(a, alt, 90, NULL, NULL) == 0);
    ds4j_session *g = ds4j_session_new(e, 256);
    float *alt_rows = g ? continue_rows(g, alt, 90, V) : NULL;
    CHECK(alt_rows && fx_maxdiff(ds4j_session_logits(a), alt_rows + (size_t)89 * V, V) <= 1e-5);
    free(alt_rows);
    ds4j_session_free(g);
    ds4j_session_free(a);

    /* 2. at the ring checkpoint 128, into a smaller session (n_ctx 140: other entry-array offsets) */
    ds4j_session *b = ds4j_session_new(e, 140);
    CHECK(b && ds4j_session_copy(b, src, 140) == 128);
    twin = make_source(e, tok);
    CHECK(twin && ds4j_session_rewind(twin, 128) == DS4J_OK);
    want = continue_rows(twin, tok + 128, 12, V);
    got = continue_rows(b, tok + 128, 12, V);
    d_same = fx_maxdiff(got, want, 12L * V);
    printf("[%s] copy at the checkpoint 128 into n_ctx 140 + 12 tokens: max|d| vs the source rewound there %.3g, "
           "vs fresh %.3g\n", opts, d_same, fx_maxdiff(got, fresh + (size_t)128 * V, 12L * V));
    CHECK(d_same <= exact);
    CHECK(fx_maxdiff(got, fresh + (size_t)128 * V, 12L * V) <= 1e-5);
    free(want);
    free(got);
    ds4j_session_free(twin);

    /* 3. the current state (160, logits included): the copy diverges, the source goes on untouched */
    ds4j_session *c = ds4j_session_new(e, 256);
    CHECK(c && ds4j_session_copy(c, src, 1000) == cur);
    CHECK(same_tokens(c, tok, cur));
    CHECK(ds4j_session_logits(c) && fx_maxdiff(ds4j_session_logits(c), ds4j_session_logits(src), V) == 0);
    twin = make_source(e, tok);
    float *twin_rows = twin ? continue_rows(twin, tok + cur, N_TOK - cur, V) : NULL;
    float *c_same = continue_rows(c, tok + cur, 20, V); /* the copy on the same tokens first ... */
    d_same = twin_rows ? fx_maxdiff(c_same, twin_rows, 20L * V) : 1;
    CHECK(ds4j_session_rewind(c, cur) == DS4J_OK);
    float *c_alt = continue_rows(c, other + cur, N_TOK - cur, V); /* ... then on other tokens */
    float *src_rows = continue_rows(src, tok + cur, N_TOK - cur, V);
    double d_src = twin_rows ? fx_maxdiff(src_rows, twin_rows, (int64_t)(N_TOK - cur) * V) : 1;
    double d_alt = fx_maxdiff(c_alt, src_rows, (int64_t)(N_TOK - cur) * V);
    printf("[%s] copy of the current state (160) + 20 tokens: max|d| vs the source's twin %.3g; the source after the "
           "copy diverged: vs its twin %.3g (copy vs source on other tokens: %.3g)\n", opts, d_same, d_src, d_alt);
    CHECK(d_same <= exact);
    CHECK(d_src <= exact);
    CHECK(d_alt > 1e-3); /* other tokens, other logits: the comparison can fail */
    free(twin_rows);
    free(c_same);
    free(c_alt);
    free(src_rows);
    ds4j_session_free(twin);

    /* 4. errors change nothing; a source with nothing at or before max_pos empties the destination */
    ds4j_session *small = ds4j_session_new(e, 100);
    CHECK(small && ds4j_session_sync(small, other, 5, NULL, NULL) == 0);
    CHECK(ds4j_session_copy(small, src, 1000) == DS4J_ERR_CONTEXT_FULL && strstr(ds4j_last_error(), "n_ctx"));
    CHECK(same_tokens(small, other, 5) && ds4j_session_logits(small) != NULL);
    CHECK(ds4j_session_copy(src, src, 10) == DS4J_ERR_INVALID_ARGUMENT && strstr(ds4j_last_error(), "itself"));
    CHECK(ds4j_session_copy(NULL, src, 10) == DS4J_ERR_INVALID_ARGUMENT);
    CHECK(ds4j_session_copy(small, NULL, 10) == DS4J_ERR_INVALID_ARGUMENT);
    CHECK(ds4j_session_copy(small, src, -1) == DS4J_ERR_INVALID_ARGUMENT);
    CHECK(same_tokens(small, other, 5));
    ds4j_engine *e2 = ds4j_engine_open(gguf, opts);
    ds4j_session *foreign = e2 ? ds4j_session_new(e2, 256) : NULL;
    CHECK(foreign != NULL);
    if (foreign) {
        CHECK(ds4j_session_copy(foreign, src, 1000) == DS4J_ERR_INVALID_ARGUMENT &&
              strstr(ds4j_last_error(), "different engines"));
        CHECK(ds4j_session_pos(foreign) == 0);
    }
    ds4j_session_free(foreign);
    ds4j_engine_close(e2);
    CHECK(ds4j_session_copy(small, src, 100) == 64 && same_tokens(small, tok, 64)); /* capped by the caller: fits */
    CHECK(ds4j_session_copy(small, src, 63) == 0 && ds4j_session_pos(small) == 0 && ds4j_session_logits(small) == NULL);
    ds4j_session_free(small);

    ds4j_session_free(b);
    ds4j_session_free(c);
    ds4j_session_free(src);
    free(fresh);
    ds4j_engine_close(e);
}

int main(void) {
    char gguf[1024];
    if (fx_convert("dsv4-tiny-a", "f32", gguf, sizeof gguf)) return 1;
    run(gguf, "threads=2;prefill_chunk=32", 0);
    run(gguf, "threads=2;prefill_chunk=32;kv_precision=fp8", 0);
    if (cuda_device_count() > 0) {
        /* the GPU's own runs agree to 1e-6 (as test_cuda's state file); the copy itself is a byte copy */
        run(gguf, "backend=cuda;prefill_chunk=32", 1e-6);
    } else {
        printf("backend=cuda: no CUDA device here (the GPU copy runs where one is visible)\n");
    }
    if (failures) { fprintf(stderr, "test_session_copy: %d failures\n", failures); return 1; }
    printf("test_session_copy: ok\n");
    return 0;
}
