/*
 * test_session.c — session semantics on the tiny fixture: prefix reuse in
 * sync equals a fresh evaluation (a chat's next turn reuses the previous
 * prompt up to its last token exactly), rewind (within a checkpoint interval,
 * across one, to 0) followed by re-evaluation reproduces the logits,
 * diverging suffixes, context overflow, cancellation, option errors, and
 * the expert-parallel split (two engines owning half the experts each,
 * joined by an in-memory all-reduce) equal to the full model.
 */
#include <math.h>
#include <unistd.h>
#include <pthread.h>

#include "ds4j.h"
#include "model_fixture.h"
#include "session.h"

static int cancel_after_first(void *user, int32_t done, int32_t total) {
    int *calls = user;
    (*calls)++;
    return 1;
}

static int count_progress(void *user, int32_t done, int32_t total) {
    int *calls = user;
    (*calls)++;
    return 0;
}

/* ---- in-memory all-reduce between two engines running in two threads ---- */
typedef struct ar_shared {
    pthread_barrier_t bar;
    float *buf[2];
    int64_t n[2];
    int calls[2];
} ar_shared;

typedef struct ar_peer { ar_shared *sh; int rank; } ar_peer;

static int mem_allreduce(void *user, int layer, float *buf, int64_t n) {
    ar_peer *p = user;
    ar_shared *sh = p->sh;
    sh->buf[p->rank] = buf;
    sh->n[p->rank] = n;
    sh->calls[p->rank]++;
    pthread_barrier_wait(&sh->bar);
    if (sh->n[0] != sh->n[1]) return -7;
    /* both ranks compute the same sum in the same order */
    float *other = sh->buf[1 - p->rank];
    static _Thread_local float tmp[1 << 16];
    if (n > (int64_t)(sizeof tmp / sizeof tmp[0])) return -7;
    for (int64_t i = 0; i < n; i++) tmp[i] = p->rank == 0 ? buf[i] + other[i] : other[i] + buf[i];
    pthread_barrier_wait(&sh->bar);
    memcpy(buf, tmp, (size_t)n * sizeof(float));
    return 0;
}

typedef struct ep_job {
    ds4j_engine *e;
    const int32_t *tok;
    int n;
    float *out;
    int rc;
} ep_job;

static void *ep_thread(void *arg) {
    ep_job *j = arg;
    ds4j_session *s = ds4j_session_new(j->e, j->n);
    j->rc = s ? ds4j_session_eval_batch(s, j->tok, j->n, 16, j->out) : -1;
    ds4j_session_free(s);
    return NULL;
}

int main(void) {
    char gguf[1024], dir[1024];
    snprintf(dir, sizeof dir, "%s/fixtures/dsv4-tiny-a", DS4J_SHARED_DIR);
    fx_ref ref;
    if (fx_load_ref(dir, &ref) || fx_convert("dsv4-tiny-a", "f32", gguf, sizeof gguf)) return 1;
    const int32_t *tok = ref.tok[3];
    int n = ref.n_tok[3]; /* 96 */
    ds4j_engine *e = ds4j_engine_open(gguf, "threads=2;prefill_chunk=32");
    if (!e) { fprintf(stderr, "%s\n", ds4j_last_error()); return 1; }
    int V = ds4j_n_vocab(e);
    float *full = malloc((size_t)n * V * sizeof(float));

    /* fresh run: all rows */
    ds4j_session *f = ds4j_session_new(e, 200);
    CHECK(ds4j_session_eval_batch(f, tok, n, 1, full) == DS4J_OK);
    CHECK(ds4j_session_pos(f) == n);
    int32_t back[128];
    CHECK(ds4j_session_tokens(f, back, 128) == n && memcmp(back, tok, (size_t)n * 4) == 0);

    /* prefix reuse: sync A then A+B evaluates only B */
    ds4j_session *s = ds4j_session_new(e, 200);
    int calls = 0;
    CHECK(ds4j_session_sync(s, tok, 40, NULL, NULL) == 0);
    CHECK(ds4j_session_sync(s, tok, n, count_progress, &calls) == 40);
    CHECK(calls >= 1);
    double d = fx_maxdiff(ds4j_session_logits(s), full + (size_t)(n - 1) * V, V);
    printf("prefix reuse vs fresh: max |d| = %.3g\n", d);
    CHECK(d <= 1e-5);
    /* syncing the same tokens again reuses everything */
    CHECK(ds4j_session_sync(s, tok, n, NULL, NULL) == n);

    /* rewind inside the last checkpoint interval, across one, and to 0 */
    const int targets[4] = {90, 70, 50, 10};
    for (int i = 0; i < 4; i++) {
        int r = targets[i];
        CHECK(ds4j_session_rewind(s, r) == DS4J_OK);
        CHECK(ds4j_session_pos(s) == r);
        d = fx_maxdiff(ds4j_session_logits(s), full + (size_t)(r - 1) * V, V);
        printf("rewind to %d: logits vs fresh row %d: max |d| = %.3g\n", r, r - 1, d);
        CHECK(d <= 1e-5);
        float *rows = malloc((size_t)(n - r) * V * sizeof(float));
        CHECK(ds4j_session_eval_batch(s, tok + r, n - r, 0, rows) == DS4J_OK);
        d = fx_maxdiff(rows, full + (size_t)r * V, (n - r) * V);
        printf("re-eval after rewind to %d: max |d| = %.3g\n", r, d);
        CHECK(d <= 1e-5);
        free(rows);
    }
    CHECK(ds4j_session_rewind(s, 0) == DS4J_OK);
    CHECK(ds4j_session_pos(s) == 0 && ds4j_session_logits(s) == NULL);
    CHECK(ds4j_session_rewind(s, 5) == DS4J_ERR_INVALID_ARGUMENT);

    /* diverging suffix: A+B then A+C equals a fresh A+C */
    int32_t alt[96];
    memcpy(alt, tok, sizeof alt);
    for (int i = 60; i < n; i++) alt[i] = (tok[i] * 7 + 3) % V;
    CHECK(ds4j_session_sync(s, tok, n, NULL, NULL) == 0);
    int reused = ds4j_session_sync(s, alt, n, NULL, NULL);
    CHECK(reused >= 0 && reused <= 60);
    ds4j_session *g = ds4j_session_new(e, 200);
    CHECK(ds4j_session_eval_batch(g, alt, n, 0, NULL) == DS4J_OK);
    d = fx_maxdiff(ds4j_session_logits(s), ds4j_session_logits(g), V);
    printf("diverging suffix (reused %d) vs fresh: max |d| = %.3g\n", reused, d);
    CHECK(d <= 1e-5);
    ds4j_session_free(g);

    /* a chat's next turn: the previous prompt (75 tokens) was answered (5
     * decoded tokens), and the next prompt keeps all but its last token (the
     * history renders the assistant's opening differently). The mark before
     * the last prompt token makes the reuse exact: 74, not the 64-token
     * checkpoint. */
    {
        int32_t turn2[90];
        memcpy(turn2, tok, 74 * sizeof(int32_t));
        for (int i = 74; i < 90; i++) turn2[i] = (tok[i] * 5 + 1) % V;
        CHECK(ds4j_session_sync(s, tok, 75, NULL, NULL) >= 0);
        for (int i = 0; i < 5; i++) CHECK(ds4j_session_eval(s, alt[70 + i]) == DS4J_OK);
        int reused2 = ds4j_session_sync(s, turn2, 90, NULL, NULL);
        CHECK(reused2 == 74);
        ds4j_session *h = ds4j_session_new(e, 200);
        CHECK(ds4j_session_eval_batch(h, turn2, 90, 0, NULL) == DS4J_OK);
        d = fx_maxdiff(ds4j_session_logits(s), ds4j_session_logits(h), V);
        printf("next chat turn (reused %d of the previous 75-token prompt) vs fresh: max |d| = %.3g\n", reused2, d);
        CHECK(d <= 1e-5);
        ds4j_session_free(h);
    }

    /* cancellation between chunks: the session keeps the finished chunk */
    calls = 0;
    CHECK(ds4j_session_sync(s, tok, 0, NULL, NULL) == 0);
    CHECK(ds4j_session_sync(s, tok, n, cancel_after_first, &calls) == DS4J_ERR_CANCELLED);
    CHECK(calls == 1 && ds4j_session_pos(s) == 32);

    /* context overflow */
    ds4j_session *small = ds4j_session_new(e, 8);
    CHECK(ds4j_session_eval_batch(small, tok, 9, 0, NULL) == DS4J_ERR_CONTEXT_FULL);
    CHECK(strstr(ds4j_last_error(), "n_ctx") != NULL);
    CHECK(ds4j_session_sync(small, tok, 9, NULL, NULL) == DS4J_ERR_CONTEXT_FULL);
    CHECK(ds4j_session_eval_batch(small, tok, 8, 0, NULL) == DS4J_OK);
    CHECK(ds4j_session_eval(small, tok[8]) == DS4J_ERR_CONTEXT_FULL);
    CHECK(ds4j_session_pos(small) == 8);
    CHECK(ds4j_session_eval(small, V) == DS4J_ERR_CONTEXT_FULL); /* the session is full: that check comes first */
    /* an impossible context is refused with a message, not committed and OOM-killed. "Impossible"
     * depends on the machine (the tiny model needs ~0.2 TB at INT32_MAX tokens, which a large host
     * has), so ask for more than this machine's memory can hold */
    {
        int64_t per_max = ds4j_context_memory(e, INT32_MAX);
        CHECK(per_max > 0);
        double phys = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
        if ((double)per_max > phys) {
            CHECK(ds4j_session_new(e, INT32_MAX) == NULL);
            CHECK(strstr(ds4j_last_error(), "GiB") != NULL || strstr(ds4j_last_error(), "too large") != NULL);
        } else {
            printf("test_session: this machine could hold INT32_MAX tokens of the tiny model; check skipped\n");
        }
    }
    ds4j_session_free(small);
    CHECK(ds4j_context_memory(e, 1000) > ds4j_context_memory(e, 100));
    CHECK(ds4j_context_memory(e, 0) == DS4J_ERR_INVALID_ARGUMENT);
    ds4j_session *bad = ds4j_session_new(e, 100);
    CHECK(ds4j_session_eval(bad, -1) == DS4J_ERR_INVALID_ARGUMENT);
    CHECK(ds4j_session_eval(bad, V) == DS4J_ERR_INVALID_ARGUMENT);
    CHECK(ds4j_session_pos(bad) == 0);
    ds4j_session_free(bad);

    /* engine options */
    CHECK(ds4j_engine_open(gguf, "bogus=1") == NULL && strstr(ds4j_last_error(), "bogus"));
    CHECK(ds4j_engine_open(gguf, "expert_range=4:99") == NULL);
    CHECK(ds4j_engine_open(gguf, "threads=x") == NULL);
    ds4j_engine *vo = ds4j_engine_open(gguf, "vocab_only=1");
    CHECK(vo && ds4j_n_vocab(vo) == V && ds4j_session_new(vo, 10) == NULL);
    CHECK(vo && ds4j_meta_find(vo, "general.architecture") >= 0);
    ds4j_engine_close(vo);
    CHECK(strstr(ds4j_engine_describe(e), "\"n_layer\":5") != NULL);

    /* expert parallel: halves of the experts, summed by an in-memory all-reduce */
    ds4j_engine *e0 = ds4j_engine_open(gguf, "threads=1;expert_range=0:4");
    ds4j_engine *e1 = ds4j_engine_open(gguf, "threads=1;expert_range=4:8");
    CHECK(e0 && e1);
    if (e0 && e1) {
        ar_shared sh;
        memset(&sh, 0, sizeof sh);
        pthread_barrier_init(&sh.bar, NULL, 2);
        ar_peer p0 = {&sh, 0}, p1 = {&sh, 1};
        dsv4_model_set_allreduce(e0->model, mem_allreduce, &p0);
        dsv4_model_set_allreduce(e1->model, mem_allreduce, &p1);
        float *o0 = malloc((size_t)n * V * sizeof(float)), *o1 = malloc((size_t)n * V * sizeof(float));
        ep_job j0 = {e0, tok, n, o0, 0}, j1 = {e1, tok, n, o1, 0};
        pthread_t t0, t1;
        pthread_create(&t0, NULL, ep_thread, &j0);
        pthread_create(&t1, NULL, ep_thread, &j1);
        pthread_join(t0, NULL);
        pthread_join(t1, NULL);
        CHECK(j0.rc == DS4J_OK && j1.rc == DS4J_OK);
        CHECK(sh.calls[0] == sh.calls[1] && sh.calls[0] > 0);
        double d0 = fx_maxdiff(o0, full, n * V), d1 = fx_maxdiff(o0, o1, n * V);
        printf("expert split 0:4 + 4:8 vs full model: max |d| = %.3g (ranks differ by %.3g), %d all-reduces\n", d0, d1,
               sh.calls[0]);
        CHECK(d0 <= 1e-4);
        CHECK(d1 == 0);
        /* a single half without the reduction is a different model */
        dsv4_model_set_allreduce(e0->model, NULL, NULL);
        ds4j_session *h = ds4j_session_new(e0, n);
        CHECK(ds4j_session_eval_batch(h, tok, n, 0, o0) == DS4J_OK);
        CHECK(fx_maxdiff(o0, full, n * V) > 1e-3);
        ds4j_session_free(h);
        free(o0);
        free(o1);
        pthread_barrier_destroy(&sh.bar);
    }
    ds4j_engine_close(e0);
    ds4j_engine_close(e1);

    ds4j_session_free(s);
    ds4j_session_free(f);
    ds4j_engine_close(e);
    free(full);
    fx_free_ref(&ref);
    if (failures) { fprintf(stderr, "test_session: %d failures\n", failures); return 1; }
    printf("test_session: ok\n");
    return 0;
}
