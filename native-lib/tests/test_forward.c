/*
 * test_forward.c — the forward pass against the transformers reference
 * logits of both tiny fixtures: token by token and chunked prefill (16, 64)
 * within 5e-4 on every row for f32 weights, the greedy continuation
 * reproduced exactly, and f16/bf16/q8_0 conversions within a KL budget.
 */
#include <math.h>

#include "ds4j.h"
#include "model_fixture.h"

static double top2_gap(const float *x, int n) {
    float a = -INFINITY, b = -INFINITY;
    for (int i = 0; i < n; i++) {
        if (x[i] > a) { b = a; a = x[i]; }
        else if (x[i] > b) b = x[i];
    }
    return (double)a - b;
}

static int cmp_double(const void *p, const void *q) {
    double x = *(const double *)p, y = *(const double *)q;
    return (x > y) - (x < y);
}



typedef struct fidelity {
    double mean_kl, top1; /* over every row of every sequence */
    int rows;
    double *gap;          /* reference top-1/top-2 gap per row */
} fidelity;

/* Mean KL(reference || engine) and top-1 agreement of a model file over all
 * reference sequences (batched prefill). */
static fidelity measure(const char *gguf, const char *dir, const fx_ref *ref, int V) {
    fidelity r = {1e9, 0, 0, NULL};
    int total = 0;
    for (int sq = 0; sq < ref->n_seq; sq++) total += ref->n_tok[sq];
    r.gap = calloc((size_t)total + 1, sizeof(double));
    ds4j_engine *e = ds4j_engine_open(gguf, "threads=2");
    CHECK(e != NULL);
    if (!e) { fprintf(stderr, "%s\n", ds4j_last_error()); return r; }
    double *lp = malloc((size_t)V * sizeof(double)), *lq = malloc((size_t)V * sizeof(double));
    double kl_sum = 0;
    int agree = 0;
    for (int sq = 0; sq < ref->n_seq; sq++) {
        int n = ref->n_tok[sq];
        float *want = fx_load_logits(dir, ref, sq, V);
        float *got = malloc((size_t)n * V * sizeof(float));
        ds4j_session *s = ds4j_session_new(e, n);
        CHECK(want && got && s);
        if (want && got && s && ds4j_session_eval_batch(s, ref->tok[sq], n, 0, got) == DS4J_OK) {
            for (int t = 0; t < n; t++) {
                const float *w = want + (size_t)t * V, *g = got + (size_t)t * V;
                fx_log_softmax(w, lp, V);
                fx_log_softmax(g, lq, V);
                double kl = 0;
                for (int i = 0; i < V; i++) kl += exp(lp[i]) * (lp[i] - lq[i]);
                kl_sum += kl;
                agree += fx_argmax(w, V) == fx_argmax(g, V);
                r.gap[r.rows++] = top2_gap(w, V);
            }
        } else {
            failures++;
        }
        ds4j_session_free(s);
        free(want);
        free(got);
    }
    free(lp);
    free(lq);
    ds4j_engine_close(e);
    if (r.rows) { r.mean_kl = kl_sum / r.rows; r.top1 = (double)agree / r.rows; }
    return r;
}

static void run_fixture(const char *name) {
    char dir[1024], gguf[1024];
    snprintf(dir, sizeof dir, "%s/fixtures/%s", DS4J_SHARED_DIR, name);
    fx_ref ref;
    if (fx_load_ref(dir, &ref)) { failures++; return; }
    if (fx_convert(name, "f32", gguf, sizeof gguf)) { failures++; return; }
    ds4j_engine *e = ds4j_engine_open(gguf, "threads=2;prefill_chunk=64");
    if (!e) { fprintf(stderr, "%s: %s\n", name, ds4j_last_error()); failures++; return; }
    int V = ds4j_n_vocab(e);
    const int chunks[3] = {1, 16, 64};
    for (int sq = 0; sq < ref.n_seq; sq++) {
        int n = ref.n_tok[sq];
        float *want = fx_load_logits(dir, &ref, sq, V);
        float *got = malloc((size_t)n * V * sizeof(float));
        CHECK(want && got);
        if (!want || !got) { free(want); free(got); continue; }
        for (int c = 0; c < 3; c++) {
            ds4j_session *s = ds4j_session_new(e, n);
            CHECK(s != NULL);
            if (!s) continue;
            CHECK(ds4j_session_eval_batch(s, ref.tok[sq], n, chunks[c], got) == DS4J_OK);
            double worst = 0;
            for (int t = 0; t < n; t++) {
                double d = fx_maxdiff(got + (size_t)t * V, want + (size_t)t * V, V);
                if (!(d <= worst)) worst = d;
            }
            printf("%s seq%d (%d tokens) f32 chunk %2d: max |d| = %.3g\n", name, sq, n, chunks[c], worst);
            CHECK(worst <= 5e-4);
            /* the session's own logits are the last row */
            const float *last = ds4j_session_logits(s);
            CHECK(last && fx_maxdiff(last, got + (size_t)(n - 1) * V, V) == 0);
            ds4j_session_free(s);
        }
        free(want);
        free(got);
    }

    /* greedy continuation */
    if (ref.greedy && ref.greedy_seq < ref.n_seq) {
        int np = ref.n_tok[ref.greedy_seq];
        ds4j_session *s = ds4j_session_new(e, np + ref.n_greedy);
        ds4j_sampler *sp = ds4j_sampler_new("temperature=0");
        CHECK(s && sp);
        if (s && sp) {
            CHECK(ds4j_session_sync(s, ref.tok[ref.greedy_seq], np, NULL, NULL) == 0);
            int ok = 1;
            for (int i = 0; i < ref.n_greedy; i++) {
                int32_t t = ds4j_sampler_sample(sp, s, 0, NULL, NULL, NULL);
                if (t != ref.greedy[i]) {
                    fprintf(stderr, "%s greedy step %d: got %d want %d\n", name, i, t, ref.greedy[i]);
                    ok = 0;
                    break;
                }
                if (i + 1 < ref.n_greedy) CHECK(ds4j_session_eval(s, t) == DS4J_OK);
            }
            printf("%s greedy continuation of %d tokens: %s\n", name, ref.n_greedy, ok ? "identical" : "DIFFERENT");
            CHECK(ok);
        }
        ds4j_sampler_free(sp);
        ds4j_session_free(s);
    }
    ds4j_engine_close(e);

    /* reduced-precision weights: KL(reference || engine) and top-1 agreement,
     * next to the floor the rounding alone sets (see fx_widen_to_f32) */
    const char *types[3] = {"f16", "bf16", "q8_0"};
    for (int ti = 0; ti < 3; ti++) {
        char wide[1200];
        if (fx_convert(name, types[ti], gguf, sizeof gguf)) { failures++; continue; }
        snprintf(wide, sizeof wide, "%s.as-f32.gguf", gguf);
        if (fx_widen_to_f32(gguf, wide)) { failures++; continue; }
        fidelity got = measure(gguf, dir, &ref, V), floor = measure(wide, dir, &ref, V);
        printf("%s %s: mean KL = %.3g over %d rows, top-1 agreement = %.1f%%; "
               "rounding floor (f32 math on the rounded weights): KL = %.3g, top-1 = %.1f%%\n",
               name, types[ti], got.mean_kl, got.rows, 100 * got.top1, floor.mean_kl, 100 * floor.top1);
        CHECK(got.rows > 0 && floor.rows == got.rows);
        if (ti == 0) { /* why the budgets below are what they are */
            int small = 0;
            for (int i = 0; i < got.rows; i++) small += got.gap[i] < 0.05;
            qsort(got.gap, (size_t)got.rows, sizeof got.gap[0], cmp_double);
            printf("%s reference top-1/top-2 logit gap: median %.3f, < 0.05 on %d of %d rows\n", name,
                   got.gap[got.rows / 2], small, got.rows);
        }
        /* The project's target is KL <= 5e-3 and top-1 >= 95%. f16 meets it.
         * For bf16 and q8_0 the floor itself misses it on these random models
         * (their top-1/top-2 gaps are tiny, printed above), so no implementation
         * can; there the engine is held to its own share: at most 2.5x the
         * floor's KL (Q8_0 activations, as ds4 and llama.cpp use, add an error
         * of the same size as the weights' rounding) and within 8 points of the
         * floor's top-1. The floor is checked too: rounding must cost
         * something, or fx_widen_to_f32 compared the engine with itself. */
        CHECK(floor.mean_kl > 0 && floor.mean_kl < 2e-2);
        CHECK(got.mean_kl <= fmax(5e-3, 2.5 * floor.mean_kl));
        CHECK(got.top1 >= fmin(0.95, floor.top1 - 0.08));
        if (ti == 0) CHECK(got.mean_kl <= 5e-3 && got.top1 >= 0.95);
        free(got.gap);
        free(floor.gap);
        remove(wide);
    }
    fx_free_ref(&ref);
}

int main(void) {
    run_fixture("dsv4-tiny-a");
    run_fixture("dsv4-tiny-b");
    if (failures) { fprintf(stderr, "test_forward: %d failures\n", failures); return 1; }
    printf("test_forward: ok\n");
    return 0;
}
