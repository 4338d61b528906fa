/*
 * test_batch.c — ds4j_batch_eval, many sessions in one forward, on both f32
 * fixtures. A schedule of steps in which sessions join at different steps,
 * prefill their prompt in chunks of different sizes (some larger than the
 * step's rows, some crossing a checkpoint boundary) and then decode one
 * token per step, idle now and then and leave when done, is compared with
 * every session evaluated alone (token by token and in chunks of 16): the
 * logits after each step must be bit-identical, and within 5e-4 of the
 * transformers reference. A rewind after the batch (checkpoints taken by
 * batch steps) reproduces the alone run; kv_precision=fp8 is bit-identical
 * to its own alone run too, and so are f16 and q8_0 weights (the multi-row
 * dot kernels). Refused calls (NULL / foreign / repeated
 * session, flags, n_tokens <= 0, bad token, context overflow, bad counts)
 * leave every session's position, logits and later results untouched.
 * With MPI: the same schedule driven by a leader with a `ds4j-tool follow`
 * rank (2 ranks, experts split) equals the single process (<= 1e-4).
 */
#include <math.h>
#include <unistd.h>

#include "ds4j.h"
#include "model_fixture.h"
#include "session.h"

#define N_SESS 7
#define CHUNK 16 /* the engine's prefill_chunk = rows of one forward */

/* Session j plays reference sequence seq[j]: joins at step join[j], prefills
 * the first plen[j] tokens in chunks of pch[j], then decodes the rest one
 * token per step (teacher-forced with the reference tokens), idling on
 * steps where (step + j) % idle[j] == 0. */
typedef struct plan {
    int seq, join, plen, pch, idle;
} plan;

static void make_plans(const fx_ref *ref, plan *p) {
    /* the reference's sequences sorted by length: 1, 7, 33, 96 tokens on both fixtures */
    int order[FX_MAX_SEQ], n = ref->n_seq;
    for (int i = 0; i < n; i++) order[i] = i;
    for (int i = 1; i < n; i++)
        for (int k = i; k > 0 && ref->n_tok[order[k]] < ref->n_tok[order[k - 1]]; k--) {
            int t = order[k]; order[k] = order[k - 1]; order[k - 1] = t;
        }
    int L = order[n - 1], M = order[n > 1 ? n - 2 : 0], S = order[n > 2 ? n - 3 : 0], T = order[0];
    int nl = ref->n_tok[L], nm = ref->n_tok[M], ns = ref->n_tok[S];
    plan q[N_SESS] = {
        {L, 0, nl - 20, 40, 0},       /* a long prompt: 40-token chunks > the step's rows, crosses position 64 */
        {M, 0, 5, 5, 7},              /* short prompt, long decode, idles every 7th step */
        {S, 2, ns, 3, 0},             /* prompt only, in 3-token chunks */
        {T, 3, 1, 1, 0},              /* a one-token sequence: joins and leaves at once */
        {L, 4, 9, 9, 4},              /* the long sequence again, mostly decoding */
        {M, 6, nm > 12 ? 12 : nm, 12, 3},
        {S, 9, 1, 1, 0},              /* decode only from the first token */
    };
    memcpy(p, q, sizeof q);
}

/*
 * Runs the schedule; got[j] (ref length x V) receives the logits after the
 * last token of each step at that token's row, have[j][pos] = 1 where set.
 * Returns the number of steps (negative on failure). With out != NULL every
 * recorded row is also written there, in step order.
 */
static int run_schedule(ds4j_engine *e, const fx_ref *ref, const plan *p, float **got, char **have, FILE *out,
                        int *max_entries, int *max_rows) {
    int V = ds4j_n_vocab(e), steps = 0;
    ds4j_session *s[N_SESS] = {0};
    int done[N_SESS] = {0};
    for (int j = 0; j < N_SESS; j++) {
        s[j] = ds4j_session_new(e, ref->n_tok[p[j].seq]);
        CHECK(s[j] != NULL);
        if (!s[j]) return -1;
    }
    *max_entries = *max_rows = 0;
    for (int step = 0;; step++) {
        ds4j_batch_entry en[N_SESS];
        int idx[N_SESS], n = 0, active = 0, rows = 0;
        for (int k = 0; k < N_SESS; k++) {
            int j = (k + step) % N_SESS; /* the entries' order changes from step to step */
            const plan *q = &p[j];
            int len = ref->n_tok[q->seq];
            if (done[j] == len) continue;
            active++;
            if (step < q->join || (q->idle && (step + j) % q->idle == 0)) continue;
            int take = done[j] < q->plen ? q->pch : 1;
            if (done[j] < q->plen && take > q->plen - done[j]) take = q->plen - done[j];
            if (take > len - done[j]) take = len - done[j];
            en[n] = (ds4j_batch_entry){.session = s[j], .tokens = ref->tok[q->seq] + done[j], .n_tokens = take, .flags = 0};
            idx[n++] = j;
            rows += take;
        }
        if (!active) break;
        if (n > *max_entries) *max_entries = n;
        if (rows > *max_rows) *max_rows = rows;
        int rc = ds4j_batch_eval(e, en, n);
        CHECK(rc == DS4J_OK);
        if (rc) { fprintf(stderr, "step %d: %s\n", step, ds4j_last_error()); return -1; }
        for (int i = 0; i < n; i++) {
            int j = idx[i];
            done[j] += en[i].n_tokens;
            CHECK(ds4j_session_pos(s[j]) == done[j]);
            const float *l = ds4j_session_logits(s[j]);
            CHECK(l != NULL);
            if (!l) continue;
            memcpy(got[j] + (size_t)(done[j] - 1) * V, l, (size_t)V * sizeof(float));
            have[j][done[j] - 1] = 1;
            if (out) fwrite(l, sizeof(float), (size_t)V, out);
        }
        steps++;
    }
    /* checkpoints written by batch steps: rewind the long sessions and redo one token */
    for (int j = 0; j < N_SESS; j += 4) {
        int len = ref->n_tok[p[j].seq], at = len > 70 ? 70 : len / 2;
        CHECK(ds4j_session_rewind(s[j], at) == DS4J_OK);
        ds4j_batch_entry one = {.session = s[j], .tokens = ref->tok[p[j].seq] + at, .n_tokens = 1};
        CHECK(ds4j_batch_eval(e, &one, 1) == DS4J_OK);
        const float *l = ds4j_session_logits(s[j]);
        CHECK(l && ds4j_session_pos(s[j]) == at + 1);
        if (l) {
            memcpy(got[j] + (size_t)at * V, l, (size_t)V * sizeof(float));
            if (out) fwrite(l, sizeof(float), (size_t)V, out);
        }
    }
    for (int j = 0; j < N_SESS; j++) ds4j_session_free(s[j]);
    return steps;
}

/* Every reference sequence alone, all rows, with the given chunk. */
static float *alone(ds4j_engine *e, const fx_ref *ref, int sq, int chunk) {
    int V = ds4j_n_vocab(e), n = ref->n_tok[sq];
    float *rows = malloc((size_t)n * V * sizeof(float));
    ds4j_session *s = ds4j_session_new(e, n);
    CHECK(rows && s);
    if (!rows || !s || ds4j_session_eval_batch(s, ref->tok[sq], n, chunk, rows) != DS4J_OK) {
        failures++;
        free(rows);
        rows = NULL;
    }
    ds4j_session_free(s);
    return rows;
}

typedef struct cmp { double vs_alone1, vs_alone16, vs_ref; long rows; } cmp;

/* Compare a schedule's rows with the alone runs (and the reference, if given). */
static cmp compare(const fx_ref *ref, const plan *p, float **got, char **have, float **a1, float **a16,
                   float **refl, int V) {
    cmp c = {0, 0, 0, 0};
    for (int j = 0; j < N_SESS; j++) {
        int sq = p[j].seq;
        for (int t = 0; t < ref->n_tok[sq]; t++) {
            if (!have[j][t]) continue;
            const float *g = got[j] + (size_t)t * V;
            c.vs_alone1 = fmax(c.vs_alone1, a1[sq] ? fx_maxdiff(g, a1[sq] + (size_t)t * V, V) : INFINITY);
            c.vs_alone16 = fmax(c.vs_alone16, a16[sq] ? fx_maxdiff(g, a16[sq] + (size_t)t * V, V) : INFINITY);
            if (refl) c.vs_ref = fmax(c.vs_ref, refl[sq] ? fx_maxdiff(g, refl[sq] + (size_t)t * V, V) : INFINITY);
            c.rows++;
        }
    }
    return c;
}

static void alloc_rows(const fx_ref *ref, const plan *p, int V, float **got, char **have) {
    for (int j = 0; j < N_SESS; j++) {
        int n = ref->n_tok[p[j].seq];
        got[j] = calloc((size_t)n * V, sizeof(float));
        have[j] = calloc((size_t)n, 1);
    }
}

static void free_rows(float **got, char **have) {
    for (int j = 0; j < N_SESS; j++) { free(got[j]); free(have[j]); got[j] = NULL; have[j] = NULL; }
}

/* ---- refused calls change nothing ---- */
static void validation(ds4j_engine *e, ds4j_engine *other, const fx_ref *ref, int sq) {
    int V = ds4j_n_vocab(e), n = ref->n_tok[sq];
    const int32_t *tok = ref->tok[sq];
    ds4j_session *a = ds4j_session_new(e, n), *b = ds4j_session_new(e, n), *f = ds4j_session_new(other, n);
    ds4j_session *tiny = ds4j_session_new(e, 4);
    CHECK(a && b && f && tiny);
    if (!a || !b || !f || !tiny) return;
    CHECK(ds4j_session_eval_batch(a, tok, 10, 0, NULL) == DS4J_OK);
    CHECK(ds4j_session_eval_batch(b, tok, 3, 0, NULL) == DS4J_OK);
    CHECK(ds4j_session_eval_batch(tiny, tok, 3, 0, NULL) == DS4J_OK);
    float *la = malloc((size_t)V * sizeof(float)), *lb = malloc((size_t)V * sizeof(float));
    memcpy(la, ds4j_session_logits(a), (size_t)V * sizeof(float));
    memcpy(lb, ds4j_session_logits(b), (size_t)V * sizeof(float));
    int32_t bad[2] = {tok[3], V}; /* the second id is out of range */
    int32_t neg[1] = {-1};
    struct {
        const char *what, *needle;
        ds4j_batch_entry en[3];
        int n, want;
    } cases[] = {
        {"repeated session", "name the same session",
         {{a, tok + 10, 1, 0}, {b, tok + 3, 2, 0}, {a, tok + 10, 1, 0}}, 3, DS4J_ERR_INVALID_ARGUMENT},
        {"foreign session", "another engine", {{a, tok + 10, 1, 0}, {f, tok, 1, 0}}, 2, DS4J_ERR_INVALID_ARGUMENT},
        {"NULL session", "session is NULL", {{a, tok + 10, 1, 0}, {NULL, tok, 1, 0}}, 2, DS4J_ERR_INVALID_ARGUMENT},
        {"n_tokens 0", "at least one token", {{a, tok + 10, 1, 0}, {b, tok + 3, 0, 0}}, 2, DS4J_ERR_INVALID_ARGUMENT},
        {"n_tokens < 0", "at least one token", {{a, tok + 10, 1, 0}, {b, tok + 3, -2, 0}}, 2, DS4J_ERR_INVALID_ARGUMENT},
        {"NULL tokens", "tokens NULL", {{a, tok + 10, 1, 0}, {b, NULL, 1, 0}}, 2, DS4J_ERR_INVALID_ARGUMENT},
        {"flags", "flags must be 0", {{a, tok + 10, 1, 0}, {b, tok + 3, 1, 1}}, 2, DS4J_ERR_INVALID_ARGUMENT},
        {"token out of range", "out of range", {{a, tok + 10, 1, 0}, {b, bad, 2, 0}}, 2, DS4J_ERR_INVALID_ARGUMENT},
        {"negative token", "out of range", {{a, tok + 10, 1, 0}, {b, neg, 1, 0}}, 2, DS4J_ERR_INVALID_ARGUMENT},
        {"context overflow", "context full",
         {{a, tok + 10, 1, 0}, {b, tok + 3, 1, 0}, {tiny, tok + 3, 2, 0}}, 3, DS4J_ERR_CONTEXT_FULL},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int rc = ds4j_batch_eval(e, cases[c].en, cases[c].n);
        int ok = rc == cases[c].want && strstr(ds4j_last_error(), cases[c].needle) != NULL;
        printf("refused: %-18s -> %d (%s)\n", cases[c].what, rc, ds4j_last_error());
        CHECK(ok);
        CHECK(ds4j_session_pos(a) == 10 && ds4j_session_pos(b) == 3 && ds4j_session_pos(tiny) == 3);
        CHECK(ds4j_session_pos(f) == 0 && ds4j_session_logits(f) == NULL);
        CHECK(memcmp(ds4j_session_logits(a), la, (size_t)V * sizeof(float)) == 0);
        CHECK(memcmp(ds4j_session_logits(b), lb, (size_t)V * sizeof(float)) == 0);
    }
    /* the model layer's own checks (the session layer refuses these first) */
    {
        dsv4_seq two[2] = {{a->st, tok + 10, 1, NULL, NULL}, {a->st, tok + 11, 1, NULL, NULL}};
        CHECK(dsv4_forward_batch(e->model, e->scratch, e->pool, two, 2) == DS4J_ERR_INVALID_ARGUMENT &&
              strstr(ds4j_last_error(), "repeats an earlier one's state"));
        dsv4_seq big[2] = {{a->st, tok + 10, 1, NULL, NULL}, {b->st, tok + 3, CHUNK, NULL, NULL}};
        CHECK(dsv4_forward_batch(e->model, e->scratch, e->pool, big, 2) == DS4J_ERR_INVALID_ARGUMENT &&
              strstr(ds4j_last_error(), "rows"));
        CHECK(a->st->pos == 10 && b->st->pos == 3);
    }
    ds4j_batch_entry ok2[2] = {{a, tok + 10, 1, 0}, {b, tok + 3, 4, 0}};
    CHECK(ds4j_batch_eval(e, ok2, -1) == DS4J_ERR_INVALID_ARGUMENT);
    CHECK(ds4j_batch_eval(e, NULL, 2) == DS4J_ERR_INVALID_ARGUMENT);
    CHECK(ds4j_batch_eval(NULL, ok2, 2) == DS4J_ERR_INVALID_ARGUMENT);
    CHECK(ds4j_batch_eval(e, ok2, 0) == DS4J_OK && ds4j_session_pos(a) == 10);
    /* after all that, a valid step gives what the sessions give alone */
    CHECK(ds4j_batch_eval(e, ok2, 2) == DS4J_OK);
    float *ra = alone(e, ref, sq, 1);
    if (ra) {
        double da = fx_maxdiff(ds4j_session_logits(a), ra + (size_t)10 * V, V);
        double db = fx_maxdiff(ds4j_session_logits(b), ra + (size_t)6 * V, V);
        printf("after the refusals, a valid step vs alone: max |d| %.3g, %.3g\n", da, db);
        CHECK(da == 0 && db == 0);
    }
    free(ra);
    free(la);
    free(lb);
    ds4j_session_free(a);
    ds4j_session_free(b);
    ds4j_session_free(f);
    ds4j_session_free(tiny);
}

/* type f32: the schedule with f32 and fp8 KV, against the alone runs and
 * the reference; f16 / q8_0 (multi-row dot kernels on AVX2): against the
 * alone runs only. */
static void run_fixture(const char *name, const char *type, int with_checks) {
    char dir[1024], gguf[1024], cmd[4096];
    snprintf(dir, sizeof dir, "%s/fixtures/%s", DS4J_SHARED_DIR, name);
    /* a file of our own: other tests convert the same fixture concurrently under ctest -j */
    snprintf(gguf, sizeof gguf, "%s/test-batch-%s-%s.gguf", DS4J_BUILD_DIR, name, type);
    snprintf(cmd, sizeof cmd, "'%s' convert --hf '%s' --out '%s' --type %s > /dev/null 2>&1", DS4J_TOOL_PATH, dir, gguf,
             type);
    fx_ref ref;
    if (fx_load_ref(dir, &ref) || system(cmd) != 0) { fprintf(stderr, "%s: cannot prepare\n", name); failures++; return; }
    plan p[N_SESS];
    make_plans(&ref, p);
    int f32 = !strcmp(type, "f32");
    for (int fp8 = 0; fp8 < (f32 ? 2 : 1); fp8++) {
        ds4j_engine *e = ds4j_engine_open(gguf, fp8 ? "threads=2;prefill_chunk=16;kv_precision=fp8"
                                                    : "threads=2;prefill_chunk=16");
        if (!e) { fprintf(stderr, "%s: %s\n", name, ds4j_last_error()); failures++; return; }
        int V = ds4j_n_vocab(e);
        float *a1[FX_MAX_SEQ] = {0}, *a16[FX_MAX_SEQ] = {0}, *refl[FX_MAX_SEQ] = {0};
        for (int sq = 0; sq < ref.n_seq; sq++) {
            a1[sq] = alone(e, &ref, sq, 1);
            a16[sq] = alone(e, &ref, sq, CHUNK);
            if (!fp8 && f32) refl[sq] = fx_load_logits(dir, &ref, sq, V);
        }
        float *got[N_SESS];
        char *have[N_SESS];
        alloc_rows(&ref, p, V, got, have);
        int me = 0, mr = 0;
        int steps = run_schedule(e, &ref, p, got, have, NULL, &me, &mr);
        int vs_ref = f32 && !fp8;
        cmp c = compare(&ref, p, got, have, a1, a16, vs_ref ? refl : NULL, V);
        printf("%s %s%s: %d steps (up to %d sessions, %d rows a step; %d rows a forward), %ld logit rows: max |d| vs "
               "alone token by token %.3g, vs alone chunk 16 %.3g", name, type, fp8 ? " kv=fp8" : "", steps, me, mr, CHUNK,
               c.rows, c.vs_alone1, c.vs_alone16);
        if (vs_ref) printf(", vs reference %.3g", c.vs_ref);
        printf("\n");
        CHECK(steps > 10 && me >= 4 && mr > CHUNK && c.rows > 100);
        CHECK(c.vs_alone1 == 0 && c.vs_alone16 == 0); /* bit-exact */
        if (vs_ref) CHECK(c.vs_ref <= 5e-4);
        if (with_checks && vs_ref) {
            ds4j_engine *other = ds4j_engine_open(gguf, "threads=1;prefill_chunk=16");
            CHECK(other != NULL);
            if (other) validation(e, other, &ref, p[0].seq);
            ds4j_engine_close(other);
        }
        free_rows(got, have);
        for (int sq = 0; sq < ref.n_seq; sq++) { free(a1[sq]); free(a16[sq]); free(refl[sq]); }
        ds4j_engine_close(e);
    }
    fx_free_ref(&ref);
}

/* The schedule on fixture a, every recorded row written to out_path. */
static int script_main(const char *gguf, const char *out_path, const char *opts) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/fixtures/dsv4-tiny-a", DS4J_SHARED_DIR);
    fx_ref ref;
    if (fx_load_ref(dir, &ref)) return 1;
    plan p[N_SESS];
    make_plans(&ref, p);
    ds4j_engine *e = ds4j_engine_open(gguf, opts);
    if (!e) { fprintf(stderr, "leader: %s\n", ds4j_last_error()); return 1; }
    FILE *out = fopen(out_path, "wb");
    if (!out) return 1;
    float *got[N_SESS];
    char *have[N_SESS];
    alloc_rows(&ref, p, ds4j_n_vocab(e), got, have);
    int me, mr;
    int steps = run_schedule(e, &ref, p, got, have, out, &me, &mr);
    fclose(out);
    free_rows(got, have);
    ds4j_engine_close(e);
    fx_free_ref(&ref);
    return failures || steps <= 0 ? 1 : 0;
}

int main(int argc, char **argv) {
    if (argc == 5 && !strcmp(argv[1], "--script")) return script_main(argv[2], argv[3], argv[4]);
    printf("kernels: %s\n", ds4j_quants_kernel_name());
    run_fixture("dsv4-tiny-a", "f32", 1);
    run_fixture("dsv4-tiny-b", "f32", 0);
    run_fixture("dsv4-tiny-a", "f16", 0);
    run_fixture("dsv4-tiny-a", "q8_0", 0);
#ifdef DS4J_MPIEXEC
    {
        char gguf[1024], self[1024], want_p[1024], got_p[1024], logp[1024], cmd[8192];
        snprintf(gguf, sizeof gguf, "%s/test-batch-dsv4-tiny-a-f32.gguf", DS4J_BUILD_DIR);
        snprintf(want_p, sizeof want_p, "%s/test-batch-script-1.f32", DS4J_BUILD_DIR);
        snprintf(got_p, sizeof got_p, "%s/test-batch-script-2.f32", DS4J_BUILD_DIR);
        snprintf(logp, sizeof logp, "%s/test-batch-mpi.log", DS4J_BUILD_DIR);
        ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
        self[k > 0 ? k : 0] = 0;
        setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
        setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
        remove(want_p);
        remove(got_p);
        CHECK(script_main(gguf, want_p, "threads=1;prefill_chunk=16") == 0);
        /* the follower opens with the default prefill_chunk (64) and adopts the leader's */
        snprintf(cmd, sizeof cmd, "%s --oversubscribe -np 1 '%s' --script '%s' '%s' "
                 "'threads=1;prefill_chunk=16;comm=mpi;comm_plugin=%s/libds4j_comm_mpi.so' : "
                 "-np 1 '%s' follow --model '%s' --threads 1 --options comm=mpi > '%s' 2>&1",
                 DS4J_MPIEXEC, self, gguf, got_p, DS4J_BUILD_DIR, DS4J_TOOL_PATH, gguf, logp);
        int rc = fx_run(cmd);
        long wl = 0, gl = 0;
        float *want = (float *)fx_read_file(want_p, &wl), *gotv = rc == 0 ? (float *)fx_read_file(got_p, &gl) : NULL;
        if (!want || !gotv || wl != gl || wl == 0) {
            char *l = fx_read_file(logp, NULL);
            fprintf(stderr, "leader + follower: exit %d, %ld bytes (want %ld):\n%s\n", rc, gl, wl, l ? l : "");
            free(l);
            CHECK(0);
        } else {
            double d = fx_maxdiff(gotv, want, wl / 4);
            printf("batch schedule, leader + 1 follower (2 ranks, experts split): %ld numbers, max |d| vs one "
                   "process %.3g\n", wl / 4, d);
            CHECK(d <= 1e-4);
        }
        free(want);
        free(gotv);
    }
#else
    printf("MPI not found at build time: the 2-rank batch run is skipped\n");
#endif
    if (failures) { fprintf(stderr, "test_batch: %d failures\n", failures); return 1; }
    printf("test_batch: ok\n");
    return 0;
}
